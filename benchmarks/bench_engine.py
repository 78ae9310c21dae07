"""zoomreel's engine against the straightforward JAX formulation, same grid, same process.

The baseline is what a direct port of the paper's experiment does: jax.vmap
over pixels of one network's value_and_grad step, all pixels in one batch,
the steps under lax.scan, the loss of every step recorded. It lives only
here, as the yardstick. Runs alternate (baseline, engine, frame, baseline,
...) and the best time of each is kept.

    python benchmarks/bench_engine.py [--size 128] [--steps 200] [--repeats 2]
        [--kernel xla|fused] [--dtypes float32,float64] [--center 1.5,1.5] [--span 9] [--no-frame]

The default view is the paper's standard one; a view on the boundary (say
--center 1.5622,2.2230 --span 0.1) shows the engine with little early exit.
--kernel picks the engine's implementation of the network step (engine.train's
impl=; the whole frame runs it too, through ZOOMREEL_KERNEL).

Besides the engine alone, it times what `zoomreel frame --precision <dtype>`
does for the same view (precision probe included; the probe's pixels in the
frame's dtype are not trained twice), against the same baseline timings
(--no-frame skips it).

The last line is `ratio float32 <x> float64 <y>` (the engine alone).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np

from zoomreel import bench, engine, path, scene, views
from zoomreel.engine.formulation import KERNEL_ENV
from zoomreel.errors import UserError
from zoomreel.model import Model


def baseline(model: Model, hx, hy, A):
    """The straightforward port: vmap of one network's value_and_grad step."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    d = engine.draws(model)
    dt = A.dtype
    X, Y = jnp.asarray(d.x.astype(dt)), jnp.asarray(d.y.astype(dt))
    W0, W1 = jnp.asarray(d.w0.astype(dt)), jnp.asarray(d.w1.astype(dt))
    n = model.width

    def loss(params):
        w0, w1 = params
        h = jnp.tanh(math.sqrt(2.0) * (X @ w0 / math.sqrt(n)))
        out = (h @ w1 / math.sqrt(n)) / math.sqrt(n)
        return jnp.mean((out - Y) ** 2)

    def run_pixel(lr0, lr1):
        def step(params, _):
            l, (g0, g1) = jax.value_and_grad(loss)(params)
            return (params[0] - lr0 * g0, params[1] - lr1 * g1), l

        _, ls = lax.scan(step, (W0, W1), None, length=model.steps)
        return ls

    # The same full-precision products as the engine: on a GPU, JAX's default
    # would let the baseline's float32 products run in TF32, faster and less
    # exact (on the CPU this changes nothing).
    with jax.default_matmul_precision("highest"):
        f = jax.jit(jax.vmap(run_pixel))
        losses = f(jnp.asarray(hx.astype(dt)), jnp.asarray(hy.astype(dt)))
    return engine.network_measure(np.asarray(losses).T)


def frame_scene(model: Model, view: path.View, folder: str) -> scene.Scene:
    """The one-keyframe scene that `zoomreel frame` would load for this view."""
    W, H = view.size
    p = Path(folder) / "bench.toml"
    p.write_text(
        f'[model]\nnonlinearity = "{model.nonlinearity}"\nsteps = {model.steps}\n'
        f"[video]\nsize = [{W}, {H}]\n"
        f'[[keyframe]]\ntime = 0\ncenter = ["{view.center[0]}", "{view.center[1]}"]\nspan = "{view.span}"\n'
    )
    return scene.load(p)


