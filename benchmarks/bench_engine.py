"""zoomreel's engine against the straightforward JAX formulation, same grid, same process.

The baseline is what a direct port of the reference does: jax.vmap over pixels
of one network's value_and_grad step, all pixels in one batch, the steps under
lax.scan, the loss of every step recorded. It lives only here, as the
yardstick. Runs alternate (baseline, engine, baseline, engine, ...) and the
best time of each is kept.

    python benchmarks/bench_engine.py [--size 128] [--steps 200] [--repeats 2]
                                      [--center 1.5,1.5] [--span 9]
                                      [--kernels xla,fused] [--hd] [--no-baseline]

The default view is the paper's standard one; a view on the boundary (say
--center 1.5622,2.2230 --span 0.1) shows the engine with little early exit.

Besides the engine alone, it times what `zoomreel frame --precision <dtype>`
does for the same view (precision probe included; the probe's pixels in the
frame's dtype are not trained twice), against the same baseline timings
(--no-frame skips it).

--kernels times each engine kernel (engine.implementations: xla, fused) in
the same run, and prints how their values compare; --hd fused also trains
one 1920x1080 float32 frame of the view with the fused kernel (the first
call compiles: on a GPU, warm it with a run of the same kernel before). The last line is
`ratio float32-<kernel> <x> float64-<kernel> <y>` (the engine alone against
the baseline; with --no-baseline, each kernel against the first).

--optimizers times the paper's network trained by gradient descent on the
hand-written step and on the generic one (jax.grad + optax), and by momentum
and Adam (generic), on the same view in the same run: px-steps/s of the
pixel-steps actually trained (early exit differs between optimizers), each
as a ratio against the hand-written GD, and each pixel's state in bytes.
--examples FILES also times each keyframe file's first keyframe (e.g.
examples/*.toml) at --size, in float64.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from zoomreel import bench, engine, path, scene, work
from zoomreel.bench import flops_per_pixel_step, timed
from zoomreel.model import Model

import jax
import jax.numpy as jnp
from jax import lax

def baseline(model: Model, hx, hy, dtype):
    d = engine.draws(model)
    dt = engine.arithmetic(dtype).dtype
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

    # The same full-precision products as the engine (engine.FULL): on a GPU,
    # JAX's default would let the baseline's float32 products run in TF32,
    # which is faster and less exact (on the CPU this changes nothing).
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


def engine_run(model, hx, hy, dtype, kernel):
    """The engine alone with one kernel: (seconds, TrainResult)."""
    return timed(lambda: engine.train(model, hx, hy, dtype, impl=kernel))


def executed(res, work, seconds, model, peak) -> str:
    """Rates of one engine run: effective, executed, and the share of the peak."""
    fl = flops_per_pixel_step(model)
    rate = work / seconds
    trained = res.computed / work
    out = (f"{rate:.3g} px-steps/s ({rate * fl / 1e9:.1f} GFLOP/s effective; trained {trained:.0%} of the "
           f"pixel-steps, the rest retired by early exit, so {rate * trained * fl / 1e9:.1f} GFLOP/s executed")
    if peak:
        out += f" = {rate * trained * fl / peak:.1%} of peak {peak / 1e9:.0f}"
    return out + ")"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--kernels", "--kernel", default=None,
                    help="engine kernels to time, comma-separated (xla, fused); default: the one chosen here")
    ap.add_argument("--center", default="1.5,1.5", help="view centre x,y (log10 learning rates)")
    ap.add_argument("--span", default="9", help="view width (log10 units)")
    ap.add_argument("--no-frame", action="store_true", help="time the engine only, not the whole frame")
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline (no ratio)")
    ap.add_argument("--hd", default="", metavar="KERNELS",
                    help="also train one 1920x1080 float32 frame of the view with each of these kernels (comma-separated)")
    ap.add_argument("--optimizers", action="store_true", help="GD (hand-written, generic), momentum and Adam on the paper's network")
    ap.add_argument("--examples", nargs="*", default=None, help="keyframe files whose first keyframe to time (float64)")
    a = ap.parse_args()
    from decimal import Decimal

    if a.optimizers or a.examples is not None:
        engine.configure()
        print(bench.machine())
        if a.optimizers:
            optimizer_rates(a)
        if a.examples:
            example_rates(a)
        return

    engine.configure()
    model = Model(steps=a.steps)
    kernels = a.kernels.split(",") if a.kernels else [engine.implementation(model).impl]
    cx, cy = (Decimal(v) for v in a.center.split(","))
    view = path.View((cx, cy), Decimal(a.span), (a.size, a.size))
    standard = (cx, cy, Decimal(a.span)) == (Decimal("1.5"), Decimal("1.5"), Decimal(9))
    view_name = "standard view" if standard else f"view centre ({cx}, {cy}) span {a.span}"
    peaks = {d: bench.peak(d) for d in ("float32", "float64")}
    peaks = peaks if all(peaks.values()) else None
    print(bench.machine())
    print(f"grid {a.size}x{a.size}, {a.steps} steps, {view_name}; kernels {','.join(kernels)}; chunk float32 {engine.default_chunk(model, 'float32')} "
          f"float64 {engine.default_chunk(model, 'float64')}; flops/pixel-step {flops_per_pixel_step(model):.3g}"
          + (f"; peaks float32 {peaks['float32'] / 1e9:.0f} GFLOP/s, float64 {peaks['float64'] / 1e9:.0f} GFLOP/s" if peaks else ""))
    ratios = {}
    for dtype in a.dtypes.split(","):
        A = engine.arithmetic(dtype)
        hx, hy = path.pixel_hypers(model, view, A)
        px_steps = hx.size * model.steps
        peak = peaks[dtype] if peaks else None
        # warm up: compile everything once
        small = slice(0, min(hx.size, 64))
        if not a.no_baseline:
            baseline(model, hx[small], hy[small], dtype)
        for k in kernels:  # one segment of the whole grid: the same programs as the timed runs
            engine.train(dataclasses.replace(model, steps=engine.SEGMENT_STEPS), hx, hy, dtype, impl=k)
        tb, te, tf = [], {k: [] for k in kernels}, {k: [] for k in kernels}
        vb, ve, fr = None, {}, {}
        tmp = tempfile.TemporaryDirectory()
        sc = frame_scene(model, view, tmp.name)
        for _ in range(a.repeats):
            if not a.no_baseline:
                t, vb = timed(lambda: baseline(model, hx, hy, dtype))
                tb.append(t)
            for k in kernels:
                t, ve[k] = engine_run(model, hx, hy, dtype, k)
                te[k].append(t)
                if not a.no_frame:
                    os.environ[engine.formulation.KERNEL_ENV] = k  # the frame chooses as `zoomreel frame` does
                    t, fr[k] = timed(lambda: work.train_view(sc.model, view, dtype, sc.keyframes_where))
                    del os.environ[engine.formulation.KERNEL_ENV]
                    tf[k].append(t)
        tmp.cleanup()
        b = min(tb) if tb else None
        for k in kernels:
            e = min(te[k])
            res = ve[k]
            line = f"{dtype} {k}: zoomreel {executed(res, px_steps, e, model, peak)}, seconds {e:.2f}"
            if b is not None:
                agree = float(np.mean((vb < 0) == (res.values < 0)))
                line += f"; baseline {px_steps / b:.3g} px-steps/s, {b:.2f} s, ratio {b / e:.2f}, class agreement {agree:.2%}"
                ratios[f"{dtype} {k}"] = b / e
            print(line, flush=True)
            if tf[k]:
                fv = fr[k].raw.ravel()
                same = np.array_equal(fv, res.values)
                if not same:
                    differ = int(np.sum(fv != res.values))
                    flips = int(np.sum((fv < 0) != (res.values < 0)))
                    same = f"False ({differ} pixels differ, {flips} change class)"
                print(
                    f"{dtype} {k} frame: `zoomreel frame --precision {dtype}` trains in {min(tf[k]):.2f} s "
                    f"(precision probe of {fr[k].decision.probe_pixels} px included), {px_steps / min(tf[k]):.3g} px-steps/s"
                    + (f", ratio {b / min(tf[k]):.2f} against the baseline" if b else "")
                    + f"; same values as the engine alone: {same}",
                    flush=True,
                )
        if len(kernels) > 1:
            first = ve[kernels[0]].values
            for k in kernels[1:]:
                other = ve[k].values
                rel = np.abs(other - first) / np.abs(first)
                speed = min(te[kernels[0]]) / min(te[k])
                print(f"{dtype} {k} against {kernels[0]}: {speed:.2f} times as fast; same class {np.mean((other < 0) == (first < 0)):.3%} "
                      f"of the pixels; |difference| / |value|: median {np.median(rel):.2g}, 99th percentile {np.quantile(rel, 0.99):.2g}", flush=True)
                if b is None:
                    ratios[f"{dtype} {k}/{kernels[0]}"] = speed
    if a.hd:
        hd = path.View((cx, cy), Decimal(a.span), (1920, 1080))
        hx, hy = path.pixel_hypers(model, hd, engine.FLOAT32)
        for k in a.hd.split(","):
            t, res = engine_run(model, hx, hy, "float32", k)
            print(f"1920x1080 float32 {k}: {t:.2f} s for {a.steps} steps, {executed(res, hx.size * model.steps, t, model, peaks and peaks['float32'])}", flush=True)
    if ratios:
        print("ratio " + " ".join(f"{k.replace(' ', '-')} {v:.2f}" for k, v in ratios.items()))


def state_bytes(model, dtype: str, kernel: str) -> int:
    """Bytes of one pixel's training state (parameters, optimizer state) in ``dtype``."""
    form = engine.formulation.get(model.kind, kernel)
    state = form.initial_state(model, np.zeros(4), engine.arithmetic(dtype))
    return sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(state)) // 4


