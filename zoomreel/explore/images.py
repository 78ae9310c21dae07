"""Where the explorer's pictures come from: :func:`image_for`.

The page is drawn from the zoom pyramid (:mod:`zoomreel.pyramid`): a view is
composed from the tiles of its model exactly as a pyramid-mode render
composes a frame (:mod:`zoomreel.compose`: area filter, blend between
levels), and the tiles live in the same shared cache as a render's,
``<out>/pyramid``. What the explorer trains, a render under the same
``--out`` reuses, and the other way round. Tiles are trained through the
work layer (:func:`zoomreel.work.train_missing`), the one path every unit of
work takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import color, compose, pyramid
from ..cache import Cache
from ..model import Model
from ..path import View
from ..precision import Decision
from ..training import kernel_fields
from ..precision_names import DTYPES
from ..work import Reporter, TileReader, TileUnits, train_missing


@dataclass
class Image:
    rgb: np.ndarray  # (H, W, 3) uint8, drawn as a plot (top row = highest y)
    converged: float  # share of the view that converged (area-weighted)
    decision: Decision  # the tiles' precision: the deepest arithmetic any used, its lowest resolved
    cached: bool  # True when no tile was trained for it


def view_cache(out_dir: Path) -> Cache:
    """The pyramid's tile cache under ``out_dir``, shared with renders there."""
    cache = Cache(Path(out_dir) / "pyramid")
    cache.prepare()
    return cache


class _Progress(Reporter):
    """Tiles trained or found cached, as pixel-steps (the page's progress bar)."""

    def __init__(self, on_progress, steps: int):
        self.on_progress, self.steps = on_progress, steps

    def pixel_steps(self, n: int) -> None:
        if self.on_progress is not None:
            self.on_progress(n)

    def frame_done(self, k, reused, warning, dtype=None) -> None:
        if reused:  # a cached tile counts as done
            self.pixel_steps(pyramid.TILE**2 * self.steps)


def image_for(cache: Cache, model: Model, view: View, mode: str, where: str,
              on_progress: Callable[[int], None] | None = None, palette: str = color.DEFAULT_PALETTE) -> Image:
    """A view composed from its model's pyramid tiles, training the missing ones."""
    units = TileUnits(model, cache, mode, where, **kernel_fields(model))
    fp = pyramid.frame_plan(view)
    rep = _Progress(on_progress, model.steps)
    cancel = (lambda: on_progress(0) or False) if on_progress is not None else None  # a superseded view stops in a probe too
    done = train_missing(units, fp.tiles(), False, rep, cancel=cancel)
    blocks = TileReader(units, cancel=cancel).blocks(fp)
    rgb, frac = compose.compose(fp, blocks, view.size, color.summary(blocks[fp.fine.level]), palette)
    decisions = [Decision.from_json(done.trained[t]["decision"]) if t in done.trained else units.decision(t)
                 for t in fp.tiles()]
    deepest = max(DTYPES.index(d.dtype) for d in decisions)
    worst = min((d for d in decisions if DTYPES.index(d.dtype) == deepest), key=lambda d: d.resolved)
    return Image(rgb, float(np.mean(frac)), worst, not done.trained)
