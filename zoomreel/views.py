"""Train one view: the precision decision, then every pixel through the engine.

This is the unit of work of every front end (a video's frame, a pyramid's
tile, an explorer's view), a pure function of its inputs: it writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import path, precision
from .precision import Decision
from .scene import Scene


@dataclass
class FrameResult:
    raw: np.ndarray  # (H, W) float64, row 0 = lowest y
    decision: Decision
    seconds: float  # training time, probe included
    view: path.View


def compute_frame(scene: Scene, view: path.View, mode: str,
                  on_progress: Callable[[int], None] | None = None) -> FrameResult:
    """Decide the precision and train every pixel of one view (the one-frame
    API of ``zoomreel frame``): :func:`zoomreel.executor.run_job` of the view."""
    from .executor import Job, run_job

    res = run_job(Job(0, scene.model, view, mode, scene.keyframes_where), on_progress)
    return FrameResult(res.raw, res.decision, res.seconds, view)


def train_view(model, view: path.View, dtype: str, on_progress=None,
               known: precision.Probe | None = None) -> np.ndarray:
    """Every pixel of a view, trained in ``dtype``: (H, W) float64, row 0 = lowest y.

    ``known``: pixels already trained in ``dtype`` (the precision probe); they
    are copied in, not trained again. The engine trains each pixel on its own,
    so the frame has the same bits either way (tests check it).
    """
    from . import engine

    A = engine.arithmetic(dtype)
    hx, hy = path.pixel_hypers(model, view, A)
    raw = np.empty(hx.shape[0], dtype=np.float64)
    todo = np.ones(hx.shape[0], dtype=bool)
    if known is not None and known.dtype == dtype:
        raw[known.indices] = known.values
        todo[known.indices] = False
        if on_progress is not None:
            on_progress(int(known.indices.size) * model.steps)
    rest = np.flatnonzero(todo)
    if rest.size:
        raw[rest] = engine.train(model, hx[rest], hy[rest], A, on_progress=on_progress).values
    return raw.reshape(view.size[1], view.size[0])
