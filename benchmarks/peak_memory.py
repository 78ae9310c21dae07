"""Peak resident memory of `zoomreel frame` on a large frame.

Runs the real command in a subprocess and takes the kernel's maximum resident
set of it (getrusage of the reaped child; while it runs, VmHWM in
/proc/<pid>/status, Linux), until it exits or --seconds pass. Memory is
bounded by the engine's group of pixels, so a run stopped early by --seconds
already shows most of the peak; the output says whether the frame finished.
The baseline, measured first in the same run, is the floor of any zoomreel
process: one that imports the engine, configures it and starts JAX's devices.

    python benchmarks/peak_memory.py [--size 1920x1080] [--steps 500] [--seconds 0]

With ``--frames N`` it measures `zoomreel render` of an N-frame frames-mode
video instead, twice: the first run trains every frame, the second reuses
them all from the cache. A render holds one frame (and its neighbours'
summaries) at a time, so its peak does not grow with N:

    python benchmarks/peak_memory.py --frames 10 --size 64x36 --steps 20
    python benchmarks/peak_memory.py --frames 120 --size 64x36 --steps 20
    python benchmarks/peak_memory.py --frames 120 --size 640x360 --steps 20 --kind mandelbrot
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoomreel import bench

TOML = """
[model]
kind = "{kind}"
steps = {steps}

[video]
size = [{w}, {h}]
precision = "{precision}"
fps = 10

[[keyframe]]
time = 0.0
center = {first}
{last}"""

FIRST = {"network": "[1.5, 1.5]\nspan = 9.0", "mandelbrot": "[-0.75, 0]\nspan = 3.0"}

# the last keyframe of an N-frame video at 10 fps (frame k shows k / 10 s)
LAST = {"network": """
[[keyframe]]
time = {t}
center = ["2.5", "2.1298"]
span = 1.0
""", "mandelbrot": """
[[keyframe]]
time = {t}
center = ["-0.7436", "0.1318"]
span = 0.01
"""}


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
    """Peak RSS of a process that only starts the engine's JAX."""
    return measure([sys.executable, "-c", FLOOR])[0]


def measure(cmd: list[str], seconds: float = 0) -> tuple[float, float, bool, str]:
    """Peak RSS (MB) of ``cmd``, its wall time, whether it finished, and its output.

    The peak of a finished command is exact: the kernel's maximum RSS of that
    child (os.wait4). One stopped by ``seconds`` gives the peak so far."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        peak = 0.0
        finished = True
        while seconds and p.poll() is None:
            peak = max(peak, hwm_mb(p.pid) or 0.0)
            if time.perf_counter() - t0 > seconds:
                finished = False
                p.kill()
                break
            time.sleep(0.2)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        secs = time.perf_counter() - t0
        peak = max(peak, usage.ru_maxrss / 1024)
        log.seek(0)
        out = log.read().strip()
    if finished and p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out}")
    return peak, secs, finished, out


def render_memory(a, w: int, h: int, floor: float) -> None:
    """Peak RSS of rendering an a.frames-frame video, trained and then reused."""
    with tempfile.TemporaryDirectory() as d:
        toml = Path(d) / "video.toml"
        last = LAST[a.kind].format(t=f"{(a.frames - 1) / 10:g}") if a.frames > 1 else ""
        toml.write_text(TOML.format(kind=a.kind, steps=a.steps, w=w, h=h, precision=a.precision, first=FIRST[a.kind], last=last))
        cmd = [sys.executable, "-m", "zoomreel", "render", str(toml), "--out", str(Path(d) / "out"), "--quiet"]
        print(bench.machine())
        for what in ("trained", "reused"):
            peak, secs, _, out = measure(cmd)
            print(f"zoomreel render, {a.kind}, {a.frames} frames {w}x{h}, {a.steps} steps, {a.precision}, every frame {what}: "
                  f"peak RSS {peak:.0f} MB in {secs:.0f} s; baseline (a process that only starts JAX) {floor:.0f} MB, "
                  f"above it {peak - floor:.0f} MB")
            print("  " + out.splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run to the end)")
    ap.add_argument("--frames", type=int, default=0, help="render a video of this many frames instead of one frame")
    ap.add_argument("--kind", default="network", choices=sorted(FIRST), help="what a pixel trains (mandelbrot: cheap pixels, large frames)")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    floor = floor_mb()
    if a.frames:
        return render_memory(a, w, h, floor)
    with tempfile.TemporaryDirectory() as d:
        toml = Path(d) / "big.toml"
        toml.write_text(TOML.format(kind=a.kind, steps=a.steps, w=w, h=h, precision=a.precision, first=FIRST[a.kind], last=""))
        cmd = [sys.executable, "-m", "zoomreel", "frame", str(toml), "--npy", str(Path(d) / "f.npy"), "--png", str(Path(d) / "f.png")]
        peak, secs, finished, out = measure(cmd, a.seconds)
    print(bench.machine())
    print(f"zoomreel frame {w}x{h}, {a.steps} steps, {a.precision}: peak RSS {peak:.0f} MB "
          f"after {secs:.0f} s ({'finished' if finished else 'stopped early: the peak so far'}); "
          f"baseline (a process that only starts JAX) {floor:.0f} MB, ratio {peak / floor:.2f}")
    if finished:
        print(out)


if __name__ == "__main__":
    main()
