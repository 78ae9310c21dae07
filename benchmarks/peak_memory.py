"""Peak resident memory of `zoomreel frame` on a large frame.

Runs the real command in a subprocess and takes the kernel's maximum resident
set of it (getrusage of the reaped child; while it runs, VmHWM in
/proc/<pid>/status, Linux), until it exits or --seconds pass. Memory is
bounded by the engine's group of pixels, so a run stopped early by --seconds
already shows most of the peak; the output says whether the frame finished.
The baseline, measured first in the same run, is the floor of any zoomreel
process: one that imports the engine, configures it and starts JAX's devices.

    python benchmarks/peak_memory.py [--size 1920x1080] [--steps 500] [--seconds 0]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoomreel import bench

TOML = """
[model]
steps = {steps}

[video]
size = [{w}, {h}]
precision = "{precision}"

[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0
"""


def hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


FLOOR = "from zoomreel import engine; engine.configure(); import jax; jax.devices()"


def floor_mb() -> float:
    """Peak RSS of a process that only starts the engine's JAX (the first child reaped)."""
    subprocess.run([sys.executable, "-c", FLOOR], check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run to the end)")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    floor = floor_mb()
    with tempfile.TemporaryDirectory() as d:
        toml = Path(d) / "big.toml"
        toml.write_text(TOML.format(steps=a.steps, w=w, h=h, precision=a.precision))
        cmd = [sys.executable, "-m", "zoomreel", "frame", str(toml), "--npy", str(Path(d) / "f.npy"), "--png", str(Path(d) / "f.png")]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0.0
        finished = True
        while p.poll() is None:
            peak = max(peak, hwm_mb(p.pid) or 0.0)
            if a.seconds and time.perf_counter() - t0 > a.seconds:
                finished = False
                peak = max(peak, hwm_mb(p.pid) or 0.0)
                p.kill()
                break
            time.sleep(0.2)
        out, err = p.communicate()
        secs = time.perf_counter() - t0
        if finished:  # exact: the kernel's maximum RSS of the reaped child
            peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print(bench.machine())
    print(f"zoomreel frame {w}x{h}, {a.steps} steps, {a.precision}: peak RSS {peak:.0f} MB "
          f"after {secs:.0f} s ({'finished' if finished else 'stopped early: the peak so far'}); "
          f"baseline (a process that only starts JAX) {floor:.0f} MB, ratio {peak / floor:.2f}")
    if finished:
        print(out.strip() or err.strip())


if __name__ == "__main__":
    main()
