"""A Python inference stack's start as bench/prefetch/cold-stack.mjs times it: import torch and transformers, then
load every safetensors file of a folder onto the GPU (CPU tensors where there is none). Prints one JSON line:
importSeconds, loadSeconds, bytes, device.
"""

import glob
import json
import os
import sys
import time

t0 = time.perf_counter()
import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401
from safetensors.torch import load_file  # noqa: E402

t1 = time.perf_counter()
device = "cuda" if torch.cuda.is_available() else "cpu"
total = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors"))):
    for t in load_file(path, device=device).values():
        if device == "cpu":
            t.clone()  # load_file maps the file: copying reads every byte, as moving it to a device would
        total += t.numel() * t.element_size()
if device == "cuda":
    torch.cuda.synchronize()
t2 = time.perf_counter()
print(json.dumps({"importSeconds": t1 - t0, "loadSeconds": t2 - t1, "bytes": total, "device": device}))
