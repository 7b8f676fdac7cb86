#!/usr/bin/env python3
"""Pools the stack/plain pairs of test/device/profile-truth.sh runs (issue #10): mean, σ, difference and its size
in standard errors per step and cache state. Usage: bench/profile/pool-truth.py DIR [DIR …] (each holding
stack-C-N.json and plain-C-N.json)."""
import glob
import json
import math
import os
import statistics as st
import sys

PAIRS = [("imports", "import"), ("cuda-init", "cudaInit"), ("gpu-load", "load"), ("warmup", "firstForward")]
dirs = sys.argv[1:] or ["."]
for c in ("cold", "warm"):
    S = [json.load(open(f)) for d in dirs for f in sorted(glob.glob(os.path.join(d, f"stack-{c}-*.json")))]
    P = [json.load(open(f)) for d in dirs for f in sorted(glob.glob(os.path.join(d, f"plain-{c}-*.json")))]
    if len(S) < 2 or len(P) < 2:
        continue
    for p, k in PAIRS:
        ys = [next(x for x in s["phases"] if x["name"] == p)["seconds"] for s in S]
        qs = [q[k] for q in P]
        my, mq = st.mean(ys), st.mean(qs)
        se = math.sqrt(st.variance(ys) / len(ys) + st.variance(qs) / len(qs))
        ok = abs(my - mq) <= max(0.1 * mq, 0.05)
        yours = f"{my:.3f} ± {st.stdev(ys):.3f} (n={len(ys)})"
        plain = f"{mq:.3f} ± {st.stdev(qs):.3f} (n={len(qs)})"
        print(f"| {c} | {p} | {yours} | {plain} | {100 * (my - mq) / mq:+.1f} % | {(my - mq) / se:+.2f} | {'pass' if ok else '**miss**'} |")
