"""A model server for test/device/snapshot-gpu.sh: a synthetic Llama (transformers' LlamaForCausalLM, seeded random
bf16 weights — finite, normal(0, 0.02) — built directly on the device) behind a stdlib HTTP server.

  python snapshot_server.py PORT [eager|compile]

GET /health answers "ok" once the model is loaded; GET /generate runs a greedy 16-token decode of a fixed prompt
(token ids, no tokenizer) at one static shape [1, 32] and answers the ids as JSON, so the answer is a deterministic
function of the weights and the first answer after a restore can be compared byte for byte with the one before.
vLLM-style hooks: POST /sleep drops the "KV cache" (a CS_KV_GIB GiB buffer on the device, allocated at start like
vLLM's) and empties the caching allocator, and shuts Inductor's compile workers down (they are not needed once the
graphs are compiled, and hold device files CRIU cannot save); POST /wake_up allocates the buffer again.

Environment:
  CS_SIZE=1b|8b|tiny   TinyLlama-1.1B shape (default), Llama-3-8B shape (16.06 GB of bf16 weights), 2-layer toy
  CS_DEVICE=cuda|cpu   where the model lives (cpu: the script's dry run)
  CS_KV_GIB=2          the KV buffer (0: none)
compile: torch.compile(mode="reduce-overhead") with Inductor's defaults (parallel compile workers), compiled and
captured by the first request (the snapshot's --warmup), which is the cost a restore skips.
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

t0 = time.time()
port = int(sys.argv[1])
mode = sys.argv[2] if len(sys.argv) > 2 else "eager"

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

print(f"imports {time.time() - t0:.2f}s", flush=True)
torch.manual_seed(0)
dev = os.environ.get("CS_DEVICE", "cuda")
size = os.environ.get("CS_SIZE", "1b")
SHAPES = {
    "tiny": dict(vocab_size=32000, hidden_size=256, intermediate_size=704, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4),
    "1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4),
    "8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8),
}
cfg = LlamaConfig(**SHAPES[size], max_position_embeddings=2048, torch_dtype=torch.bfloat16)
torch.set_default_dtype(torch.bfloat16)  # built in bf16 directly: an 8B model never exists in fp32
with torch.device(dev):
    model = LlamaForCausalLM(cfg).eval()
torch.set_default_dtype(torch.float32)
weights = sum(p.numel() * p.element_size() for p in model.parameters())
assert all(torch.isfinite(p).all() for p in model.parameters()), "non-finite weights"
kv_bytes = int(float(os.environ.get("CS_KV_GIB", "2")) * (1 << 30))
kv = None


def allocate_kv():
    global kv
    if kv is None and kv_bytes > 0:
        kv = torch.zeros(kv_bytes, dtype=torch.uint8, device=dev)


allocate_kv()
if dev == "cuda":
    torch.cuda.synchronize()
print(f"model {weights / 1e9:.2f} GB of weights ({size}) + {kv_bytes / 2**30:.1f} GiB KV on "
      f"{torch.cuda.get_device_name() if dev == 'cuda' else dev} at {time.time() - t0:.2f}s", flush=True)

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


def sleep():
    global kv
    kv = None
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    try:
        from torch._inductor.async_compile import shutdown_compile_workers

        shutdown_compile_workers()
    except ImportError:
        pass


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, body: bytes, status=200):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self._send(b"ok")
        if self.path != "/generate":
            return self._send(b"no such path", 404)
        t = time.time()
        ids = generate()
        print(f"generate {time.time() - t:.3f}s -> {ids}", flush=True)
        self._send(json.dumps({"tokens": ids, "mode": mode}).encode())

    def do_POST(self):
        t = time.time()
        if self.path.startswith("/sleep"):
            sleep()
        elif self.path == "/wake_up":
            allocate_kv()
        else:
            return self._send(b"no such path", 404)
        print(f"{self.path} {time.time() - t:.3f}s", flush=True)
        self._send(b"ok")

    def log_message(self, *a):
        pass


srv = HTTPServer(("127.0.0.1", port), H)
print(f"ready at {time.time() - t0:.2f}s", flush=True)
srv.serve_forever()
