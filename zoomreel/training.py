"""Training one unit of work: the precision decision, then every pixel.

A :class:`Job` is one view of a model to train in a precision setting (a
video's frame, a pyramid's tile, an explorer's view, a locate level).
:func:`train_job` trains it as a pure function of the job: it writes
nothing, so it runs in this process or on another machine alike (an
executor, :mod:`zoomreel.executor`, decides where). Its answer is a
:class:`Trained` record. Writing results to the cache is the work layer's
(:mod:`zoomreel.work`), in one process.

Both stages take ``cancel`` (:mod:`zoomreel.cancel`): asked before each, and
after every segment of steps inside each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from . import path, precision
from .cancel import Cancel, stop_if
from .model import Model
from .precision import Decision, Probe
from .precision_names import PERTURB
from .view import View


@dataclass(frozen=True)
class Job:
    """One view to train. ``decision``: a precision decision already made
    (cached), so the probe is skipped; ``where``: names the input in errors."""

    id: object  # the caller's name for it (a frame index, a tile, a view)
    model: Model
    view: View
    precision: str  # auto, or an arithmetic's name
    where: str
    decision: Decision | None = None
    kernel: str | None = None  # the implementation of the step to train with (None: this process's choice)

    @property
    def pixel_steps(self) -> int:
        return self.view.pixels * self.model.steps


@dataclass(frozen=True)
class Trained:
    """A trained job."""

    job: Job
    raw: np.ndarray  # (H, W) float64, row 0 = lowest y
    decision: Decision
    seconds: float  # training time, probe included
    decided: bool  # True when the decision was made by this job (not given)


def kernel_fields(model) -> dict:
    """The implementation this process trains ``model`` with, and its cache tag.

    On a GPU, choosing it may first check the fused kernel against the XLA
    step (a few compilations, once per condition and process)."""
    from . import engine

    f = engine.implementation(model)
    return {"kernel": f.impl, "kernel_tag": f.tag}


def train_job(job: Job, on_progress: Callable[[int], None] | None = None, cancel: Cancel = None) -> Trained:
    """Decide the precision (unless the job carries it) and train every pixel.
    ``on_progress(pixel_steps)`` reports the pixels' training; ``cancel``:
    :mod:`zoomreel.cancel`."""
    from .engine import formulation

    with formulation.using(job.kernel):
        t0 = time.perf_counter()
        probe: Probe | None = None
        decision = job.decision
        if decision is None:
            decision, probe = precision.decide_and_probe(job.model, job.view, job.precision, job.where, cancel)
        raw, redone = train_frame(job.model, job.view, decision.dtype, on_progress, probe, cancel)
        if redone is not None:
            decision = replace(decision, redone=redone)
        return Trained(job, raw, decision, time.perf_counter() - t0, job.decision is None)


def train_pixels(model: Model, view: View, dtype: str, on_progress: Callable[[int], None] | None = None,
                 known: Probe | None = None, cancel: Cancel = None) -> np.ndarray:
    """Every pixel of a view, trained in ``dtype`` (no precision decision):
    (H, W) float64, row 0 = lowest y.

    ``known``: pixels already trained in ``dtype`` (the precision probe); they
    are copied in, not trained again. The engine trains each pixel on its own,
    so the frame has the same bits either way (tests check it).
    """
    return train_frame(model, view, dtype, on_progress, known, cancel)[0]


def train_frame(model: Model, view: View, dtype: str, on_progress: Callable[[int], None] | None = None,
                known: Probe | None = None, cancel: Cancel = None) -> tuple[np.ndarray, float | None]:
    """:func:`train_pixels`, and for ``dtype`` "perturb" the share of the
    frame's pixels redone after a glitch (None for the arithmetics)."""
    from . import engine

    stop_if(cancel)
    npix = view.pixels
    raw = np.empty(npix, dtype=np.float64)
    todo = np.ones(npix, dtype=bool)
    redone = 0
    if known is not None and known.dtype == dtype:
        raw[known.indices] = known.values
        todo[known.indices] = False
        redone += 0 if known.glitched is None else int(known.glitched.sum())
        if on_progress is not None:
            on_progress(int(known.indices.size) * model.steps)
    rest = np.flatnonzero(todo)

    def report(n: int) -> None:
        stop_if(cancel)
        if on_progress is not None:
            on_progress(n)

    hook = report if cancel is not None else on_progress
    if dtype == PERTURB:
        from .engine import perturb

        if rest.size:
            res = perturb.train_view(model, view, rest, on_progress=hook)
            raw[rest] = res.values
            redone += int(res.glitched.sum())
        return raw.reshape(view.size[1], view.size[0]), redone / npix
    A = engine.arithmetic(dtype)
    hx, hy = path.pixel_hypers(model, view, A)
    if rest.size:
        raw[rest] = engine.train(model, hx[rest], hy[rest], A, on_progress=hook).values
    return raw.reshape(view.size[1], view.size[0]), None
