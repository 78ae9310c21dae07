"""The engine: per-pixel hyperparameters in, the raw per-pixel measure out.

Each pixel is one full training run; JAX trains many at once. The engine
writes no frames (what it keeps on disk is JAX's compiled programs, the
models' random draws and perturbation's reference orbits: :mod:`.config`,
:mod:`.keep`, :mod:`.randoms`, :mod:`.perturb`).

One room per concern:

- :mod:`.config`: the explicit runtime configuration (:func:`configure`);
- :mod:`.randoms`: the reference experiment's random draws;
- :mod:`.keep`: derived data kept beside the compiled programs (draws, reference orbits);
- :mod:`.measure`: the per-pixel measure, in NumPy;
- :mod:`.arith`: the arithmetics (precisions) the steps are written over;
- :mod:`.dd`: double-double, the arithmetic past float64;
- :mod:`.formulation`: the seam: one object per model kind and implementation;
- :mod:`.network`, :mod:`.mandelbrot`: the hand-written formulations;
- :mod:`.generic`: every other model: jax.grad of its loss and an optimizer's update
  (:mod:`.netproblem`: the network kind's loss for it);
- :mod:`.perturb`: perturbation: every pixel a float64 difference from a reference
  pixel (:mod:`.reference`: that pixel trained in many digits, fixed point);
- :mod:`.fused`: the network's training segment as one GPU kernel (Pallas);
- :mod:`.gpucode`: that kernel compiled for a GPU on any machine (a check, not a stage);
- :mod:`.layout`: the row layout of a device's pixels;
- :mod:`.devices`: the device policy (chunk, group and segment sizes);
- :mod:`.scheduler`: groups, chunks, segments and retirement.

Use :func:`train`; everything a caller needs is named here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..model import ENGINE_VERSION, Model
from . import config, dd, formulation, fused, generic, mandelbrot, network  # noqa: F401  (registers the formulations, appends dd to LADDER)
from .arith import FLOAT32, FLOAT64, LADDER, arithmetic
from .dd import DD_ARITH as DD
from .config import compile_cache_dir, configure
from .devices import SEGMENT_STEPS, default_chunk, device_name, policy
from .randoms import Draws, draws
from .formulation import Formulation, choose, implementations, register
from .measure import LAST, MANDELBROT_ESCAPE, V_CAP, mandelbrot_measure, network_measure
from .network import RETIRE_V
from .scheduler import Counts, train_group

__all__ = [
    "DD", "ENGINE_VERSION", "FLOAT32", "FLOAT64", "LADDER", "LAST", "MANDELBROT_ESCAPE", "RETIRE_V",
    "SEGMENT_STEPS", "V_CAP", "Draws", "Formulation", "TrainResult", "arithmetic", "arithmetics_for", "choose",
    "compile_cache_dir", "configure", "default_chunk", "describe_kernel", "device_name", "draws", "implementation",
    "implementations", "mandelbrot_measure", "network_measure", "register", "train",
]


def describe_kernel(model: Model, dtype: str | None = None, impl: str | None = None) -> str:
    """The implementation :func:`train` would use for ``model`` (in ``dtype``)
    here, as the front ends name it to the user ("xla", "fused", ...)."""
    config.ensure()
    import jax

    platform = jax.devices()[0].platform
    return choose(model, platform, impl).describe(platform, model, dtype)


@dataclass(frozen=True)
class TrainResult:
    values: np.ndarray  # (N,) float64 measure
    computed: int  # pixel-steps actually trained (padding excluded); early exit makes it smaller
    retired_by_rule: int  # pixels retired by the formulation's rule (RETIRE_V for networks)
    implementation: str  # the formulation's implementation ("xla", ...)
    arithmetic: str  # the arithmetic's name


def arithmetics_for(model: Model) -> list:
    """The arithmetics of :data:`LADDER` that ``model`` can be trained in here, cheapest first."""
    names = implementation(model).arithmetics(model)
    return [A for A in LADDER if names is None or A.name in names]


def implementation(model: Model, impl: str | None = None) -> Formulation:
    """The formulation :func:`train` would use for ``model`` here (nothing is trained)."""
    config.ensure()
    import jax

    return choose(model, jax.devices()[0].platform, impl)


def train(
    model: Model,
    hx: np.ndarray,
    hy: np.ndarray,
    arith="float64",
    *,
    chunk: int | None = None,
    early_exit: bool = True,
    group: int | None = None,
    impl: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train one run per pixel; the result's ``values`` is the float64 measure, shape (N,).

    hx, hy: per-pixel hyperparameters in the arithmetic's host form (from
    ``A.hypers``; for the float arithmetics float64, already rounded as they
    should be): for the lr-lr plane (lr0, lr1); for init-lr (offset, lr);
    for the Mandelbrot set (Re c, Im c). ``arith``: an arithmetic or its
    name. ``impl`` forces an implementation (default: :func:`choose`).
    ``on_progress(k)`` is called with the number of pixel-steps just
    completed (retired pixels count as done).
    """
    config.ensure()
    A = arithmetic(arith)
    form = implementation(model, impl)
    formulation.refuse_arithmetic(form, model, A)
    hx = np.ascontiguousarray(hx, dtype=np.float64).reshape((-1,) + A.host_shape)
    hy = np.ascontiguousarray(hy, dtype=np.float64).reshape((-1,) + A.host_shape)
    if hx.shape != hy.shape:
        raise ValueError("hx and hy must have the same shape")
    pol = policy(model, A.name, chunk, group)
    consts = form.consts(model, A)
    idx = form.schedule(model)
    counts = Counts()
    N = hx.shape[0]
    out = np.empty(N, dtype=np.float64)
    for g0 in range(0, N, pol.group):
        ga, gb = hx[g0 : g0 + pol.group], hy[g0 : g0 + pol.group]
        out[g0 : g0 + ga.shape[0]] = train_group(form, model, A, pol, consts, idx, ga, gb, early_exit, on_progress, counts)
    return TrainResult(out, counts.computed, counts.retired_by_rule, form.impl, A.name)
