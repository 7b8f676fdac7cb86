"""A model server for test/device/snapshot-gpu.sh: a synthetic Llama (transformers' LlamaForCausalLM, seeded random
bf16 weights — finite, normal(0, 0.02) — built directly on the device) behind a stdlib HTTP server.

  python snapshot_server.py PORT [eager|compile]

GET /health answers "ok" once the model is loaded; GET /generate runs a greedy 16-token decode of a fixed prompt
(token ids, no tokenizer) at one static shape [1, 32] and answers the ids as JSON, so the answer is a deterministic
function of the weights and the first answer after a restore can be compared byte for byte with the one before.
vLLM-style hooks: POST /sleep drops the "KV cache" (a CS_KV_GIB GiB buffer on the device, allocated at start like
vLLM's) and empties the caching allocator, and shuts Inductor's compile workers down (they are not needed once the
graphs are compiled, and hold device files CRIU cannot save); POST /wake_up allocates the buffer again.
With CS_WEIGHTS, as vLLM's levels: POST /sleep?level=1 also moves the weights into pinned host memory and releases
theirs on the device (/wake_up copies them back), /sleep?level=2 releases the weights' memory (an image without them)
and /wake_up reads them back from the files into the same addresses (test/device/flat_weights.py).

Environment:
  CS_SIZE=1b|8b|tiny   TinyLlama-1.1B shape (default), Llama-3-8B shape (16.06 GB of bf16 weights), 2-layer toy
  CS_DEVICE=cuda|cpu   where the model lives (cpu: the script's dry run)
  CS_KV_GIB=2          the KV buffer (0: none)
  CS_WEIGHTS=DIR       load the weights from the safetensors shards in DIR (made by CS_SAVE) instead of seeding them
  CS_SAVE=DIR          seed the weights, write them to DIR as 4 safetensors shards, and exit (PORT is ignored)
  CS_LOAD_THREADS=8    reader threads for CS_WEIGHTS
  CS_LOADER=python     who reads the weights (start and wake-up): python threads, or coldstart (libcoldstart_load.so
                       through src/python/coldstart_load.py; flat_weights.py); /wake_up?loader= chooses per request
compile: torch.compile(mode="reduce-overhead") with Inductor's defaults (parallel compile workers), compiled and
captured by the first request (the snapshot's --warmup), which is the cost a restore skips.
"""
import ctypes
import json
import os
import re
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
folder = os.environ.get("CS_WEIGHTS")
flat = None
# Built in bf16 directly: an 8B model never exists in fp32. On a CPU with Intel AMX (the dry run) its bf16 attention
# runs on AMX, whose permission CRIU does not restore: restore gives it back (native/src/amx.cc, docs/snapshot.md).
torch.set_default_dtype(torch.bfloat16)
with torch.device("meta" if folder else dev):
    model = LlamaForCausalLM(cfg).eval()
if folder:
    from flat_weights import FlatWeights, loader_name

    tl = time.time()
    flat = FlatWeights(folder, dev)
    flat.load()
    by = loader_name()
    views = flat.tensors()
    for name, _p in list(model.named_parameters()):
        owner, _, attr = name.rpartition(".")
        model.get_submodule(owner)._parameters[attr] = torch.nn.Parameter(views.pop(name), requires_grad=False)
    assert not views, f"tensors in {folder} the model does not have: {sorted(views)[:3]}"
    rotary = model.model.rotary_emb  # its inv_freq is not in the files (a non-persistent buffer): computed again
    model.model.rotary_emb = type(rotary)(config=cfg, device=dev)
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers())), "a tensor left on meta"
    print(f"weights read from {folder} in {time.time() - tl:.2f}s ({by} loader)", flush=True)
torch.set_default_dtype(torch.float32)
weights = sum(p.numel() * p.element_size() for p in model.parameters())
assert all(torch.isfinite(p).all() for p in model.parameters()), "non-finite weights"
if dev == "cuda":
    # The check's temporaries (a 0.53 GB bool tensor for the 8B embedding) leave a segment in torch's caching
    # allocator that the first request's small persistent allocations (cuBLAS workspace) would settle in, pinning
    # it: 0.53 GB of unused GPU memory in every snapshot image. A check of the test's own, not the server's state.
    torch.cuda.empty_cache()
