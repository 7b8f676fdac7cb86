"""A CPU server that does bf16 math with torch — on a CPU with Intel AMX, torch runs it on AMX (and asks the kernel
for the AMX permission first) — for restore's AMX test (test/snapshot/snapshot.test.ts): CRIU gives a restored
process no AMX permission back, so without restore's fix it dies of SIGILL on its first request after the restore.

  python amx_server.py PORT

GET /health answers "ok"; GET /mm a seeded bf16 matmul and attention, summed, and the process's AMX permission bits
(arch_prctl ARCH_GET_XCOMP_PERM; "none" off x86-64 Linux) as JSON.
"""

import ctypes
import json
import sys

import torch
from fixture_http import serve

torch.manual_seed(0)
A = torch.randn(256, 256, dtype=torch.bfloat16)
Q = torch.randn(1, 8, 32, 32, dtype=torch.bfloat16)
LIBC = ctypes.CDLL(None, use_errno=True)


def permission():
    bits = ctypes.c_uint64()
    try:
        return bits.value if LIBC.syscall(158, 0x1022, ctypes.byref(bits)) == 0 else None  # ARCH_GET_XCOMP_PERM
    except AttributeError:
        return None


def answer(path):
    if path == "/health":
        return b"ok"
    with torch.inference_mode():
        mm = (A @ A).float().sum().item()
        att = torch.nn.functional.scaled_dot_product_attention(Q, Q, Q, is_causal=True).float().sum().item()
    return json.dumps({"mm": round(mm, 3), "attention": round(att, 3), "amx": bool((permission() or 0) & (1 << 18))}).encode()


serve(int(sys.argv[1]), answer)
