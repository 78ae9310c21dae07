"""What double-double costs per pixel-step, against float64, on this machine.

Trains the same pixels (both learning rates 0.01: every run converges, so
nothing retires early and every pixel trains every step) through
``engine.train`` in float64 and in dd, on one device. Each arithmetic is
run once to compile (its time printed apart), then ``--repeats`` times,
alternating, and the fastest run of each counts. Prints seconds per
pixel-step of both, the ratio dd / float64 (the baseline is float64, timed
in the same run), and the machine.

    python benchmarks/dd_cost.py [--pixels 256] [--steps 50] [--repeats 3]
        [--nonlinearity tanh] [--devices 1] [--chunk B]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from zoomreel import engine
from zoomreel.model import Model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nonlinearity", default="tanh")
    ap.add_argument("--devices", type=int, default=1, help="XLA CPU devices (ignored on a GPU)")
    ap.add_argument("--chunk", type=int, default=None, help="dd's chunk (default: the engine's)")
    args = ap.parse_args()
    engine.configure(cpu_devices=args.devices)
    import jax

    model = Model(nonlinearity=args.nonlinearity, steps=args.steps)
    lr = np.full(args.pixels, 0.01)
    hosts = {"float64": (lr, lr), "dd": (np.stack([lr, np.zeros_like(lr)], -1),) * 2}

    def run(name):
        t = time.perf_counter()
        res = engine.train(model, *hosts[name], name, early_exit=False, chunk=args.chunk if name == "dd" else None)
        return time.perf_counter() - t, res

    first = {}
    for name in hosts:
        first[name], res = run(name)
        assert res.computed == args.pixels * args.steps, "some pixels stopped early"
        assert np.all(res.values < 0), "pick learning rates that converge"
    best = {name: float("inf") for name in hosts}
    for _ in range(args.repeats):
        for name in hosts:
            best[name] = min(best[name], run(name)[0])
    ps = args.pixels * args.steps
    d = jax.devices()[0]
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores; "
          f"device {d.platform}:{getattr(d, 'device_kind', '')} x{len(jax.devices())}; jax {jax.__version__}")
    print(f"model: {args.nonlinearity}, n = {model.width}, {model.n_points} points; "
          f"{args.pixels} pixels x {args.steps} steps, best of {args.repeats}; "
          f"dd chunk {args.chunk or engine.default_chunk(model, 'dd')}")
    for name in hosts:
        print(f"{name:8s} first call (compile + run) {first[name]:7.2f} s   "
              f"run {best[name]:7.3f} s   {best[name] / ps * 1e6:8.2f} us per pixel-step")
    print(f"dd / float64 per pixel-step: {best['dd'] / best['float64']:.1f}x")


if __name__ == "__main__":
    main()
