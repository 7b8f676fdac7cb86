"""What every script coldstart runs shares: the one event protocol, the device rule, the clock, the one way to
load a Hugging Face model (one dtype rule), the one way to make input ids, and the compile fingerprint.

The scripts run as files (`python SCRIPT ARGS`, through src/python/runner.ts) and import this module after
putting their own folder first on sys.path. Nothing here imports torch at import time: profile's stack times
`import torch` itself, and doctor's package probe never imports it.
"""

import json
import sys
import time


def emit(event, **kw):
    """The one event protocol: one JSON object per line on stdout, with an "event" key."""
    print(json.dumps({"event": event, **kw}), flush=True)


def need(package):
    """Imports a package, or reports {"event": "missing"} and exits 4 when it cannot be imported."""
    import importlib

    try:
        return importlib.import_module(package)
    except Exception as e:
        emit("missing", package=package, error=f"{type(e).__name__}: {e}")
        sys.exit(4)


def fail(kind, message, code=3, **kw):
    """Reports {"event": "error", "kind": ...} and exits with `code`."""
    emit("error", kind=kind, message=message, **kw)
    sys.exit(code)


def first_line(e):
    """An exception's first line (400 characters at most), or its type name when it has no message."""
    msg = str(e).strip()
    return msg.splitlines()[0][:400] if msg else type(e).__name__


def pick_device(torch, want):
    """auto: cuda when torch sees a GPU, else cpu. cuda without a GPU is reported as "no-gpu" (exit 5)."""
    if want == "cuda" and not torch.cuda.is_available():
        fail("no-gpu", "torch sees no CUDA device (torch.cuda.is_available() is False)", code=5)
    return "cuda" if (want == "cuda" or (want == "auto" and torch.cuda.is_available())) else "cpu"


def sync(device):
    """Waits for the GPU's queued work when `device` is cuda."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def clock(fn, device):
    """Runs fn() between two syncs: (its result, the seconds it took)."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def dtype_name(dtype):
    """torch.bfloat16 -> "bfloat16"."""
    return str(dtype).replace("torch.", "")


class HF:
    """A loaded Hugging Face model with what was learnt loading it."""

    def __init__(self, model, config, architectures, causal, call):
        self.model = model
        self.config = config
        self.architectures = architectures
        self.causal = causal
        self.call = call

    def info(self):
        params = list(self.model.parameters())
        return {
            "class": type(self.model).__name__,
            "architectures": self.architectures,
            "parameters": sum(p.numel() for p in params),
            "dtype": dtype_name(params[0].dtype) if params else None,
        }

    def vocab(self):
        return int(getattr(self.config, "vocab_size", 0) or 100)


def is_causal(architectures):
    """A causal LM (it generates) when its config names a ...ForCausalLM or ...LMHeadModel architecture."""
    return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures)


def load_hf(path, device):
    """The one way coldstart loads a Hugging Face model directory, for every command.

    Local files only, never trust_remote_code (the directory's own Python is not executed), and one dtype rule:
    torch_dtype="auto" (the dtype the checkpoint's config names, as serving stacks load it). On cuda the weights
    go straight to the GPU (device_map="cuda"); on cpu they stay where from_pretrained puts them.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    architectures = list(getattr(config, "architectures", None) or [])
    causal = is_causal(architectures)
    cls = AutoModelForCausalLM if causal else AutoModel
    kw = {"config": config, "local_files_only": True, "torch_dtype": "auto"}
    mapped = device == "cuda"
    if mapped:
        try:
            model = cls.from_pretrained(path, device_map="cuda", **kw)
        except (ImportError, ValueError) as e:
            # transformers 4 needs accelerate for a device_map: load on the host, then move.
            if "accelerate" not in str(e):
                raise
            mapped = False
    if not mapped:
        model = cls.from_pretrained(path, **kw).to(device)
    model.eval()
    where = ", device_map='cuda'" if mapped else (").to('cuda'" if device == "cuda" else "")
    call = "%s.from_pretrained(dir, torch_dtype='auto'%s)" % (cls.__name__, where)
    return HF(model, config, architectures, causal, call)


def make_ids(vocab, batch, seq, device="cpu"):
    """Deterministic input ids in [1, vocab - 1], spread over the vocabulary (the same for every command)."""
    import torch

    ids = ((torch.arange(batch * seq, dtype=torch.long).reshape(batch, seq) * 7919) % max(vocab - 1, 1)) + 1
    return ids.to(device)


def pad_token(hf):
    """The pad token generate needs: the generation config's, else the config's eos, else 0."""
    pad = getattr(getattr(hf.model, "generation_config", None), "pad_token_id", None)
    if pad is None:
        pad = getattr(hf.config, "eos_token_id", None) or 0
    return pad[0] if isinstance(pad, list) else pad


def generate_step(hf, ids, new_tokens):
    """A greedy generate of exactly `new_tokens` tokens from `ids`, as a function of no arguments."""
    import torch

    kw = {
        "attention_mask": torch.ones_like(ids),
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "do_sample": False,
        "pad_token_id": pad_token(hf),
    }
    return lambda: hf.model.generate(ids, **kw)


def fingerprint(torch, want):
    """What a compiled artefact is valid for: Python, torch, triton, vLLM, CUDA, the device and its driver."""
    import importlib.metadata as md
    import platform
    import re

    def ver(*names):
        for n in names:
            try:
                return md.version(n)
            except Exception:
                pass
        return None

    device = "cuda" if (want == "cuda" or (want == "auto" and torch.cuda.is_available())) else "cpu"
    fp = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": ver("triton", "pytorch-triton", "pytorch-triton-rocm"),
        "vllm": ver("vllm"),
        "cuda": torch.version.cuda,
        "device": device,
        "gpu": "cpu",
        "compute capability": None,
        "driver": None,
        "cpu isa": None,
    }
    try:
        fp["cpu isa"] = torch.backends.cpu.get_cpu_capability()
    except Exception:
        pass
    if device == "cuda":
        fp["gpu"] = torch.cuda.get_device_name(0)
        fp["compute capability"] = "%d.%d" % torch.cuda.get_device_capability(0)
        try:
            with open("/proc/driver/nvidia/version") as f:
                m = re.search(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]+)", f.read())
                fp["driver"] = m.group(1) if m else None
        except Exception:
            pass
        if fp["driver"] is None:
            try:
                v = torch._C._cuda_getDriverVersion()
                fp["driver"] = "cuda-driver-api %d.%d" % (v // 1000, (v % 1000) // 10)
            except Exception:
                pass
    return fp
