"""Calibrate the precision policy: class agreement against span, per dtype.

For views centred on a boundary point it trains every pixel three times:
float32, float64, and float64 with both hyperparameters nudged up by
NUDGE_ULP ulp. It prints the agreement of float32 with float64 and of float64
with its nudged self, then what `precision = "auto"` decides from its small
probe. docs/precision.md records its output.

    python benchmarks/calibrate_precision.py [--size 48] [--steps 100]
"""

from __future__ import annotations

import argparse
import platform
import time
from decimal import Decimal

import numpy as np

from zoomreel import engine, path, precision
from zoomreel.model import Model


def agreement(a, b):
    return float(np.mean((a < 0) == (b < 0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--center", default="2.5,2.1298")
    ap.add_argument("--spans", default="3,1,0.3,0.1,0.03,1e-2,1e-3,1e-4,1e-6,1e-8,1e-10,1e-12,1e-13")
    a = ap.parse_args()
    model = Model(steps=a.steps)
    cx, cy = (Decimal(c) for c in a.center.split(","))
    print(f"# machine: {platform.processor() or platform.machine()}, {engine.device_name()}, jax {engine.jax.__version__}")
    print(f"# model: tanh n=16 steps={a.steps}; view {a.size}x{a.size} centred ({cx}, {cy})")
    print("| span | converged | f32 vs f64 | f64 vs f64+{}ulp | auto picks | probe resolved | seconds |".format(precision.NUDGE_ULP))
    print("|---|---|---|---|---|---|---|")
    for sp in a.spans.split(","):
        t0 = time.perf_counter()
        view = path.View((cx, cy), Decimal(sp), (a.size, a.size))
        hx, hy = path.pixel_hypers(model, view)
        v64 = engine.train(model, hx, hy, "float64")
        nx, ny = hx.copy(), hy.copy()
        for _ in range(precision.NUDGE_ULP):
            nx, ny = np.nextafter(nx, np.inf), np.nextafter(ny, np.inf)
        vn = engine.train(model, nx, ny, "float64")
        f32 = "n/a (pixels not distinct)"
        if np.all(np.diff(np.unique(hx.astype(np.float32))) > 0) and len(np.unique(hx.astype(np.float32))) == a.size:
            f32 = f"{agreement(engine.train(model, hx, hy, 'float32'), v64):.1%}"
        d = precision.decide(model, view)
        print(f"| {sp} | {np.mean(v64 < 0):.0%} | {f32} | {agreement(vn, v64):.1%} | {d.dtype} | {d.resolved:.1%} | {time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