if os.environ.get("CS_SAVE"):
    from safetensors.torch import save_file

    out = os.environ["CS_SAVE"]
    os.makedirs(out, exist_ok=True)
    params = [(n, p.detach()) for n, p in model.named_parameters()]
    per = -(-weights // 4)
    shard, acc, k = {}, 0, 0
    for i, (n, p) in enumerate(params):
        shard[n] = p.contiguous().cpu()
        acc += p.numel() * p.element_size()
        if acc >= per or i == len(params) - 1:
            k += 1
            save_file(shard, os.path.join(out, f"model-{k:05d}.safetensors"))
            shard, acc = {}, 0
    print(f"saved {weights / 1e9:.2f} GB in {k} shards to {out} at {time.time() - t0:.2f}s", flush=True)
    sys.exit(0)
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


def _rss_anon():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


def _anon_by_mapping(top=8):
    """Where the anonymous memory is (what CRIU writes for the host): smaps' Anonymous summed by what is mapped
    there — a library (its written data and relocations), [heap], [stack], or an unnamed mapping by its size."""
    groups = {}
    name = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                path = head[5] if len(head) > 5 else ""
                if path.startswith("/"):
                    name = path.rsplit("/", 1)[-1]
                elif path:
                    name = path
                else:
                    mib = (hi - lo) >> 20
                    name = "anon >=1 GiB" if mib >= 1024 else "anon 64 MiB-1 GiB" if mib >= 64 else (
                        "anon 2-64 MiB" if mib >= 2 else "anon <2 MiB")
            elif head and head[0] == "Anonymous:" and name is not None:
                groups[name] = groups.get(name, 0) + int(head[1]) * 1024
    best = sorted(groups.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in best)


def _limits():
    """The driver's per-context reservations that scale with the GPU (the stack reservation is per resident thread)."""
    try:
        cu = ctypes.CDLL("libcuda.so.1")
        out = {}
        for name, k in (("stack", 0), ("printf-fifo", 1), ("malloc-heap", 2)):
            v = ctypes.c_size_t()
            rc = cu.cuCtxGetLimit(ctypes.byref(v), k)
            out[name] = v.value if rc == 0 else f"error {rc}"
        return f"context limits {out}"
    except OSError as e:
        return f"context limits unknown ({e})"


def sleep(level):
    global kv
    kv = None
    if level >= 2:
        if flat is None:
            raise ValueError("level 2 needs CS_WEIGHTS (the weights must be readable again)")
        flat.release()
    elif flat is not None:
        flat.offload()
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        # what the GPU still holds, so the image's GPU state can be told apart: the server's tensors vs the driver's
        free, total = torch.cuda.mem_get_info()
        segs = sorted((s["total_size"] for s in torch.cuda.memory_snapshot()), reverse=True)
        print(f"after sleep: torch allocated {torch.cuda.memory_allocated() / 1e9:.3f} GB, reserved "
              f"{torch.cuda.memory_reserved() / 1e9:.3f} GB in {len(segs)} segments (largest MiB: "
              f"{[s >> 20 for s in segs[:4]]}); device used {(total - free) / 1e9:.3f} GB; {_limits()}", flush=True)
    # what the C heap holds: malloc_trim(0) here gave back 2 MB of 0.96 GB (H100, 2026-12-06): nothing to win
    print(f"after sleep: anonymous memory {_rss_anon() / 1e9:.3f} GB; largest: {_anon_by_mapping()}", flush=True)
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
            level = 2 if "level=2" in self.path else 1
            try:
                sleep(level)
            except ValueError as e:
                return self._send(str(e).encode(), 400)
        elif self.path.split("?")[0] == "/wake_up":
            if flat is not None and flat.backup is not None:
                flat.restore_backup()
                print(f"weights copied back from host memory: {flat.bytes / 1e9:.2f} GB in {time.time() - t:.3f}s", flush=True)
            elif flat is not None and not flat.resident:
                q = dict(pair.split("=", 1) for pair in self.path.partition("?")[2].split("&") if "=" in pair)
                # ?threads=N&piece_mib=M&loader=python|coldstart&disk_streams=K&cold=direct|cached: the device proof's sweep
                threads = int(q["threads"]) if "threads" in q else None
                loader = q.get("loader")
                ds = int(q["disk_streams"]) if "disk_streams" in q else None
                r = flat.reload(threads, int(q["piece_mib"]) << 20 if "piece_mib" in q else None, loader, ds, q.get("cold"))
                by = loader_name(loader)
                cold = ""
                if r and r["cold_bytes"] is not None:
                    cold = (f", {r['cold_bytes'] / 1e9:.2f} GB from the disk ({q.get('cold') or 'default'} reads), at most "
                            f"{r['disk_readers_max']} readers there at once, O_DIRECT refused for {r['direct_refused']} files")
                if r and r.get("staged_bytes"):
                    cold += f", {r['staged_bytes'] / 1e9:.2f} GB of it copied GPU to GPU from restore --stage"
                if r and r.get("staged_error"):
                    cold += f", the staged copy not used: {r['staged_error']}"
                print(f"weights read back: {flat.bytes / 1e9:.2f} GB in {time.time() - t:.3f}s ({by} loader{cold})", flush=True)
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
