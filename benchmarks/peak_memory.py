"""Peak resident memory of `zoomreel frame` on a large frame.

Runs the real command in a subprocess and takes the kernel's maximum resident
set of it (getrusage of the reaped child; while it runs, VmHWM in
/proc/<pid>/status, Linux), until it exits or --seconds pass. Memory is
bounded by the engine's group of pixels, so a run stopped early by --seconds
already shows most of the peak (1080p, 500 steps: 571 MB after 240 s, 597 MB
at the end); the output says whether the frame finished.

    python benchmarks/peak_memory.py [--size 1920x1080] [--steps 500] [--seconds 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run to the end)")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
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
    print(f"machine: {platform.machine()} {os.cpu_count()} cores; python {platform.python_version()}")
    print(f"zoomreel frame {w}x{h}, {a.steps} steps, {a.precision}: peak RSS {peak:.0f} MB "
          f"after {secs:.0f} s ({'finished' if finished else 'stopped early: the peak so far'})")
    if finished:
        print(out.strip() or err.strip())


if __name__ == "__main__":
    main()
