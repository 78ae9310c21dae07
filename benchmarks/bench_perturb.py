"""Perturbation: its cost against float64, and its agreement with dd and mpmath.

The parts (``--part``, default all):

- ``cost``: the same pixels (both learning rates near 0.01: every run
  converges, so nothing retires early) trained by float64 and by
  perturbation from a reference among them, on one device, each compiled
  first and then timed ``--repeats`` times, alternating; the fastest of
  each counts. Prints seconds per pixel-step of both and their ratio, and
  apart from it the reference's own time (once per frame).
- ``dd``: a frame at span 1e-20 on a point of the tanh boundary found by
  ``locate --rule busiest`` (the paper's network, 100 steps) trained in dd and by perturbation: the
  share of pixels in the same class, and the glitch share.
- ``mpmath``: pixels next to a boundary point of a small network (tanh,
  width 8, seed 0) at spans 1e-40 and 1e-60 and at 100 and 400 steps, by
  perturbation and by tests/reference_mp.py at the reference's digits + 20:
  classes and the relative difference of the measure. The boundary point
  at each step count is found first by bisection with perturbation.
- ``deep``: the last frame of keyframes/deep.toml (``--frame``, default
  16x9) as auto trains it: its arithmetic, resolved and redone shares and
  how often the boundary crosses its rows; then ``--exact`` pixels of it,
  as many of each class, nearest the boundary, trained exactly by the
  reference's fixed point (engine/reference.py, itself checked against
  mpmath by the suite) at two digit counts, against the frame's classes.
- ``deepcost``: that last frame against a float64 frame of the same size
  and steps earlier in the zoom (``--against`` seconds in), both as
  ``zoomreel frame`` trains them, references trained afresh, the second
  run of each; then perturbation's training alone per pixel-step trained
  against float64's. Use ``--devices 2`` to train as the CLI does.

    python benchmarks/bench_perturb.py [--part cost|dd|mpmath|deep|deepcost] [--pixels 256] [--steps 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np

from zoomreel import engine, path
from zoomreel.engine import LAST, V_CAP, draws, perturb, reference
from zoomreel.model import Model
from zoomreel.view import View

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))


def machine() -> str:
    import jax

    d = jax.devices()[0]
    return f"{platform.machine()} {os.cpu_count()} cores, {d.platform}, jax {jax.__version__}"


def cost(args) -> None:
    model = Model(nonlinearity=args.nonlinearity, steps=args.steps)
    n = args.pixels
    with localcontext(prec=60):
        base = Decimal("0.01")
        lrs = [base * (1 + Decimal(k) / Decimal(10**12)) for k in range(n)]
    hx = np.array([float(v) for v in lrs])
    t = time.perf_counter()
    ref = reference.network_orbit(model, draws(model), base, base, reference.digits_needed(1e-12, model.steps),
                                  engine.RETIRE_V)
    t_ref = time.perf_counter() - t
    with localcontext(prec=60):
        da = np.array([float(v - base) for v in lrs])

    def f64():
        return engine.train(model, hx, hx, "float64", early_exit=False).values

    def pert():
        return perturb.train_offsets(model, ref, da, da)[0]

    runs = {"float64": f64, "perturb": pert}
    first, best, values = {}, dict.fromkeys(runs, float("inf")), {}
    for name, fn in runs.items():
        t = time.perf_counter()
        values[name] = fn()
        first[name] = time.perf_counter() - t
    assert np.all(values["float64"] < 0), "pick learning rates that converge"
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    ps = n * model.steps
    print(f"machine: {machine()}")
    print(f"cost: {n} pixels x {model.steps} steps, {model.nonlinearity}, width {model.width}")
    for name in runs:
        print(f"  {name:8s} {best[name] / ps * 1e6:8.1f} us per pixel-step (first run with compile {first[name]:.1f} s)")
    print(f"  ratio perturb / float64: {best['perturb'] / best['float64']:.2f}")
    print(f"  the reference ({ref.digits} digits): {t_ref:.1f} s, once per frame "
          f"(= {t_ref / ps * 1e6:.1f} us per pixel-step of this {n}-pixel frame)")
    print(f"  classes equal: {np.mean((values['float64'] > 0) == (values['perturb'] > 0)):.1%}, "
          f"largest relative difference {np.max(np.abs(values['perturb'] / values['float64'] - 1)):.1e}")


def dd(args) -> None:
    model = Model(nonlinearity="tanh", steps=100)
    centre = (Decimal("1.46073469572085992456721208328750"), Decimal("2.25220947553221534472070784127500"))
    view = View(centre, Decimal("1e-20"), (args.size, args.size))
    t = time.perf_counter()
    res = perturb.train_view(model, view)
    t_p = time.perf_counter() - t
    hx, hy = path.pixel_hypers(model, view, engine.DD)
    t = time.perf_counter()
    d = engine.train(model, hx, hy, engine.DD).values
    t_d = time.perf_counter() - t
    same = np.mean((d > 0) == (res.values > 0))
    print(f"machine: {machine()}")
    print(f"dd: {args.size}x{args.size} at span 1e-20 on a tanh boundary point, 100 steps: "
          f"converged {np.mean(d < 0):.1%}; classes equal {same:.2%}; glitched {res.glitched.mean():.1%} "
          f"({res.references} references, {res.by_dd} by dd); perturb {t_p:.1f} s, dd {t_d:.1f} s")


def boundary(model: Model, x: Decimal, lo: Decimal, hi: Decimal, depth: Decimal) -> Decimal:
    """A point of the boundary along the line at ``x`` in [lo, hi] (converged
    below, diverged above) to ``depth``, by perturbation: columns of 17
    pixels, ends included."""
    with localcontext(prec=120):
        while hi - lo > depth:
            mid, sp = (lo + hi) / 2, (hi - lo) / 16
            cls = perturb.train_view(model, View((x, mid), sp, (1, 17))).values > 0
            if cls[0] or not cls[-1]:
                raise SystemExit(f"the bracket [{lo}, {hi}] lost the boundary")
            k = int(np.argmax(cls))
            lo, hi = lo + (k - 1) * sp, lo + k * sp
        return (lo + hi) / 2


def mp_pixel(model, x: Decimal, y: Decimal, dps: int):
    import mpmath
    import reference_mp

    with localcontext(prec=dps + 30):
        hx, hy = str(Decimal(10) ** x), str(Decimal(10) ** y)
    losses = reference_mp.losses(model, draws(model), hx, hy, model.steps, dps=dps)
    with mpmath.workdps(dps):
        cap = mpmath.mpf(V_CAP)
        v = [min(u / losses[0], cap) if mpmath.isfinite(u) else cap for u in losses]
        diverged = not sum(v[-LAST:]) / LAST < 1
        return diverged, float(sum(1 / u for u in v) if diverged else -sum(v))


def mp(args) -> None:
    print(f"machine: {machine()}")
    x = Decimal("1.0")
    for steps, bracket in ((100, ("1.40", "1.75")), (400, ("1.40", "1.75"))):
        model = Model(nonlinearity="tanh", width=8, steps=steps, seed=0)
        lo, hi = (Decimal(b) for b in bracket)
        # the bracket's ends at this step count: the first sign change along a coarse column
        col = np.linspace(float(lo), float(hi), 65)
        vals = perturb.train_view(model, View((x, (lo + hi) / 2), (hi - lo) / 64, (1, 65))).values
        k = int(np.argmax(vals > 0))
        with localcontext(prec=60):
            lo, hi = lo + (k - 1) * (hi - lo) / 64, lo + k * (hi - lo) / 64
        t = time.perf_counter()
        y0 = boundary(model, x, lo, hi, Decimal("1e-64"))
        print(f"{steps} steps: boundary near y = {y0:.70f} ({time.perf_counter() - t:.0f} s to find; "
              f"first coarse crossing at {col[k]:.4f})")
        for span in ("1e-40", "1e-60"):
            view = View((x, y0), Decimal(span), (1, 8))
            t = time.perf_counter()
            res = perturb.train_view(model, view)
            t_p = time.perf_counter() - t
            _, ys = path.axis_coords(view, 120)
            out = []
            for i in range(8):
                div, val = mp_pixel(model, x, ys[i], res.digits + 20)
                out.append(((res.values[i] > 0) == div, abs(res.values[i] / val - 1)))
            same = sum(o[0] for o in out)
            print(f"  span {span}: classes {''.join('d' if v > 0 else 'c' for v in res.values)}; "
                  f"same as mpmath ({res.digits + 20} digits) for {same}/8 pixels, measure to "
                  f"{max(o[1] for o in out):.1e} relative; reference {res.digits} digits, {t_p:.1f} s")


def deep(args) -> None:
    from zoomreel import scene, work
    from zoomreel.engine.network import RETIRE_V

    s = scene.load(Path(__file__).parent.parent / "keyframes" / "deep.toml")
    W, H = (int(v) for v in args.frame.split("x"))
    view = path.view_at(s, s.duration, (W, H))
    t = time.perf_counter()
    res = work.train_view(s.model, view)
    t_f = time.perf_counter() - t
    d, c = res.decision, res.raw < 0
    cross = (c[:, 1:] != c[:, :-1]).sum(axis=1)
    print(f"machine: {machine()}")
    print(f"deep: {W}x{H} at span {view.span}, {s.model.steps} steps: {d.dtype}, resolved {d.resolved:.1%}, "
          f"redone {d.redone:.1%}, converged {c.mean():.1%}, boundary crossings per row {cross.tolist()}; {t_f:.0f} s")
    for r in range(H - 1, -1, -1):
        print("  " + "".join("#" if v else "." for v in c[r]))
    # the pixels nearest the boundary: those with a neighbour of the other class
    edge = np.zeros_like(c)
    edge[:, 1:] |= c[:, 1:] != c[:, :-1]
    edge[:, :-1] |= c[:, 1:] != c[:, :-1]
    picks = [p for cls in (True, False) for p in np.argwhere(edge & (c == cls))[: args.exact // 2]]
    xs, ys = path.axis_coords(view, 200)
    digits = reference.digits_needed(perturb._finest(s.model, view), s.model.steps)
    same = 0
    for r, col in picks:
        with localcontext(prec=250):
            hx, hy = Decimal(10) ** xs[col], Decimal(10) ** ys[r]
        got = []
        t = time.perf_counter()
        for dg in (digits + 20, digits + 50):
            got.append(reference.network_orbit(s.model, draws(s.model), hx, hy, dg, RETIRE_V).converged)
        same += got[0] == got[1] == bool(c[r, col])
        print(f"  pixel (row {r}, column {col}): frame {'converged' if c[r, col] else 'diverged'}, exact at "
              f"{digits + 20} and {digits + 50} digits {['converged' if g else 'diverged' for g in got]} "
              f"({time.perf_counter() - t:.0f} s)")
    print(f"  the frame's class is the exact one for {same} of {len(picks)} pixels")


def deep_cost(args) -> None:
    """The shipped deep zoom's last frame against a float64 frame of the same
    size and steps earlier in the zoom, in this run: whole frames as
    ``zoomreel frame`` trains them (precision probe included, references
    trained afresh), then the training alone per pixel-step trained."""
    from zoomreel import scene, work
    from zoomreel.engine import keep

    s = scene.load(Path(__file__).parent.parent / "keyframes" / "deep.toml")
    W, H = (int(v) for v in args.frame.split("x"))
    last = path.view_at(s, s.duration, (W, H))
    early = path.view_at(s, Decimal(args.against), (W, H))
    kept = keep.file
    keep.file = lambda folder, key: None if folder == "references" else kept(folder, key)  # noqa: E731

    def afresh():
        perturb._orbit.cache_clear()
        perturb._PLANS.clear()

    frames = {}
    for name, view, precision in (("float64", early, "float64"), ("perturb", last, "auto")) * 2:
        afresh()
        t = time.perf_counter()
        res = work.train_view(s.model, view, precision)
        frames[name] = (time.perf_counter() - t, res.decision)  # the second of each: compiled
    afresh()
    spent = []
    trained = reference.network_orbit

    def timed(*a, **k):  # the references' own time, inside the frame's
        t0 = time.perf_counter()
        out = trained(*a, **k)
        spent.append(time.perf_counter() - t0)
        return out

    reference.network_orbit = timed
    t = time.perf_counter()
    res = perturb.train_view(s.model, last)
    t_p = time.perf_counter() - t
    reference.network_orbit = trained
    t_orbits = sum(spent)
    afresh()
    hx, hy = path.pixel_hypers(s.model, early, engine.FLOAT64)
    t_f = float("inf")
    for _ in range(2):  # the second: compiled
        t = time.perf_counter()
        f = engine.train(s.model, hx, hy, "float64")
        t_f = min(t_f, time.perf_counter() - t)
    print(f"machine: {machine()}")
    print(f"deep cost: {W}x{H}, {s.model.steps} steps; the last frame (span {float(last.span):.3g}) against "
          f"t={args.against} (span {float(early.span):.3g})")
    for name, (sec, d) in frames.items():
        extra = f", redone {d.redone:.1%}" if d.redone is not None else ""
        print(f"  frame {name:8s} {sec:6.1f} s ({d.dtype}, resolved {d.resolved:.1%}{extra})")
    print(f"  ratio perturb / float64 frame: {frames['perturb'][0] / frames['float64'][0]:.2f}")
    print(f"  training alone: perturbation {t_p:.1f} s for {res.computed} pixel-steps ({res.references} references, "
          f"{res.by_dd} pixels by dd; {len(spent)} orbits trained, {t_orbits:.1f} s of it), float64 {t_f:.1f} s for {f.computed}")
    per_p = (t_p - t_orbits) / res.computed
    per_f = t_f / f.computed
    print(f"  per pixel-step trained, references aside: perturbation {per_p * 1e6:.2f} us, float64 "
          f"{per_f * 1e6:.2f} us, ratio {per_p / per_f:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("cost", "dd", "mpmath", "deep", "deepcost", "all"), default="all")
    ap.add_argument("--pixels", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nonlinearity", default="tanh")
    ap.add_argument("--size", type=int, default=32, help="the dd part's frame side")
    ap.add_argument("--frame", default="16x9", help="the deep part's frame, WxH")
    ap.add_argument("--exact", type=int, default=4, help="the deep part's pixels checked exactly")
    ap.add_argument("--against", default="8", help="deepcost: the float64 frame's time in the deep zoom")
    ap.add_argument("--devices", type=int, default=1, help="XLA CPU devices (ignored on a GPU)")
    args = ap.parse_args()
    engine.configure(cpu_devices=args.devices)
    for part, fn in (("cost", cost), ("dd", dd), ("mpmath", mp), ("deep", deep),
                     ("deepcost", deep_cost)):
        if args.part in (part, "all"):
            fn(args)


if __name__ == "__main__":
    main()
