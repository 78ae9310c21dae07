"""What every script in benchmarks/ shares: timing, the machine line, peaks.

A benchmark prints the machine it ran on (:func:`machine`), times what it
compares in alternation (:func:`alternate`: A, B, A, B, ... so that a slow
moment of a shared host falls on both sides), keeps each side's best, and
prints a ratio against a baseline timed in the same run next to the absolute
figures. Nothing here trains anything; importing it starts no JAX backend, so
:func:`pin_one_core` can still set XLA's flags.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from typing import Callable

# Nominal peak FLOP/s by device kind, for the "fraction of peak" figures.
PEAKS = {
    "cpu": {"float32": 166e9, "float64": 83e9},  # the 2-core AVX2 development machine (docs/benchmarks.md)
    "NVIDIA H100 80GB HBM3": {"float32": 67e12, "float64": 34e12},  # SXM datasheet, non-tensor-core
    "NVIDIA H200": {"float32": 67e12, "float64": 34e12},
}


def flops_per_pixel_step(model) -> float:
    """Arithmetic of one network training step: the two products and the elementwise work."""
    n, P = model.width, model.n_points
    return 4.0 * P * n * n + 12.0 * P * n


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device():
    """The first JAX device and its kind (starts JAX's backends)."""
    import jax

    dev = jax.devices()[0]
    return dev, getattr(dev, "device_kind", dev.platform)


def peak(dtype: str) -> float | None:
    """The device's nominal peak FLOP/s in ``dtype``, or None when unknown."""
    dev, kind = device()
    table = PEAKS.get(kind) or (PEAKS["cpu"] if dev.platform == "cpu" else None)
    return None if table is None else table.get(dtype)


def machine() -> str:
    """One line naming the date, host, CPU, cores, JAX device and versions
    (configures the engine with its defaults unless the script did)."""
    import jax

    from . import engine

    engine.config.ensure()

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"machine: {now}; {platform.node()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores; "
        f"device {engine.device_name()} ({device()[1]}); python {platform.python_version()}, jax {jax.__version__}"
    )


def timed(fn: Callable):
    """(seconds, result) of one call."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def alternate(sides: dict[str, Callable], repeats: int) -> dict[str, tuple[float, object]]:
    """Each side's best time over ``repeats`` rounds, sides called in turn
    within a round, and the result of its last call: {name: (seconds, result)}."""
    best: dict[str, tuple[float, object]] = {}
    for _ in range(max(1, repeats)):
        for name, fn in sides.items():
            t, out = timed(fn)
            best[name] = (min(t, best[name][0]) if name in best else t, out)
    return best


def ratio(baseline_s: float, other_s: float) -> float:
    """How many times faster ``other`` ran than the baseline (> 1: faster)."""
    return baseline_s / other_s


def segment_call(model, dtype: str, B: int, kernel: str = "xla", lr: float = 0.01):
    """(jitted segment function, its arguments) for B pixels with both
    learning rates ``lr`` (0.01 converges: the chunk never stops early), on
    the default device; one call trains ``engine.SEGMENT_STEPS`` steps."""
    import jax
    import numpy as np

    from . import engine
    from .engine import formulation

    SEGMENT = engine.SEGMENT_STEPS
    A = engine.arithmetic(dtype)
    form = formulation.get(model.kind, kernel)
    a = np.full(B, lr)
    dev = jax.devices()[0]
    state = jax.device_put(form.initial_state(model, a, A), dev)
    idx = form.schedule(model)
    args = (
        state,
        jax.device_put(A.cast(a), dev),
        jax.device_put(A.cast(a), dev),
        jax.device_put(np.full(B, np.nan, A.loss_dtype), dev),
        jax.device_put(form.consts(model, A), dev),
        None if idx is None else jax.device_put(idx[:SEGMENT], dev),
    )
    return jax.jit(form.segment(model, A, B, SEGMENT, True)), args


def trace_events(fn, args, calls):
    """The jax.profiler trace events of ``calls`` calls of fn(*args), compiled first."""
    import glob
    import gzip
    import json
    import tempfile

    import jax

    jax.block_until_ready(fn(*args))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(calls):
                out = fn(*args)
            jax.block_until_ready(out)
        trace = glob.glob(os.path.join(tmp, "**", "*.trace.json.gz"), recursive=True)[0]
        return json.load(gzip.open(trace))["traceEvents"]


def pin_one_core(extra_flags: str = "") -> None:
    """One XLA CPU device on one core, for per-core diagnostics.

    Call before JAX starts its backends (XLA reads its flags then); extra
    XLA flags ride along.
    """
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                     if not f.startswith("--xla_force_host_platform_device_count"))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=1 {extra_flags}".strip()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from .engine import configure

    configure(cpu_devices=1)
