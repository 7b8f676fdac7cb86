"""A model server for test/device/optimize-gpu.sh: loads a Llama checkpoint (safetensors, bf16; the script writes an
8B-shaped one with seeded random weights) onto the GPU, runs torch.compile(model, mode="reduce-overhead") and one
forward at the serving shape [1, 128] before it says it is ready (Inductor + Triton compile, CUDA graph capture),
then answers OpenAI-style completions: greedy tokens (ids as text, no tokenizer) with their logprobs.

  python optimize_server.py MODEL_DIR PORT [eager|compile]
Log lines (the script's --stage rules): "weights loaded in X s", "torch.compile took X s".
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures-servers"))
from fixture_http import serve_completions  # noqa: E402  (the OpenAI-style side the test servers share)

T0 = time.perf_counter()
path, port = sys.argv[1], int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "compile"

import torch  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402


def log(msg):
    print(msg, flush=True)


log("imports done in %.2f s" % (time.perf_counter() - T0))
dev = "cuda" if torch.cuda.is_available() else "cpu"
t = time.perf_counter()
model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16, device_map=dev).eval()
if dev == "cuda":
    torch.cuda.synchronize()
log("weights loaded in %.3f s" % (time.perf_counter() - t))
LEN = 128


def logits(ids):
    return model(input_ids=ids, use_cache=False).logits


fwd = logits if mode == "eager" else torch.compile(logits, mode="reduce-overhead")
t = time.perf_counter()
with torch.inference_mode():
    for _ in range(3):  # reduce-overhead records its CUDA graph on a later call
        fwd(torch.zeros((1, LEN), dtype=torch.long, device=dev))
if dev == "cuda":
    torch.cuda.synchronize()
log("torch.compile took %.3f s" % (time.perf_counter() - t))


def generate(prompt, n):
    ids = [(b * 131) % 32000 for b in prompt.encode("utf-8")][-LEN:]
    ids = [0] * (LEN - len(ids)) + ids
    toks, lps = [], []
    with torch.inference_mode():
        for _ in range(n):
            lp = torch.log_softmax(fwd(torch.tensor([ids], device=dev))[0, -1].float(), dim=-1)
            tok = int(torch.argmax(lp))
            toks.append(tok)
            lps.append(float(lp[tok]))
            ids = ids[1:] + [tok]
    return " ".join("t%d" % x for x in toks), lps


serve_completions(port, "llama-8b-synthetic", generate, lambda: log("serving on 127.0.0.1:%d" % port))
