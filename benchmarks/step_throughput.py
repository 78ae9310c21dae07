"""How fast the engine's segment function trains on this device, by chunk size.

A diagnostic for choosing a device's chunk size, not a speed claim: one chunk
of B pixels (all converging, so no chunk stops early) trains one 25-step
segment several times, on the default device, and each size prints the time
per step, pixel-steps/s, GFLOP/s and the fraction of the device's peak. The
baseline of each dtype is its smallest chunk, timed in the same run.

With --profile B, it also traces one chunk size under jax.profiler and prints
the device's kernels (or XLA ops) with their share of the time.

    python benchmarks/step_throughput.py [--dtypes float32,float64]
        [--chunks 1024,4096,16384,65536] [--calls 5] [--profile 16384]
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

from zoomreel import engine  # first: it sets up JAX's devices
from zoomreel.model import Model

import jax

sys.path.insert(0, os.path.dirname(__file__))
from bench_engine import PEAKS, flops_per_pixel_step  # noqa: E402

SEG = engine.SEGMENT_STEPS


def chunk_args(model, dtype, B, lr=0.01):
    """Arguments of the segment function for B pixels with both learning rates
    ``lr`` (0.01 converges: the chunk never stops early), on the default device."""
    d = engine.DTYPES[dtype]
    dr = engine.draws(model)
    state = engine._initial_state(model, dr, np.zeros(B), d)
    lr = np.full(B, lr, d)
    dev = jax.devices()[0]
    put = [jax.device_put(v, dev) for v in (*state, lr, lr, dr.x.astype(d), dr.y.astype(d))]
    return put + [None, jax.device_put(np.full(B, np.nan, d), dev)]


def time_chunk(model, dtype, B, calls):
    fn = engine._segment_fn(model, dtype, B, SEG)
    args = chunk_args(model, dtype, B)
    out = jax.block_until_ready(fn(*args))  # compile, warm up
    assert int(out[-1]) == SEG, "the chunk stopped early: pick converging learning rates"
    t = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / (calls * SEG)


def trace_events(fn, args, calls):
    """The jax.profiler trace events of ``calls`` calls of fn(*args), compiled first."""
    jax.block_until_ready(fn(*args))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(calls):
                out = fn(*args)
            jax.block_until_ready(out)
        trace = glob.glob(os.path.join(tmp, "**", "*.trace.json.gz"), recursive=True)[0]
        return json.load(gzip.open(trace))["traceEvents"]


def profile(model, dtype, B, calls):
    events = trace_events(engine._segment_fn(model, dtype, B, SEG), chunk_args(model, dtype, B), calls)
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    device_pids = {p for p, n in names.items() if "GPU" in n or "gpu" in n or "TPU" in n}
    ops = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e["pid"] in device_pids:
            ops[e["name"]] += e["dur"]
    total = sum(ops.values())
    per = calls * SEG * B
    print(f"profile {dtype} chunk {B}: device kernels {total / per * 1e3:.3f} ns per pixel-step in all "
          f"(processes: {sorted(names[p] for p in device_pids) or 'none found'})")
    for name, us in ops.most_common(14):
        print(f"  {us / per * 1e3:8.3f} ns  {us / max(total, 1e-9):6.1%}  {name[:110]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--chunks", default="1024,4096,16384,65536")
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--profile", type=int, default=0, help="also trace this chunk size")
    a = ap.parse_args()
    model = Model(steps=500)
    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    peaks = PEAKS.get(kind, PEAKS["cpu"] if dev.platform == "cpu" else None)
    fl = flops_per_pixel_step(model)
    print(f"machine: {platform.node()} {platform.machine()}; device {engine.device_name()} ({kind}); jax {jax.__version__}")
    for dtype in a.dtypes.split(","):
        base = None
        for B in (int(c) for c in a.chunks.split(",")):
            s = time_chunk(model, dtype, B, a.calls)
            rate = B / s
            base = base or rate
            line = f"{dtype} chunk {B:6d}: {s * 1e6:9.1f} us per step, {rate:.3g} px-steps/s, {rate * fl / 1e9:8.1f} GFLOP/s"
            if peaks:
                line += f" = {rate * fl / peaks[dtype]:5.1%} of peak"
            print(line + f", ratio to chunk {a.chunks.split(',')[0]}: {rate / base:.2f}", flush=True)
        if a.profile:
            profile(model, dtype, a.profile, a.calls)


if __name__ == "__main__":
    main()