OPTIMIZER_RUNS = [  # (name, model changes, kernel)
    ("gd hand-written", {}, "xla"),
    ("gd generic", {}, "generic"),
    ("momentum 0.9", {"optimizer": "momentum", "hypers": (("momentum", 0.9),)}, "generic"),
    ("adam", {"optimizer": "adam"}, "generic"),
]


def optimizer_rates(a):
    from decimal import Decimal

    cx, cy = (Decimal(v) for v in a.center.split(","))
    view = path.View((cx, cy), Decimal(a.span), (a.size, a.size))
    print(f"optimizers on the paper's network: grid {a.size}x{a.size}, {a.steps} steps, centre ({cx}, {cy}) span {a.span}; "
          f"best of {a.repeats}; px-steps/s counts the pixel-steps trained (not those retired by early exit)")
    ratios = {}
    for dtype in a.dtypes.split(","):
        base = None
        for name, changes, kernel in OPTIMIZER_RUNS:
            model = dataclasses.replace(Model(steps=a.steps), **changes)
            hx, hy = path.pixel_hypers(model, view, engine.arithmetic(dtype))
            engine.train(dataclasses.replace(model, steps=engine.SEGMENT_STEPS), hx, hy, dtype, impl=kernel)  # compile
            runs = [engine_run(model, hx, hy, dtype, kernel) for _ in range(a.repeats)]
            t, res = min(runs, key=lambda r: r[0])
            rate = res.computed / t
            base = base or rate
            ratios[f"{dtype}-{name.split()[0]}-{kernel}"] = rate / base
            print(f"{dtype} {name} ({kernel}): {rate:.3g} px-steps/s trained, {t:.2f} s, trained {res.computed / (hx.size * model.steps):.0%} "
                  f"of the pixel-steps; ratio {rate / base:.2f} against hand-written GD; state {state_bytes(model, dtype, kernel)} bytes/pixel",
                  flush=True)
    print("ratio " + " ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


def example_rates(a):
    for f in a.examples:
        sc = scene.load(f)
        k = sc.keyframes[0]
        view = path.View(k.center, k.span, (a.size, a.size))
        work.train_view(sc.model, path.View(k.center, k.span, (8, 8)), "float64")  # compile
        t, got = timed(lambda: work.train_view(sc.model, view, "float64"))
        print(f"{f}: {a.size}x{a.size}, {sc.model.steps} steps, float64: {view.pixels * sc.model.steps / t:.3g} px-steps/s "
              f"(frame, {t:.2f} s; kernel {engine.implementation(sc.model).impl})", flush=True)


if __name__ == "__main__":
    main()
