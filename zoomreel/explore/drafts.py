"""A draft video from the explorer, cancelled at every stage.

:func:`zoomreel.render.render` takes the task's cancel check and asks it in
every stage of every unit (each segment of steps, the precision probe's
included) and per frame while encoding; :class:`DraftReporter` feeds the
task's progress.
"""

from __future__ import annotations

from .. import pyramid
from ..plan import Plan
from ..work import Reporter
from .worker import Task


class DraftReporter(Reporter):
    """The work layer's hooks, feeding (and cancelling through) the task's progress."""

    def __init__(self, task: Task):
        self.task = task

    def pixel_steps(self, n: int) -> None:
        self.task.report(n)

    def frame_done(self, k, reused, warning, dtype=None) -> None:
        self.task.check()

    def encoded(self, k) -> None:
        self.task.check()


def draft_work(plan: Plan) -> int:
    """Pixel-steps of every unit the draft reads, cached or not (its cost at most)."""
    if plan.mode == "pyramid":
        return len(plan.tiles()) * pyramid.TILE**2 * plan.scene.model.steps
    return plan.n_frames * plan.pixel_steps_per_frame
