"""How many digits of the loss dd and float64 keep, step by step, against mpmath.

Two pixels of a small tanh network (width 4, so the pure-Python mpmath
reference at 60 digits takes seconds): one in a converging region, and one
on the boundary (both layers' learning rate set to where the class flips,
found by bisection in float64 with the engine), where training is chaotic
and amplifies every rounding. Each pixel is trained by the engine in float64
and in dd, with the same hyperparameter (a float64 number, so both hold it
exactly), and by mpmath; printed: the agreement of each loss with mpmath's
in significant digits, -log10 |x - ref| / |ref|, at a few steps.

    python benchmarks/dd_accuracy.py [--steps 200]

Needs mpmath (the `test` extra).
"""

from __future__ import annotations

import argparse
import os
import sys

import mpmath
import numpy as np

from zoomreel import engine
from zoomreel.model import Model

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from reference_mp import engine_losses, losses as mp_losses  # noqa: E402


def digits(x, ref) -> float:
    with mpmath.workdps(60):
        if x == ref:
            return 99.0
        return float(-mpmath.log10(abs(x - ref) / abs(ref)))


def boundary_lr(model, lo=-1.0, hi=1.5, iters=40) -> float:
    """log10 lr where the float64 class flips between lo and hi (bisection)."""
    cls = lambda x: engine.train(model, np.array([10.0**x]), np.array([10.0**x]), "float64").values[0] < 0  # noqa: E731
    c_lo = cls(lo)
    if cls(hi) == c_lo:
        raise SystemExit("no class change between the bounds")
    for _ in range(iters):
        mid = (lo + hi) / 2
        if cls(mid) == c_lo:
            lo = mid
        else:
            hi = mid
    return lo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    engine.configure(cpu_devices=1)
    model = Model(width=4, steps=args.steps)
    draws = engine.draws(model)
    pixels = {"converging": 10.0**-1.0, "boundary": 10.0 ** boundary_lr(model)}
    show = [t for t in (0, 10, 25, 50, 75, 100, 150, 200, 300, 500) if t < args.steps] + [args.steps - 1]
    print(f"tanh, width {model.width}, {model.n_points} points, {args.steps} steps; digits of the loss agreeing with mpmath (60 digits)")
    print("pixel        lr                      arithmetic  " + "  ".join(f"t={t:<4d}" for t in show))
    for name, lr in pixels.items():
        ref = mp_losses(model, draws, lr, lr, args.steps)
        for arith, host in (("float64", np.array([lr])), ("dd", np.array([[lr, 0.0]]))):
            got = engine_losses(model, arith, host)[0]
            print(f"{name:12s} {lr:<23.17g} {arith:10s}  " + "  ".join(f"{digits(got[t], ref[t]):6.1f}" for t in show))
        print(f"{'':12s} {'':23s} {'loss':10s}  " + "  ".join(f"{float(ref[t]):6.0e}" for t in show))


if __name__ == "__main__":
    main()
