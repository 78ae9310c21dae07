"""Rendering through Ray: throughput with 1 and 2 workers, and the time a task spends outside training.

Trains the same frames three ways in one run and prints each against the
first, the baseline:

- local: :class:`zoomreel.executor.LocalExecutor` in this process, one frame
  after another, each over every core (the engine's own device spread);
- ray 1 worker: a local Ray runtime with 1 CPU, one task per frame;
- ray 2 workers: a local Ray runtime with 2 CPUs, one 1-CPU task per frame.

Every configuration first trains one small frame per worker (JAX's compile,
or its load from the compile cache; reported as start-up), then the timed
frames. For Ray, per task:

- overhead = (wall x workers - training) / tasks: time a worker slot spent on
  a task but not in training (scheduling, argument and result transfer
  through the object store, the worker's own set-up, the driver's copy);
- the share of it spent inside the task function but outside ``train_job``
  (imports, engine configuration): task seconds - training seconds.

Every frame is the same view (the paper's standard one), so tasks cost the
same and 2 workers finish together. Nothing is written to a cache; values are
checked equal across the three.

    python benchmarks/bench_ray.py [--size 256] [--steps 40] [--frames 4] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SCENE = """
[model]
steps = {steps}

[video]
size = [{size}, {size}]
fps = 1

[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0

[[keyframe]]
time = {last}
center = [1.5, 1.5]
span = 9.0
"""


def jobs_for(plan, frames):
    from zoomreel.training import Job

    s = plan.scene
    return [Job(k, s.model, plan.view(k), plan.precision, s.keyframes_where) for k in frames]


def timed(executor, jobs, warm):
    """(start-up seconds, wall seconds, {frame: result}) for ``jobs``, after the ``warm`` jobs."""
    t = time.perf_counter()
    list(executor.run(warm))
    startup = time.perf_counter() - t
    t = time.perf_counter()
    got = {r.job.id: r for r in executor.run(jobs)}
    return startup, time.perf_counter() - t, got


def inside_seconds(ex) -> float:
    """Seconds the executor's tasks spent inside the task function but not training, so far."""
    return sum(st.task_seconds - st.seconds for st in ex.stats.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--workers", default="1,2")
    a = ap.parse_args()

    import jax

    from zoomreel import engine, scene
    from zoomreel.plan import make_plan
    from zoomreel.executor import LocalExecutor
    from zoomreel.ray_executor import RayExecutor, import_ray

    # this process trains (the local baseline) before it starts Ray, which forks and execs at once
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
    engine.configure()
    d = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    p = d / "bench.toml"
    p.write_text(SCENE.format(steps=a.steps, size=a.size, last=a.frames))
    plan = make_plan(scene.load(p), out=d)
    frames = list(range(a.frames))
    px_steps = a.frames * plan.pixel_steps_per_frame
    small = make_plan(scene.load(p).with_video(size=(16, 16)), out=d)
    ray = import_ray()
    load = os.getloadavg()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine {platform.node()} {platform.machine()}, "
          f"{os.cpu_count()} cores (this process may use {len(os.sched_getaffinity(0))}), load {load[0]:.1f}; "
          f"jax {jax.__version__}, ray {ray.__version__}")
    print(f"# {a.frames} frames of {a.size}x{a.size}, {a.steps} steps, the standard view in every frame (equal tasks); "
          f"{px_steps:.3g} pixel-steps in all")

    warm_local = jobs_for(small, [0])
    startup, wall, ref = timed(LocalExecutor(), jobs_for(plan, frames), warm_local)
    base = px_steps / wall
    print(f"local   ({engine.device_name()}): start-up {startup:.1f} s, {wall:.1f} s, {base:.3g} pixel-steps/s, ratio 1.00")

    for n in (int(w) for w in a.workers.split(",")):
        t = time.perf_counter()
        ex = RayExecutor(None, num_cpus=n)
        ex.start()
        started = time.perf_counter() - t
        try:
            t = time.perf_counter()
            list(ex.run(jobs_for(small, list(range(n)))))  # one small frame per worker: compile or load
            startup = time.perf_counter() - t
            warm_inside = inside_seconds(ex)
            _, wall, got = timed(ex, jobs_for(plan, frames), [])
            train = sum(r.seconds for r in got.values())
            inside = inside_seconds(ex) - warm_inside
        finally:
            ex.close()
        same = all(np.array_equal(got[k].raw, ref[k].raw) for k in frames)
        per_task = (wall * ex.workers - train) / a.frames
        task_time = wall * ex.workers / a.frames
        print(f"ray {n} worker{'s' if n > 1 else ' '}: runtime {started:.1f} s, start-up {startup:.1f} s, {wall:.1f} s, "
              f"{px_steps / wall:.3g} pixel-steps/s, ratio {px_steps / wall / base:.2f}; per task {task_time:.2f} s, "
              f"outside training {per_task:.3f} s ({per_task / task_time:.1%}), of it inside the task "
              f"{inside / a.frames:.3f} s; values equal to local: {same}")


if __name__ == "__main__":
    main()
