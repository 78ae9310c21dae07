"""A view drawn coarse to fine: the pyramid's levels as their tiles arrive.

A view's picture (:func:`zoomreel.explore.images.image_for`) reads its fine
level and the next coarser one. Before that picture can be composed, the page
shows what the pyramid already has and what trains quickest:

1. every tile already cached at the view's levels, up to
   :data:`CACHED_ABOVE` levels coarser and :data:`CACHED_BELOW` finer (a
   view zoomed into or out of one seen before starts from its tiles);
2. unless those cover the view, a preview: the coarsest level's lattice
   pixels under the view (:func:`chain`), at most :data:`PREVIEW_PIXELS` of
   them, which train in about a second;
3. the tiles of the coarsest level, then of the two levels the view's own
   picture reads, the ones nearest the view's centre first, painted as each
   arrives.

:func:`paint` composes such a partial picture: each level's available tiles
through the same area filter as a frame, finer levels over coarser ones where
they cover a whole view pixel. The last picture is the view's own
(:func:`~zoomreel.explore.images.image_for`), bit for bit what a
pyramid-mode render of the same frame shows.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import Callable

import numpy as np

from .. import color, compose, path, precision, pyramid
from ..model import Model
from ..path import View

CACHED_ABOVE = 6  # coarser levels whose cached tiles are shown at once
CACHED_BELOW = 1  # finer levels whose cached tiles are shown at once (a view zoomed out of)
PREVIEW_PIXELS = 1024  # most pixels a preview trains
BLANK = 221  # grey where no level has a picture yet (the page's background)


def top_level(view: View) -> int:
    """The coarsest useful level: the finest whose tile side is at least the
    view's larger extent, so that one to four tiles cover the view."""
    W, H = view.size
    with localcontext(prec=pyramid.PREC):
        extent = view.span * max(W, H) / W
    n = math.floor(float((pyramid.SIZE0 / extent).ln() / Decimal(2).ln()))
    while pyramid.side(n) < extent:
        n -= 1
    while pyramid.side(n + 1) >= extent:
        n += 1
    return n


def chain(view: View) -> list[int]:
    """The levels a view is trained through, coarse to fine: :func:`top_level`,
    then the two the view's own picture reads (its blend level and its fine
    level). The levels between are left out: on a 256-pixel view they would
    add about a quarter to the tiles trained, for pictures the blend level's
    tiles, painted one by one, give as soon."""
    fp = pyramid.frame_plan(view)
    own = ([fp.coarse.level] if fp.coarse is not None else []) + [fp.fine.level]
    return sorted({min(top_level(view), own[0]), *own})


def ordered_tiles(view: View, level: int) -> list[pyramid.Tile]:
    """The tiles of ``level`` under the view, the nearest to its centre first."""
    cx, cy = (float(c) for c in view.center)
    s = float(pyramid.side(level))

    def distance(t: pyramid.Tile) -> float:
        return math.hypot((t.i + 0.5) * s - cx, (t.j + 0.5) * s - cy)

    return sorted(pyramid.footprint(view, level).tiles(), key=distance)


def chain_tiles(view: View) -> list[pyramid.Tile]:
    """Every tile of the chain, in the order they are trained."""
    return [t for n in chain(view) for t in ordered_tiles(view, n)]


def preview_arithmetic(model: Model, view: View):
    """The cheapest arithmetic in which the view's neighbouring pixels are
    well apart (the precision step's own first test, without its probe)."""
    from .. import engine

    for A in engine.LADDER:
        with np.errstate(over="ignore", invalid="ignore"):  # a coarse tile may reach past float32: not finite, next
            hx, hy = path.hyper_axes(model, view, A)
            if A.finite(hx) and A.finite(hy) and A.spaced(hx, precision.MIN_ULPS) and A.spaced(hy, precision.MIN_ULPS):
                return A
    return engine.LADDER[-1]


def preview(model: Model, view: View, level: int, on_progress: Callable[[int], None] | None = None) -> dict:
    """The lattice pixels of ``level`` under ``view``, every one of them or
    every ``stride``-th per axis (the least power of two that keeps them to
    :data:`PREVIEW_PIXELS`), trained as one small view. Returns the level's
    tiles under the view as stand-ins: TILE x TILE arrays, each sample
    repeated over its stride, NaN outside the view's block."""
    from .. import engine

    fp = pyramid.footprint(view, level)
    stride = 1
    while math.ceil(fp.cols / stride) * math.ceil(fp.rows / stride) > PREVIEW_PIXELS:
        stride *= 2
    nx, ny, off = math.ceil(fp.cols / stride), math.ceil(fp.rows / stride), (stride - 1) // 2
    p = pyramid.spacing(level)
    with localcontext(prec=pyramid.PREC):
        # sample m is lattice column c0 + stride*m + off: its centre is left + (m + 1/2) * stride * p
        left = pyramid.ORIGIN[0] + (fp.c0 + off + Decimal("0.5")) * p - stride * p / 2
        bottom = pyramid.ORIGIN[1] + (fp.r0 + off + Decimal("0.5")) * p - stride * p / 2
        span = nx * stride * p
        center = (left + span / 2, bottom + ny * stride * p / 2)
    v = View(center, span, (nx, ny))
    A = preview_arithmetic(model, v)
    hx, hy = path.pixel_hypers(model, v, A)
    raw = engine.train(model, hx, hy, A, on_progress=on_progress).values.reshape(ny, nx)
    block = np.repeat(np.repeat(raw, stride, axis=0), stride, axis=1)[: fp.rows, : fp.cols]
    T = pyramid.TILE
    out = {}
    for t in fp.tiles():
        c, r = t.i * T - fp.c0, t.j * T - fp.r0  # the tile's origin in block coordinates
        a, b, d, e = max(c, 0), min(c + T, fp.cols), max(r, 0), min(r + T, fp.rows)
        tile = np.full((T, T), np.nan)
        tile[d - r : e - r, a - c : b - c] = block[d:e, a:b]
        out[t] = tile
    return out


def paint(view: View, layers: dict[int, dict], palette: str) -> tuple[np.ndarray, int | None, float]:
    """A partial picture of ``view`` from ``layers`` (level -> {tile: raw
    (TILE, TILE)}), finer levels over coarser ones.

    Returns the RGB picture (H, W, 3) uint8 drawn as a plot (top row =
    highest y; grey where nothing covers it), the finest level that covers
    the whole view (None if none does), and the share of the view painted."""
    W, H = view.size
    nan = np.full((pyramid.TILE, pyramid.TILE), np.nan)
    blocks = []
    for level in sorted(layers):
        tiles = layers[level]
        if not tiles:
            continue
        fp = pyramid.footprint(view, level)
        blocks.append((fp, compose.mosaic(fp, lambda t: tiles.get(t, nan))))
    acc = np.full((H, W, 3), float(BLANK))
    have = np.zeros((H, W), dtype=bool)
    whole = None
    ref = None
    if blocks:  # the rank reference: the finest level with the most of the view, as the final picture's is its level's
        _, block = max(reversed(blocks), key=lambda b: np.isfinite(b[1]).mean())
        ref = color.summary(block[np.isfinite(block)])
    for fp, block in blocks:
        valid = np.isfinite(block)
        colours = color.colorize(np.where(valid, block, 0.0), ref, palette)[::-1].astype(np.float64)
        rgb = compose.area_filter(colours, fp, (W, H))
        full = compose.area_filter(valid.astype(np.float64), fp, (W, H)) > 1 - 1e-9
        acc[full] = rgb[full]
        have |= full
        if full.all():
            whole = fp.level
    img = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[::-1]), whole, float(have.mean())
