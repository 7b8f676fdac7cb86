"""A CUDA process for test/device/checkpoint-errors.mjs to checkpoint: it holds a context and 64 MiB of GPU memory and
prints READY; each stdin line `spin S` launches one kernel that spins on the GPU for about S seconds (torch's
_sleep, counted in clock cycles at 2 GHz) and waits for it in the CUDA API, then prints SPUN."""

import sys

import torch

CYCLES_PER_SECOND = 2e9


def main() -> None:
    held = torch.ones(16 << 20, device="cuda")
    torch.cuda.synchronize()
    print("READY", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["spin"]:
            torch.cuda._sleep(int(float(words[1]) * CYCLES_PER_SECOND))
            print("SPINNING", flush=True)
            torch.cuda.synchronize()
            print("SPUN", flush=True)
    del held


if __name__ == "__main__":
    main()
