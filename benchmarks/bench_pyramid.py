"""Pyramid mode against frames mode on one zoom path: work, wall time, quality.

The path zooms 2x every ``--seconds-per-doubling`` about ``--center`` for
``--doublings`` doublings, starting at ``--span``; the default is the
reference experiment's pacing, 960x540 at 30 fps, 2x per 1.5 s (45 frames per
doubling), 5 doublings, 100 steps.

1. Pixel-steps of both modes at the full size, for this pacing and for
   keyframes/tanh.toml's faster one (12.5 frames per doubling): counted from
   the plans, nothing trained.
2. Both modes rendered in this process at ``--scale`` of the size and
   ``--steps`` steps (the full default takes hours on a 2-core CPU: there,
   run e.g. ``--scale 0.25 --steps 20 --doublings 1``), each into
   a fresh folder, timed (training, composing and encoding); frames first,
   then pyramid, so the compiled programs favour neither much.
3. Quality of ``--check`` evenly spread pyramid frames against the same view
   trained directly at 2x per axis and area-downsampled (2x2 mean): the mean
   absolute difference of the converged fraction per pixel, and the PSNR of
   the RGB (both coloured with the pyramid frame's rank reference). The same
   for the frames-mode frame (one sample per pixel), for comparison.

    python benchmarks/bench_pyramid.py [--scale 1] [--steps 100] [--doublings 5]
        [--fps 30] [--seconds-per-doubling 1.5] [--check 5] [--span 0.2] [--center X,Y] [--plan-only]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from zoomreel import color, engine, render, scene, work
from zoomreel.plan import make_plan
from zoomreel.report import info
from zoomreel.work import FrameUnits, TileReader, TileUnits

TOML = """
title = "bench_pyramid"
[model]
nonlinearity = "tanh"
steps = {steps}
[video]
size = [{w}, {h}]
fps = {fps}
mode = "{mode}"
[[keyframe]]
time = 0.0
center = ["{cx}", "{cy}"]
span = "{span}"
[[keyframe]]
time = "{t1}"
center = ["{cx}", "{cy}"]
span = "{span1}"
"""


def make_scene(folder: Path, mode: str, size, steps, fps, spd, doublings, center, span) -> scene.Scene:
    w, h = (2 * round(s / 2) for s in size)
    text = TOML.format(steps=steps, w=w, h=h, fps=fps, mode=mode, cx=center[0], cy=center[1], span=span,
                       t1=Decimal(spd) * doublings, span1=Decimal(span) / 2**doublings)
    p = folder / f"bench-{mode}.toml"
    p.write_text(text)
    return scene.load(p)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--full-steps", type=int, default=100)
    ap.add_argument("--doublings", type=int, default=5)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds-per-doubling", default="1.5")
    ap.add_argument("--check", type=int, default=5)
    ap.add_argument("--center", default="1.56220589062,2.222979")
    ap.add_argument("--span", default="0.2")
    ap.add_argument("--plan-only", action="store_true", help="only step 1 (counts, nothing trained)")
    a = ap.parse_args()
    engine.configure()
    W, H = (int(v) for v in a.size.lower().split("x"))
    center = a.center.split(",")
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores; device {engine.device_name()}")
    print(f"path: centre ({center[0]}, {center[1]}), span {a.span} -> /2**{a.doublings}, 2x every {a.seconds_per_doubling} s")
    tmp = Path(tempfile.mkdtemp(prefix="bench-pyramid-"))
    try:
        run(a, W, H, center, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, W, H, center, tmp: Path) -> None:

    # 1. work at the full size, from the plans
    # tanh.toml's pacing, 12.5 frames per doubling, as 2x per 0.5 s at 25 fps
    for label, fps, spd in (("this pacing", a.fps, a.seconds_per_doubling), ("tanh.toml pacing", 25, "0.5")):
        fpd = float(Decimal(spd) * fps)
        ps = {}
        for mode in ("frames", "pyramid"):
            s = make_scene(tmp, mode, (W, H), a.full_steps, fps, spd, a.doublings, center, a.span)
            ps[mode] = info(make_plan(s, out=tmp / "plan"))["pixel_steps"]
        print(f"full size {W}x{H}, {a.full_steps} steps, {label} ({fpd:g} frames per doubling): "
              f"frames {ps['frames']:.3g} pixel-steps, pyramid {ps['pyramid']:.3g}, ratio {ps['frames'] / ps['pyramid']:.2f}")

    if a.plan_only:
        return

    # 2. both modes rendered at the reduced size
    size = (W * a.scale, H * a.scale)
    plans, walls, steps = {}, {}, {}
    for mode in ("frames", "pyramid"):
        s = make_scene(tmp, mode, size, a.steps, a.fps, a.seconds_per_doubling, a.doublings, center, a.span)
        plan = make_plan(s, out=tmp / mode)
        steps[mode] = info(plan)["pixel_steps"]
        t0 = time.perf_counter()
        res = render.render(plan)
        walls[mode] = time.perf_counter() - t0
        plans[mode] = plan
        print(f"{mode}: {plan.size[0]}x{plan.size[1]}, {plan.n_frames} frames, {a.steps} steps: {steps[mode]:.3g} pixel-steps, "
              f"wall {walls[mode]:.1f} s (training {res.engine_seconds:.1f} s, composing+encoding {res.encode_seconds:.1f} s)")
    rs, rw = steps["frames"] / steps["pyramid"], walls["frames"] / walls["pyramid"]
    print(f"reduced size: pixel-step ratio {rs:.2f}, wall-time ratio {rw:.2f} ({rw / rs:.0%} of the pixel-step ratio)")

    # 3. quality against 2x-supersampled direct training
    pp, fp = plans["pyramid"], plans["frames"]
    n = pp.n_frames
    ks = sorted({round(i * (n - 1) / max(1, a.check - 1)) for i in range(a.check)})
    reader = TileReader(TileUnits.of_plan(pp))
    sums = [render.pyramid_frame(pp, k, reader).summary for k in range(n)]
    radius = max(0, int(round(render.BLEND_SECONDS * pp.fps)))
    rows = []
    for k in ks:
        kk, ws = color.window_weights(k, n, radius)
        ref = color.blend([sums[j] for j in kk], ws)
        rgb, frac, _ = render.pyramid_frame(pp, k, reader, ref)
        view = pp.view(k)
        w, h = view.size
        big = work.train_view(pp.scene.model, type(view)(view.center, view.span, (2 * w, 2 * h)), pp.precision).raw
        want_frac = (big < 0).reshape(h, 2, w, 2).mean(axis=(1, 3))
        want_rgb = color.colorize(big, ref, pp.scene.video.palette).astype(np.float64).reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
        want_rgb = np.clip(np.rint(want_rgb), 0, 255)
        raw_f = FrameUnits(fp).fetch(k).raw  # rendered above: read from the cache
        rows.append((k, float(want_frac.mean()), float(np.abs(frac - want_frac).mean()), psnr(rgb, want_rgb),
                     float(np.abs((raw_f < 0) - want_frac).mean()), psnr(color.colorize(raw_f, ref, pp.scene.video.palette), want_rgb)))
    print("quality against the view trained at 2x per axis, area-downsampled:")
    print("frame  span        converged  pyramid |dfrac|  pyramid PSNR dB  frames |dfrac|  frames PSNR dB")
    for k, conv, dp, sp, df, sf in rows:
        print(f"{k:5d}  {float(pp.view(k).span):<10.4g}  {conv:9.3f}  {dp:15.4f}  {sp:15.2f}  {df:14.4f}  {sf:14.2f}")
    print(f"mean: pyramid |dfrac| {np.mean([r[2] for r in rows]):.4f} PSNR {np.mean([r[3] for r in rows]):.2f} dB; "
          f"frames |dfrac| {np.mean([r[4] for r in rows]):.4f} PSNR {np.mean([r[5] for r in rows]):.2f} dB")
    print(f"ratio pixel-steps {rs:.2f} wall {rw:.2f}")


if __name__ == "__main__":
    main()
