"""A model server for test/device/snapshot-gpu.sh: a synthetic Llama (transformers' LlamaForCausalLM with a
1.1B-parameter TinyLlama-shaped config, seeded random bf16 weights, built directly on the GPU) behind a stdlib
HTTP server. GET /health answers "ok" once the model is loaded; GET /generate runs a greedy 16-token decode
of a fixed prompt (token ids, no tokenizer) at one static shape [1, 32] and answers the ids as JSON, so the
answer is a deterministic function of the weights and the first answer after a restore can be compared
byte for byte with the one before the snapshot.

  python snapshot_server.py PORT [eager|compile]
CS_DEVICE=cpu CS_LAYERS=2 CS_HIDDEN=256: a small CPU model (the script's CPU dry run on a machine without a GPU).
compile: torch.compile(mode="reduce-overhead") (inductor + CUDA graphs), compiled and captured by the first
request (the snapshot's --warmup), which is the cost a restore skips.
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

t0 = time.time()
port = int(sys.argv[1])
mode = sys.argv[2] if len(sys.argv) > 2 else "eager"
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # no compile-worker pool: one process to checkpoint

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

print(f"imports {time.time() - t0:.2f}s", flush=True)
torch.manual_seed(0)
dev = os.environ.get("CS_DEVICE", "cuda")
hidden = int(os.environ.get("CS_HIDDEN", "2048"))
cfg = LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_hidden_layers=int(os.environ.get("CS_LAYERS", "22")),
                  num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048, torch_dtype=torch.bfloat16)
with torch.device(dev):
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
if dev == "cuda":
    torch.cuda.synchronize()
params = sum(p.numel() for p in model.parameters())
print(f"model {params / 1e9:.2f}B params on {torch.cuda.get_device_name() if dev == 'cuda' else dev} at {time.time() - t0:.2f}s", flush=True)

LEN = 32
PROMPT = [1, 415, 2936, 9060, 285, 1142, 461, 10575]


def forward(ids):
    return model(input_ids=ids, use_cache=False).logits


step = torch.compile(forward, mode="reduce-overhead", fullgraph=False) if mode == "compile" else forward


@torch.inference_mode()
def generate(n=16):
    ids = torch.zeros((1, LEN), dtype=torch.long, device=dev)
    ids[0, : len(PROMPT)] = torch.tensor(PROMPT, device=dev)
    cur = len(PROMPT)
    out = []
    for _ in range(n):
        logits = step(ids)  # causal: padding after `cur` does not change the logits at cur-1
        nxt = int(torch.argmax(logits[0, cur - 1].float()))
        out.append(nxt)
        ids[0, cur] = nxt
        cur += 1
    return out


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self._send(b"ok")
        t = time.time()
        ids = generate()
        print(f"generate {time.time() - t:.3f}s -> {ids}", flush=True)
        self._send(json.dumps({"tokens": ids, "mode": mode}).encode())

    def log_message(self, *a):
        pass


srv = HTTPServer(("127.0.0.1", port), H)
print(f"ready at {time.time() - t0:.2f}s", flush=True)
srv.serve_forever()
