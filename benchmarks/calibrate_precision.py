"""Calibrate the precision policy: class agreement against span, per arithmetic.

For views centred on a boundary point it trains every pixel in each
arithmetic of --arithmetics (cheapest first, as engine.LADDER orders them),
and in the last one again with both hyperparameters nudged up by
precision.NUDGE_ULP ulp (Arithmetic.nudge, the routine the precision probe
uses). It prints the agreement of each arithmetic with the next one up and of
the last with its nudged self, then what `precision = "auto"` decides from
its small probe. docs/precision.md records its output.

    python benchmarks/calibrate_precision.py [--size 48] [--steps 100]
        [--center 2.5,2.1298] [--spans 3,1,0.1] [--arithmetics float32,float64]
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

import numpy as np

from zoomreel import bench, engine, path, precision
from zoomreel.model import Model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--center", default="2.5,2.1298")
    ap.add_argument("--spans", default="3,1,0.3,0.1,0.03,1e-2,1e-3,1e-4,1e-6,1e-8,1e-10,1e-12,1e-13")
    ap.add_argument("--arithmetics", default="float32,float64", help="cheapest first")
    a = ap.parse_args()
    engine.configure()
    model = Model(steps=a.steps)
    ladder = [engine.arithmetic(n) for n in a.arithmetics.split(",")]
    top = ladder[-1]
    cx, cy = (Decimal(c) for c in a.center.split(","))
    print("# " + bench.machine())
    print(f"# model: tanh n=16 steps={a.steps}; view {a.size}x{a.size} centred ({cx}, {cy})")
    pairs = [f"{lo.name} vs {hi.name}" for lo, hi in zip(ladder, ladder[1:])]
    cols = ["span", "converged", *pairs, f"{top.name} vs {top.name}+{precision.NUDGE_ULP}ulp",
            "auto picks", "probe resolved", "seconds"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for sp in a.spans.split(","):
        t0 = time.perf_counter()
        view = path.View((cx, cy), Decimal(sp), (a.size, a.size))
        values = {}
        for A in ladder:  # the last arithmetic's pixels stay in hx, hy for the nudge
            hx, hy = path.pixel_hypers(model, view, A)
            xs, ys = path.hyper_axes(model, view, A)
            if A is top or (A.distinct(xs) and A.distinct(ys)):
                values[A.name] = engine.train(model, hx, hy, A).values
        vt = values[top.name]
        vn = engine.train(model, top.nudge(hx, precision.NUDGE_ULP), top.nudge(hy, precision.NUDGE_ULP), top).values
        row = [sp, f"{np.mean(vt < 0):.0%}"]
        for lo, hi in zip(ladder, ladder[1:]):
            both = lo.name in values and hi.name in values
            row.append(f"{precision.agreement(values[lo.name], values[hi.name]):.1%}" if both else "n/a (pixels not distinct)")
        d = precision.decide(model, view)
        row += [f"{precision.agreement(vn, vt):.1%}", d.dtype, f"{d.resolved:.1%}", f"{time.perf_counter() - t0:.1f}"]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
