"""How fast one implementation's segment function trains on this device, by chunk size.

A diagnostic for choosing a device's chunk size: one chunk of B pixels (all
converging, so no chunk stops early) trains one 25-step segment several
times, on the default device, and each size prints the time per step,
pixel-steps/s, GFLOP/s and the fraction of the device's peak. The baseline
of each dtype is its smallest chunk, timed in the same run.

With --profile B, it also traces one chunk size under jax.profiler and prints
the device's kernels (or XLA ops) with their share of the time.

    python benchmarks/step_throughput.py [--dtypes float32,float64] [--kernel xla]
        [--chunks 1024,4096,16384,65536] [--calls 5] [--profile 16384]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

from zoomreel import bench, engine
from zoomreel.model import Model

SEG = engine.SEGMENT_STEPS


def time_chunk(model, dtype, B, calls, kernel):
    import jax

    fn, args = bench.segment_call(model, dtype, B, kernel)
    out = jax.block_until_ready(fn(*args))  # compile, warm up
    assert int(out.ran) == SEG, "the chunk stopped early: pick converging learning rates"
    t = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / (calls * SEG)


def profile(model, dtype, B, calls, kernel):
    events = bench.trace_events(*bench.segment_call(model, dtype, B, kernel), calls)
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
    ap.add_argument("--kernel", default="xla", help="the implementation of the network step")
    ap.add_argument("--chunks", default="1024,4096,16384,65536")
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--profile", type=int, default=0, help="also trace this chunk size")
    a = ap.parse_args()
    engine.configure()
    model = Model(steps=500)
    known = sorted(f.impl for f in engine.implementations(model.kind))
    if a.kernel not in known:
        sys.exit(f"--kernel {a.kernel}: no such implementation of the network step (registered: {', '.join(known)})")
    fl = bench.flops_per_pixel_step(model)
    print(bench.machine())
    chunks = [int(c) for c in a.chunks.split(",")]
    for dtype in a.dtypes.split(","):
        base = None
        pk = bench.peak(dtype)
        for B in chunks:
            s = time_chunk(model, dtype, B, a.calls, a.kernel)
            rate = B / s
            base = base or rate
            line = f"{dtype} chunk {B:6d}: {s * 1e6:9.1f} us per step, {rate:.3g} px-steps/s, {rate * fl / 1e9:8.1f} GFLOP/s"
            if pk:
                line += f" = {rate * fl / pk:5.1%} of peak"
            print(line + f", ratio to chunk {chunks[0]}: {rate / base:.2f}", flush=True)
        if a.profile:
            profile(model, dtype, a.profile, a.calls, a.kernel)


if __name__ == "__main__":
    main()
