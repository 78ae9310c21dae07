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

from . import path, precision
from .dimension import boundary
from .model import Model


@dataclass
class Level:
    view: path.View
    converged: float  # fraction of the grid that converged
    dtype: str
    resolved: float  # the precision decision's resolved share (docs/precision.md)


RULES = ("balanced", "busiest")


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


def check_depth(model: Model, center: tuple[Decimal, Decimal], depth_span: Decimal, size: int) -> None:
    """Refuse, before any training, a depth the deepest arithmetic cannot
    train about ``center`` (the check render makes of every keyframe)."""
    from . import engine

    view = path.View(center, depth_span, (size, size))
    top = engine.LADDER[-1]
    hx, hy = path.hyper_axes(model, view, top)
    precision.check_representable(model, view, hx, hy, "--depth", top)


def locate(model: Model, start: path.View, depth_span: Decimal, factor: int = 10, size: int = 48,
           on_level=None, rule: str = "balanced", mode: str = "auto") -> list[Level]:
    """Zoom by ``factor`` into the pixel ``rule`` picks until the span is at
    most ``depth_span``; each level trained in the precision ``mode``
    decides (auto, or an arithmetic's name)."""
    from .render import train_view

    levels = []
    view = path.View(start.center, start.span, (size, size))
    while True:
        d, probe = precision.decide_and_probe(model, view, mode)
        raw = train_view(model, view, d.dtype, known=probe)
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
            view = path.View(center, max(view.span / factor, depth_span), view.size)
