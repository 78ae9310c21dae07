"""Who trains: the seam between what is trained and where it runs.

A :class:`Job` is one unit of work, a view of a model in a precision mode
(a video's frame, a pyramid's tile). :func:`run_job` trains it, as a pure
function of the job: it writes nothing, so it can run in this process or on
another machine. An :class:`Executor` takes many jobs and hands each
:class:`JobResult` back to the caller as it finishes; the caller (one process
only) writes the cache and the video.

:class:`LocalExecutor` runs the jobs here, one after another, each over every
local device. Other executors (a Ray cluster) implement the same ``run``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from . import views
from .model import Model
from .path import View
from .precision import Decision, Probe


@dataclass(frozen=True)
class Job:
    """One view to train. ``decision``: a precision decision already made
    (cached), so the probe is skipped; ``where``: names the input in errors."""

    id: object  # the caller's name for it (a frame index, a tile)
    model: Model
    view: View
    mode: str
    where: str
    decision: Decision | None = None
    kernel: str | None = None  # the implementation of the step to train with (None: this process's choice)

    @property
    def pixel_steps(self) -> int:
        return self.view.size[0] * self.view.size[1] * self.model.steps


@dataclass
class JobResult:
    job: Job
    raw: np.ndarray  # (H, W) float64, row 0 = lowest y
    decision: Decision
    seconds: float  # training time, probe included
    decided: bool  # True when the decision was made by this job (not given)


def run_job(job: Job, on_progress: Callable[[int], None] | None = None,
            check: Callable[[], None] | None = None) -> JobResult:
    """Decide the precision (unless the job carries it) and train every pixel.
    ``check``: see :func:`zoomreel.precision.decide_and_probe` (the frame's own
    training reports through ``on_progress``, which may raise as well)."""
    from .engine import formulation

    with formulation.using(job.kernel):
        return _run(job, on_progress, check)


def _run(job: Job, on_progress, check) -> JobResult:
    t0 = time.perf_counter()
    probe: Probe | None = None
    decision = job.decision
    if decision is None:
        from . import precision

        decision, probe = precision.decide_and_probe(job.model, job.view, job.mode, job.where, check)
    raw = views.train_view(job.model, job.view, decision.dtype, on_progress, probe)
    return JobResult(job, raw, decision, time.perf_counter() - t0, job.decision is None)


class Executor:
    """Runs jobs and yields their results as they finish (in any order)."""

    name = "local"
    workers = 1

    def run(self, jobs: Iterable[Job], on_progress: Callable[[int], None] | None = None,
            check: Callable[[], None] | None = None) -> Iterator[JobResult]:
        """``check``: called between the probe's segments where jobs run here
        (see :func:`run_job`); an executor elsewhere may ignore it."""
        raise TypeError(f"{type(self).__name__} cannot run jobs")

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    """Every job in this process, in order, each over all local devices."""

    def run(self, jobs, on_progress=None, check=None):
        for job in jobs:
            yield run_job(job, on_progress, check)
