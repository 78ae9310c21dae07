"""Where one training step's time goes: the engine's segment function, op by op.

A diagnostic for engine work, not a speed claim: one XLA device pinned to one
core (so the figures are per core), one chunk of pixels trained for 25 steps
ten times under jax.profiler, and each XLA op's time per pixel-step with its
share of the step.

    python benchmarks/profile_step.py [--dtype float64] [--chunk 64] [--lr 0.01]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from one_core import pin  # noqa: E402

pin("--xla_cpu_enable_xprof_traceme=true")  # and XLA's per-op trace events: before JAX starts

import jax  # noqa: E402

from zoomreel import engine  # noqa: E402
from zoomreel.model import Model  # noqa: E402

from step_throughput import chunk_args, trace_events  # noqa: E402

SEG, CALLS = 25, 10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float64", choices=sorted(engine.DTYPES))
    ap.add_argument("--chunk", type=int, default=None, help="pixels per call (default: the engine's)")
    ap.add_argument("--lr", type=float, default=0.01, help="both learning rates of every pixel")
    a = ap.parse_args()
    model = Model(steps=200)
    B = a.chunk or engine.default_chunk(model, a.dtype)
    fn = engine._segment_fn(model, a.dtype, B, SEG)
    events = trace_events(fn, chunk_args(model, a.dtype, B, a.lr), CALLS)
    per = CALLS * SEG * B
    ops = collections.Counter()
    total = 0.0
    for e in events:
        if e.get("ph") != "X":
            continue
        if e["name"].startswith("while"):
            total += e["dur"]
        elif not re.match(r"(\$|Thunk|end:|Pjit|Common)", e["name"]):
            ops[e["name"]] += e["dur"]
    print(f"machine: {platform.node()} {platform.machine()}; one core; jax {jax.__version__}")
    print(f"{a.dtype}, chunk {B} pixels, {SEG} steps per call, lr {a.lr}")
    print(f"step: {total / per:.2f} us per pixel-step (flops per pixel-step: 4*P*n*n = {4 * model.n_points * model.width ** 2:.3g} in the two products)")
    for name, us in ops.most_common(12):
        print(f"  {us / per:7.2f} us  {us / max(total, 1e-9):6.1%}  {name}")


if __name__ == "__main__":
    main()
