"""Locate: find a point on the boundary to zoom into, with the tool itself.

Start from a view, train a small grid, and among the boundary pixels (those
whose 2x2 neighbourhood holds both signs) pick one by a rule, nearest the
centre on ties:

- ``balanced`` (the default): the surroundings closest to half converged,
  half diverged; this favours smooth stretches of the boundary;
- ``busiest``: the surroundings holding the most boundary, close to how the
  paper chose its zoom targets by eye (for their detail).

Zoom about it by ``factor`` and repeat until the span is small enough. Every level
is a real frame (same engine, same precision policy), so the point found is
on the boundary the video will show.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np

from . import path
from .cancel import Cancel
from .dimension import boundary
from .model import Model
from .view import View


@dataclass(frozen=True)
class Level:
    view: View
    converged: float  # fraction of the grid that converged
    dtype: str
    resolved: float  # the precision decision's resolved share (docs/precision.md)


RULES = ("balanced", "busiest")


def places(view: View) -> int:
    """Decimals enough to place a centre within a ten-thousandth of the view's span."""
    return max(6, -int(view.span.adjusted()) + 4)


def _window_mean(a: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``a`` over the (2 window + 1)^2 square about each pixel (edges repeated)."""
    H, W = a.shape
    pad = np.pad(a.astype(np.float64), window, mode="edge")
    c = np.cumsum(np.cumsum(pad, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * window + 1
    return ((c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k))[:H, :W]


def pick(raw: np.ndarray, window: int = 5, rule: str = "balanced") -> tuple[int, int] | None:
    """Row, column of the boundary pixel that ``rule`` prefers (see the module doc)."""
    H, W = raw.shape
    mask = np.zeros(raw.shape, dtype=bool)
    mask[:-1, :-1] = boundary(raw)  # the cell's lower-left pixel stands for it
    if not mask.any():
        return None
    ii, jj = np.nonzero(mask)
    if rule == "busiest":
        score = -_window_mean(mask, window)[ii, jj]  # more boundary first
    else:
        score = np.abs(_window_mean(raw < 0, window)[ii, jj] - 0.5)
    dist = np.hypot(ii - H / 2, jj - W / 2) / max(H, W)
    best = np.lexsort((dist, np.round(score, 2)))[0]
    return int(ii[best]), int(jj[best])


def locate(model: Model, start: View, depth_span: Decimal, factor: int = 10, size: int = 48,
           on_level=None, rule: str = "balanced", precision: str = "auto", *, where: str = "view",
           cache=None, executor=None, cancel: Cancel = None) -> list[Level]:
    """Zoom by ``factor`` into the pixel ``rule`` picks until the span is at
    most ``depth_span``; each level is one view through the work layer
    (:func:`zoomreel.work.train_view`: in the ``precision`` setting, read from
    and written to ``cache`` if given, trained by ``executor``, stopped by ``cancel``)."""
    from .work import train_view

    levels = []
    view = View(start.center, start.span, (size, size))
    while True:
        got = train_view(model, view, precision, where, cache=cache, executor=executor, cancel=cancel)
        raw, d = got.raw, got.decision
        levels.append(Level(view, float(np.mean(raw < 0)), d.dtype, d.resolved))
        if on_level:
            on_level(levels[-1])
        if view.span <= depth_span:
            return levels
        got = pick(raw, rule=rule)
        if got is None:
            return levels
        i, j = got
        xs, ys = path.axis_coords(view)
        with localcontext(prec=path.PREC):
            # centre of the 2x2 cell at (i, j): between pixel centres
            half = view.spacing / 2
            center = (xs[j] + half, ys[i] + half)
            view = View(center, max(view.span / factor, depth_span), view.size)
