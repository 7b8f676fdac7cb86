"""`warmup --compile`: the fingerprint of this Python, torch and device, before anything is compiled.

argv: device want (auto|cpu|cuda). Events (common.emit): fingerprint, or missing / error.
"""

import os
import sys
import time

T0 = time.perf_counter()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, fingerprint, need, pick_device  # noqa: E402


def main():
    torch = need("torch")
    want = sys.argv[1]
    pick_device(torch, want)
    emit(
        "fingerprint",
        seconds=time.perf_counter() - T0,
        fingerprint=fingerprint(torch, want),
        hasCacheArtifacts=hasattr(torch.compiler, "save_cache_artifacts") and hasattr(torch.compiler, "load_cache_artifacts"),
    )


if __name__ == "__main__":
    main()