def check_kernel(kernel: str) -> None:
    """Exit with a clear line when the network kind has no such implementation."""
    known = sorted(f.impl for f in engine.implementations("network"))
    if kernel not in known:
        sys.exit(f"--kernel {kernel}: this zoomreel has no {kernel!r} implementation of the network step "
                 f"(registered: {', '.join(known)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128, help="the grid is size x size pixels")
    ap.add_argument("--steps", type=int, default=200, help="training steps per pixel")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--kernel", default="xla", help="the engine's implementation of the network step: xla or fused")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--center", default="1.5,1.5", help="view centre x,y (log10 learning rates)")
    ap.add_argument("--span", default="9", help="view width (log10 units)")
    ap.add_argument("--no-frame", action="store_true", help="time the engine only, not the whole frame")
    a = ap.parse_args()
    engine.configure()
    check_kernel(a.kernel)
    os.environ[KERNEL_ENV] = a.kernel  # the whole frame trains with it too

    model = Model(steps=a.steps)
    cx, cy = (Decimal(v) for v in a.center.split(","))
    view = path.View((cx, cy), Decimal(a.span), (a.size, a.size))
    standard = (cx, cy, Decimal(a.span)) == (Decimal("1.5"), Decimal("1.5"), Decimal(9))
    view_name = "standard view" if standard else f"view centre ({cx}, {cy}) span {a.span}"
    work = a.size * a.size * model.steps
    fl = bench.flops_per_pixel_step(model)
    print(bench.machine())
    print(f"grid {a.size}x{a.size}, {a.steps} steps, {view_name}, kernel {a.kernel}; "
          f"chunk float32 {engine.default_chunk(model, 'float32')} float64 {engine.default_chunk(model, 'float64')}; "
          f"flops/pixel-step {fl:.3g}")
    ratios = {}
    tmp = tempfile.TemporaryDirectory()
    sc = frame_scene(model, view, tmp.name)
    for dtype in a.dtypes.split(","):
        A = engine.arithmetic(dtype)
        hx, hy = path.pixel_hypers(model, view, A)
        small = slice(0, min(hx.size, 64))  # warm up: compile both
        baseline(model, hx[small], hy[small], A)
        try:
            engine.train(model, hx[small], hy[small], A, impl=a.kernel)
        except UserError as e:
            sys.exit(f"--kernel {a.kernel}: {e.line()}")
        sides = {
            "baseline": lambda: baseline(model, hx, hy, A),
            "engine": lambda: engine.train(model, hx, hy, A, impl=a.kernel),
        }
        if not a.no_frame:
            sides["frame"] = lambda: views.compute_frame(sc, view, dtype)
        best = bench.alternate(sides, a.repeats)
        (b, vb), (e, res) = best["baseline"], best["engine"]
        ve = res.values
        rb, re_ = work / b, work / e
        agree = float(np.mean((vb < 0) == (ve < 0)))
        trained = res.computed / work
        line = (f"{dtype}: baseline {rb:.3g} px-steps/s ({rb * fl / 1e9:.1f} GFLOP/s), "
                f"zoomreel ({res.implementation}) {re_:.3g} px-steps/s ({re_ * fl / 1e9:.1f} GFLOP/s effective"
                f"; trained {trained:.0%} of the pixel-steps, the rest retired by early exit"
                f", so {re_ * trained * fl / 1e9:.1f} GFLOP/s executed")
        pk = bench.peak(dtype)
        if pk:
            line += f" = {re_ * trained * fl / pk:.0%} of peak {pk / 1e9:.0f}"
        line += (f"), ratio {bench.ratio(b, e):.2f}, class agreement {agree:.2%}, "
                 f"seconds baseline {b:.2f} zoomreel {e:.2f}")
        print(line, flush=True)
        if "frame" in best:
            tf, fr = best["frame"]
            fv = fr.raw.ravel()
            same = np.array_equal(fv, ve)
            if not same:
                differ = int(np.sum(fv != ve))
                flips = int(np.sum((fv < 0) != (ve < 0)))
                same = f"False ({differ} pixels differ, {flips} change class)"
            print(
                f"{dtype} frame: `zoomreel frame --precision {dtype}` trains in {tf:.2f} s "
                f"(precision probe of {fr.decision.probe_pixels} px included), {work / tf:.3g} px-steps/s, "
                f"ratio {bench.ratio(b, tf):.2f} against the baseline; same values as the engine alone: {same}",
                flush=True,
            )
        ratios[dtype] = bench.ratio(b, e)
    tmp.cleanup()
    print("ratio " + " ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
