"""Who trains: the seam between what is trained and where it runs.

An :class:`Executor` takes many :class:`~zoomreel.training.Job` s and hands
each :class:`~zoomreel.training.Trained` result back to the caller as it
finishes; the caller (one process only) writes the cache and the video.

:class:`LocalExecutor` runs the jobs here, one after another, each over every
local device. Other executors (a Ray cluster, :mod:`zoomreel.ray_executor`)
implement the same ``run``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from .cancel import Cancel, stop_if
from .training import Job, Trained, train_job


class Executor:
    """Runs jobs and yields their results as they finish (in any order)."""

    name = "local"
    workers = 1

    def run(self, jobs: Iterable[Job], on_progress: Callable[[int], None] | None = None,
            cancel: Cancel = None) -> Iterator[Trained]:
        """``cancel`` (:mod:`zoomreel.cancel`) is asked between jobs, and
        inside each job that runs in this process."""
        raise TypeError(f"{type(self).__name__} cannot run jobs")

    def close(self) -> None:
        pass

    def summary(self) -> list[str]:
        """Lines that say what ran where (none for this process)."""
        return []


class LocalExecutor(Executor):
    """Every job in this process, in order, each over all local devices."""

    def run(self, jobs, on_progress=None, cancel=None):
        for job in jobs:
            stop_if(cancel)
            yield train_job(job, on_progress, cancel)
