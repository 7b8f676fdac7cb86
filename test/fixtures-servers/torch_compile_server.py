"""A real torch.compile inference server for `coldstart optimize` tests (CPU, Inductor).

A tiny seeded transformer is compiled with torch.compile before the server says it is ready (one forward on the
fixed serving shape), so the compile is part of the cold start and Inductor's FX-graph / AOTAutograd caches (under
TORCHINDUCTOR_CACHE_DIR) make a second start faster. It answers OpenAI-style completions with greedy tokens and
their logprobs: deterministic for a given prompt.

Usage: torch_compile_server.py PORT [--layers N] [--dim D] [--mode MODE] [--device cpu|cuda] [--dtype fp32|bf16]
Log lines (for --stage rules): "model built in X s", "torch.compile took X s".
"""

import argparse
import math
import os
import sys
import time

from fixture_http import serve_completions

T0 = time.perf_counter()


def log(msg):
    sys.stderr.write("[torch-server] %s\n" % msg)
    sys.stderr.flush()


def build(torch, layers, dim, vocab, device, dtype):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim)
            self.up = nn.Linear(dim, 4 * dim)
            self.down = nn.Linear(4 * dim, dim)

        def forward(self, x):
            h = self.norm1(x)
            q, k, v = self.qkv(h).chunk(3, dim=-1)
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim), dim=-1) @ v
            x = x + self.proj(a)
            return x + self.down(torch.nn.functional.gelu(self.up(self.norm2(x))))

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            # --layers 0: embedding and head only (the fewest Inductor kernels: a short cold compile on a loaded CPU)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.head = nn.Linear(dim, vocab)

        def forward(self, ids):
            x = self.embed(ids)
            for b in self.blocks:
                x = b(x) if layers else x
            return torch.log_softmax(self.head(x[:, -1, :]).float(), dim=-1)

    torch.manual_seed(0)
    return Tiny().to(device=device, dtype=dtype).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--mode", default="default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--seq", type=int, default=16)
    a = ap.parse_args()

    import torch

    log("torch %s imported in %.2f s" % (torch.__version__, time.perf_counter() - T0))
    vocab = 256
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    t = time.perf_counter()
    model = build(torch, a.layers, a.dim, vocab, a.device, dtype)
    log("model built in %.3f s" % (time.perf_counter() - t))
    t = time.perf_counter()
    compiled = torch.compile(model, mode=None if a.mode == "default" else a.mode)
    with torch.inference_mode():
        compiled(torch.zeros((1, a.seq), dtype=torch.long, device=a.device))
    log("torch.compile took %.3f s" % (time.perf_counter() - t))

    def generate(prompt, n):
        ids = [b % vocab for b in prompt.encode("utf-8")][-a.seq :]
        ids = [0] * (a.seq - len(ids)) + ids
        text, logprobs = "", []
        with torch.inference_mode():
            for _ in range(n):
                lp = compiled(torch.tensor([ids], dtype=torch.long, device=a.device))[0]
                tok = int(torch.argmax(lp))
                logprobs.append(float(lp[tok]))
                text += " w%d" % tok
                ids = ids[1:] + [tok]
        return text, logprobs

    ready = "serving on http://127.0.0.1:%d (pid %d, inductor cache %s)"
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default")
    serve_completions(a.port, "tiny-compiled", generate, lambda: log(ready % (a.port, os.getpid(), cache)))


if __name__ == "__main__":
    main()
