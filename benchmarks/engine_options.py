"""What the engine's scheduling choices buy, and what they change.

Trains one view several ways in the same process, alternating runs, and prints
each against a baseline measured in the same run:

- early exit on against off (the baseline): time ratio, the share of
  pixel-steps trained, the pixels the loss rule (engine.RETIRE_V) retired,
  and how many pixel values differ from the run without early exit (it must
  print 0);
- chunk sizes against the default chunk of that dtype (the baseline).

    python benchmarks/engine_options.py [--size 96] [--steps 200] [--dtype float64]
        [--center 1.5,1.5] [--span 9] [--chunks 32,64,128] [--group 16384] [--repeats 2]

--group is the engine's pixels per group (see engine.train): every chunk of a
group is dispatched before the first is collected.
"""

from __future__ import annotations

import argparse
from decimal import Decimal

import numpy as np

from zoomreel import bench, engine, path
from zoomreel.model import Model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--center", default="1.5,1.5")
    ap.add_argument("--span", default="9")
    ap.add_argument("--chunks", default="")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--group", type=int, default=None)
    a = ap.parse_args()
    engine.configure()
    model = Model(steps=a.steps)
    A = engine.arithmetic(a.dtype)
    cx, cy = (Decimal(v) for v in a.center.split(","))
    view = path.View((cx, cy), Decimal(a.span), (a.size, a.size))
    hx, hy = path.pixel_hypers(model, view, A)
    work = hx.size * a.steps
    print(bench.machine())
    print(f"view centre ({cx}, {cy}) span {a.span}, {a.size}x{a.size}, {a.steps} steps, {a.dtype}")
    kw = {} if a.group is None else {"group": a.group}
    engine.train(model, hx[:256], hy[:256], A)  # compile both
    engine.train(model, hx[:256], hy[:256], A, early_exit=False)

    best = bench.alternate({
        "off": lambda: engine.train(model, hx, hy, A, early_exit=False, **kw),
        "on": lambda: engine.train(model, hx, hy, A, **kw),
    }, a.repeats)
    (t_off, off), (t_on, on) = best["off"], best["on"]
    differ = int(np.sum(on.values != off.values))
    print(
        f"early exit: {t_on:.2f} s against {t_off:.2f} s without, ratio {bench.ratio(t_off, t_on):.2f}; "
        f"trained {on.computed / work:.1%} of the pixel-steps; {on.retired_by_rule} of {hx.size} pixels retired by the "
        f"loss rule (L/L0 > {engine.RETIRE_V:g}); pixel values that differ from the run without early exit: {differ}"
    )

    if a.chunks:
        default = engine.default_chunk(model, a.dtype)
        sides = {default: lambda: engine.train(model, hx, hy, A, chunk=default, **kw)}
        for c in (int(v) for v in a.chunks.split(",")):
            engine.train(model, hx[:256], hy[:256], A, chunk=c)  # compile
            sides.setdefault(c, lambda c=c: engine.train(model, hx, hy, A, chunk=c, **kw))
        best = bench.alternate(sides, a.repeats)
        t_def = best[default][0]
        for c, (t_c, _) in best.items():
            print(f"chunk {c}: {t_c:.2f} s, {work / t_c:.3g} px-steps/s, "
                  f"ratio to default chunk {default} ({t_def:.2f} s): {bench.ratio(t_def, t_c):.2f}")


if __name__ == "__main__":
    main()
