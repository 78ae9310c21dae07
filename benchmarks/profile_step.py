"""Where one training step's time goes: the engine's segment function, op by op.

A diagnostic for engine work: one XLA device pinned to one core (so the
figures are per core), one chunk of pixels trained for 25 steps ten times
under jax.profiler, and each XLA op's time per pixel-step with its share of
the step. The baseline is the step itself: the last lines give each op's
share of it.

    python benchmarks/profile_step.py [--dtype float64] [--chunk 64] [--lr 0.01] [--kernel xla]
"""

from __future__ import annotations

import argparse
import collections
import re

from zoomreel import bench

bench.pin_one_core("--xla_cpu_enable_xprof_traceme=true")  # and XLA's per-op trace events: before JAX starts

from zoomreel import engine  # noqa: E402
from zoomreel.model import Model  # noqa: E402

SEG = engine.SEGMENT_STEPS

CALLS = 10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float64", choices=[A.name for A in engine.LADDER])
    ap.add_argument("--chunk", type=int, default=None, help="pixels per call (default: the engine's)")
    ap.add_argument("--lr", type=float, default=0.01, help="both learning rates of every pixel")
    ap.add_argument("--kernel", default="xla", help="the implementation of the network step")
    a = ap.parse_args()
    model = Model(steps=200)
    B = a.chunk or engine.default_chunk(model, a.dtype)
    events = bench.trace_events(*bench.segment_call(model, a.dtype, B, a.kernel, a.lr), CALLS)
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
    print(bench.machine() + "; pinned to one core")
    print(f"{a.dtype}, chunk {B} pixels, {SEG} steps per call, lr {a.lr}, kernel {a.kernel}")
    print(f"step: {total / per:.2f} us per pixel-step (flops per pixel-step: 4*P*n*n = "
          f"{4 * model.n_points * model.width ** 2:.3g} in the two products)")
    for name, us in ops.most_common(12):
        print(f"  {us / per:7.2f} us  {us / max(total, 1e-9):6.1%}  {name}")


if __name__ == "__main__":
    main()
