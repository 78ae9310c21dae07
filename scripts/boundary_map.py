"""Where a condition's boundary is not smooth: a frame's local dimension, tile by tile.

Trains (or reads from the render cache under --out) each view (--center,
--span) of the file's model (at --seed and --steps when given), at SIZE x SIZE, marks its boundary, and measures the
dimension of every TILE x TILE block holding enough boundary
(zoomreel.dimension.tile_dimensions). Prints each frame's blocks, roughest
first, with their centres in plane coordinates; --png draws one panel per
frame (converged dark, diverged light, boundary black, each measured block
labelled with its dimension).

    python scripts/boundary_map.py FILE --span 90 [--span 9] [--center 1.5,1.5] [--seed 0 --seed 4] \
        [--steps 500] --size 1024 --tile 128 [--estimator fit|paper] [--png map.png] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from zoomreel.errors import UserError


def blocks(raw: np.ndarray, view, tile: int, estimator: str) -> list[dict]:
    """Every measured block: its dimension, boundary cells and centre, roughest first."""
    from zoomreel import dimension, path

    edge = np.zeros(raw.shape, dtype=bool)
    edge[:-1, :-1] = dimension.boundary(raw)  # each cell at its lower-left pixel: whole blocks tile the frame
    dims = dimension.tile_dimensions(edge, tile, estimator)
    xs, ys = path.axis_coords(view)
    out = []
    for i, j in zip(*np.nonzero(~np.isnan(dims))):
        c = min((j + 0.5) * tile, len(xs) - 1), min((i + 0.5) * tile, len(ys) - 1)
        out.append({"dimension": float(dims[i, j]), "cells": int(edge[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile].sum()),
                    "row": int(i), "col": int(j), "x": float(xs[int(c[0])]), "y": float(ys[int(c[1])])})
    return sorted(out, key=lambda b: -b["dimension"])


def draw(panels: list[tuple], tile: int, dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoomreel import dimension

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), dpi=80, squeeze=False)
    for ax, (view, raw, found, seed) in zip(axes[0], panels):
        img = np.where(raw < 0, 0.35, 0.85)
        img[:-1, :-1][dimension.boundary(raw)] = 0.0
        lo_x = float(view.center[0] - view.span / 2)
        H, W = raw.shape
        span_y = float(view.span) * H / W
        lo_y = float(view.center[1]) - span_y / 2
        ax.imshow(img, origin="lower", cmap="gray", vmin=0, vmax=1, interpolation="antialiased",
                  extent=(lo_x, lo_x + float(view.span), lo_y, lo_y + span_y))
        for b in found:
            ax.text(b["x"], b["y"], f"{b['dimension']:.2f}", color="red" if b["dimension"] > 1.1 else "tab:blue",
                    ha="center", va="center", fontsize=8, fontweight="bold")
        ax.set_title(f"seed {seed}: centre ({float(view.center[0]):g}, {float(view.center[1]):g}) span {float(view.span):g}", fontsize=9)
        ax.set_xlabel("x (log10 lr0)", fontsize=8)
        ax.set_ylabel("y (log10 lr1)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"boundary and its dimension per {tile} px block", fontsize=10)
    dimension.save_png(fig, dest)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--span", action="append", default=None, help="a view's span, centred on --center (repeat for more views; default: the first keyframe's)")
    ap.add_argument("--center", default=None, help="X,Y: the views' centre (default: the first keyframe's)")
    ap.add_argument("--seed", type=int, action="append", default=None, help="the model's seed instead of the file's (repeat for more)")
    ap.add_argument("--steps", type=int, default=None, help="training steps instead of the file's")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--estimator", default="fit", help="fit | paper")
    ap.add_argument("--out", type=Path, default=None, help="output folder (cache) instead of outputs/")
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from zoomreel import dimension, engine, scene, work
    from zoomreel.plan import single_frame

    try:
        if a.estimator not in dimension.ESTIMATORS:
            raise UserError(f"unknown estimator {a.estimator!r}", "--estimator", "use " + " or ".join(dimension.ESTIMATORS))
        if a.tile < 2 * dimension.PAPER_SMALLEST or a.tile > a.size:
            raise UserError(f"tile {a.tile} out of range", "--tile", f"use {2 * dimension.PAPER_SMALLEST} to --size")
        base = scene.load(a.file).with_video(size=(a.size, a.size), mode="frames")
        first = base.keyframes[0]
        try:
            spans = [Decimal(x) for x in (a.span or [first.span])]
            center = tuple(Decimal(x) for x in a.center.split(",")) if a.center else first.center
            if len(center) != 2 or not all(x.is_finite() for x in center + tuple(spans)) or min(spans) <= 0:
                raise InvalidOperation
        except InvalidOperation:
            raise UserError(f"bad view {a.center!r} {a.span}", "--center/--span", "give --center X,Y and positive spans") from None
        engine.configure()
        panels, report = [], []
        for seed, span in [(seed, span) for seed in (a.seed or [base.model.seed]) for span in spans]:
            model = dataclasses.replace(base.model, seed=seed, steps=a.steps or base.model.steps)
            keys = (dataclasses.replace(first, center=center, span=span),) + base.keyframes[1:]
            plan = single_frame(dataclasses.replace(base, model=model, keyframes=keys), Decimal(0), False, a.out)
            plan.cache.prepare()
            raw = work.train_view(model, plan.view(0), plan.precision, base.keyframes_where, cache=plan.cache).raw
            view = plan.view(0)
            found = blocks(raw, view, a.tile, a.estimator)
            panels.append((view, raw, found, seed))
            report.append({"seed": seed, "center": [float(c) for c in view.center], "span": float(view.span),
                           "boundary_cells": int(dimension.boundary(raw).sum()), "blocks": found})
        if a.png:
            draw(panels, a.tile, a.png)
    except UserError as e:
        print(e.line(), file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps({"file": str(a.file), "size": a.size, "tile": a.tile, "estimator": a.estimator, "frames": report}))
        return 0
    for r in report:
        print(f"seed {r['seed']} centre ({r['center'][0]:g}, {r['center'][1]:g}) span {r['span']:g}: {r['boundary_cells']} boundary cells, "
              f"{len(r['blocks'])} blocks measured")
        for b in r["blocks"][:8]:
            print(f"  D {b['dimension']:.3f}  {b['cells']} cells  at ({b['x']:.4f}, {b['y']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
