"""A draft video from the explorer, with a cancel that reaches every stage.

:func:`train_draft` trains what the draft reads with the task's cancel
check passed to every unit (each segment of steps, the precision probe's
included); :func:`zoomreel.render.render` then finds every unit cached and
only encodes.
"""

from __future__ import annotations

from .. import pyramid, render
from .worker import Task


class DraftReporter(render.Reporter):
    """render.Reporter hooks that feed (and may cancel through) the task's progress."""

    def __init__(self, task: Task):
        self.task = task

    def pixel_steps(self, n: int) -> None:
        self.task.report(n)

    def frame_done(self, k, reused, warning, dtype=None) -> None:
        self.task.check()

    def encoded(self, k) -> None:
        self.task.check()


def train_draft(plan: render.Plan, rep: render.Reporter, check) -> int:
    """Train what a draft reads with ``check`` reaching every stage (each
    unit's precision probe too); :func:`zoomreel.render.render` then only
    reads the cache and encodes. Returns how many units were trained."""
    problems = render.refusals(plan)
    if problems:
        raise problems[0]
    if plan.video_mode == "pyramid":
        units = render.tile_units(plan)
        units.cache.prepare()
        ids = plan.tiles()
        render.check_depth(plan, ids)
    else:
        units = render.FrameUnits(plan, plan.cache)
        units.cache.prepare()
        ids = list(range(plan.n_frames))
    got = render.train_units(units, ids, False, rep, keep=False, check=check)
    return sum(g[2] for g in got.values())


def draft_work(plan: render.Plan) -> int:
    """Pixel-steps of every unit the draft reads, cached or not (its cost at most)."""
    if plan.video_mode == "pyramid":
        return len(plan.tiles()) * pyramid.TILE**2 * plan.scene.model.steps
    return plan.n_frames * plan.pixel_steps_per_frame
