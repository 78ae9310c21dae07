"""The fused kernel compiled for a GPU on this machine: what ptxas allocated and
what the hottest loop issues, for every condition and dtype (no GPU needed).

    pip install -e '.[gpucheck]'
    python benchmarks/kernel_static.py [--cc 90] [--block 8] [--warps 4]

Per kernel: registers and stack (spilled bytes) per thread, blocks that fit
an SM by registers, and the pass over one tile of points (the loop that runs
17 times a step): its instructions, how many are FMAs (FFMA, DFMA) or
tensor-core products (DMMA, HMMA), and a ceiling on the share of the
non-tensor peak (H100/H200: 67 TFLOP/s FP32, 34 TFLOP/s FP64). The ceiling
assumes every SM sub-partition issues one instruction per clock (a float32
FMA lane does 2 flops a clock, a float64 one 1, on average over its half-rate
pipe) and counts the flops ``zoomreel.bench.flops_per_pixel_step`` counts:
useful flops of the tile / (loop instructions x flops per issue). It is the
baseline any measured speed is a share of; stalls (latency, occupancy) come
on top. Only a GPU measures those: ``bash benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import reference as ref  # noqa: E402  (the paper's six conditions)

from zoomreel.bench import flops_per_pixel_step, machine  # noqa: E402
from zoomreel.engine import fused, gpucode  # noqa: E402

FLOPS_PER_ISSUE = {"float32": 2.0, "float64": 1.0}  # per lane and clock, at one instruction a clock


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cc", type=int, default=90, help="compute capability (90: H100, H200)")
    ap.add_argument("--block", type=int, default=fused.BLOCK, help="pixels per kernel instance")
    ap.add_argument("--warps", type=int, default=fused.NUM_WARPS, help="warps per kernel instance")
    args = ap.parse_args()
    fused.BLOCK = args.block
    import triton

    print(machine())
    print(f"sm_{args.cc}, {args.block} pixels and {args.warps} warps per instance; triton {triton.__version__}")
    print(f"{'condition':10} {'dtype':7} {'regs':>4} {'stack':>5} {'blk/SM':>6} {'loop':>5} {'FMA':>4} {'MMA':>4} {'ceiling':>8}  s")
    threads = 32 * args.warps
    for name, model in ref.conditions(25).items():
        for dtype in ("float32", "float64"):
            t = time.perf_counter()
            c = gpucode.compile_cuda(gpucode.lower_for_cuda(model, dtype)[1], args.cc, args.warps)
            mix = c.hottest_loop_mix()
            loop = sum(mix.values())
            per_thread = flops_per_pixel_step(model) / (fused.padded_points(model.n_points) // fused.TILE) * args.block / threads
            ceiling = per_thread / (loop * FLOPS_PER_ISSUE[dtype])
            print(f"{name:10} {dtype:7} {c.registers:4d} {c.stack:5d} {65536 // (c.registers * threads):6d} {loop:5d} "
                  f"{mix['FFMA'] + mix['DFMA']:4d} {mix['DMMA'] + mix['HMMA']:4d} {ceiling:8.0%}  {time.perf_counter() - t:.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
