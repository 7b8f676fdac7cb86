"""`profile --framework torch|safetensors|transformers`: the user's stack, one Python process timed from its own start.

argv: framework, model directory, weight files...; env: COLDSTART_PROMPT_TOKENS, COLDSTART_NEW_TOKENS.
Events (common.emit), each with "t", the system's monotonic clock (time.monotonic(): CLOCK_MONOTONIC, the clock
Node's process.hrtime reads), which src/profile/framework.ts anchors at the moment Node spawned the process: start,
imports, cuda, load, first, steady, end. Not the wall clock: NTP slews it, and two readings of it by two processes
drift apart by milliseconds.
"""

import time

T_START = time.monotonic()  # before anything else: "interpreter start" ends here

import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import dtype_name, emit, generate_step, load_hf, make_ids, need, pick_device, sync  # noqa: E402


def stamp(event, **kw):
    emit(event, t=kw.pop("t", None) or time.monotonic(), **kw)


def state_dict_size(sd):
    return sum(t.numel() * t.element_size() for t in sd.values())


def dtypes_of(dicts):
    return ",".join(sorted({dtype_name(t.dtype) for sd in dicts for t in sd.values()}))


def main():
    stamp("start", t=T_START)
    fw, model_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    a = time.monotonic()
    torch = need("torch")
    b = time.monotonic()
    steps = [["import torch", b - a]]
    if fw == "safetensors":
        load_file = need("safetensors.torch").load_file
        steps.append(["import safetensors", time.monotonic() - b])
    elif fw == "transformers":
        need("transformers")
        steps.append(["import transformers", time.monotonic() - b])
    stamp("imports", steps=steps)

    dev = pick_device(torch, "auto")
    if dev == "cuda":
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        stamp("cuda", call="torch.zeros(1, device='cuda') + synchronize")
    else:
        stamp("cuda", skipped="torch.cuda.is_available() is False: the stack runs on CPU")

    hf = None
    keep = []
    if fw == "safetensors":
        for f in files:
            keep.append(load_file(f, device=dev))
        n, dtype = sum(state_dict_size(sd) for sd in keep), dtypes_of(keep)
        call = "safetensors.torch.load_file(f, device=%r)" % dev
    elif fw == "torch":
        for f in files:
            if f.endswith(".safetensors"):
                sd = need("safetensors.torch").load_file(f)
            else:
                sd = torch.load(f, map_location="cpu", weights_only=True)
            keep.append({k: v.to(dev) for k, v in sd.items()})
        n, dtype = sum(state_dict_size(sd) for sd in keep), dtypes_of(keep)
        call = "torch.load(f, weights_only=True) + .to(%r)" % dev
    else:
        hf = load_hf(model_dir, dev)
        n = sum(p.numel() * p.element_size() for p in hf.model.parameters())
        dtype, call = hf.info()["dtype"], hf.call
    sync(dev)
    stamp("load", bytes=n, call=call, device=dev, dtype=dtype)

    if hf is not None and hf.causal:
        prompt, new = int(os.environ.get("COLDSTART_PROMPT_TOKENS", "32")), int(os.environ.get("COLDSTART_NEW_TOKENS", "16"))
        step = generate_step(hf, make_ids(hf.vocab(), 1, prompt, dev), new)
        with torch.inference_mode():
            step()
            sync(dev)
            stamp("first")
            a = time.monotonic()
            step()
            sync(dev)
            stamp("steady", seconds=time.monotonic() - a)
    elif hf is not None:
        stamp("first", skipped="%s is not a causal LM: no generate to time" % type(hf.model).__name__)
    else:
        stamp("first", skipped="a state dict has no forward pass: use --framework transformers for the first forward")
    stamp("end", python=sys.executable)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
