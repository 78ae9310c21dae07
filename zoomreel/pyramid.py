"""The zoom pyramid: a fixed quadtree of square tiles over the plane.

Level ``n`` cuts the plane into squares of side ``SIZE0 / 2**n`` plane units
(``n`` may be negative), aligned on ``ORIGIN``; tile ``(n, i, j)`` is the
square whose lower-left corner is ``ORIGIN + (i, j) * side``. A tile is a
``TILE`` x ``TILE`` view: its pixel (r, c) samples
``x = ox + (i*TILE + c + 1/2) * p``, ``y = oy + (j*TILE + r + 1/2) * p``,
``p = side / TILE`` (the level's pixel spacing). These constants never change,
so a tile names the same pixels in every file, and a model's tiles are shared
by every path over it.

All of this is exact: sides and spacings are powers of two, which have exact
decimals, and every lattice coordinate here is computed with :data:`PREC`
digits under a context that traps any rounding. A tile's pixel centres are
then computed by :func:`zoomreel.path.axis_coords` with its 60 digits; a
centre at spacing 2**-m, |x| < 100, has at most m + 2 significant digits, so
they are exact down to spacings of 2**-58 (3.5e-18), finer than float64 can
tell apart anywhere on the plane.

A frame reads the level whose spacing is at most its own (:func:`frame_plan`)
and blends with the next coarser level as the zoom goes; :mod:`zoomreel.compose`
turns the tiles into the picture. Pure maths on Decimals: no JAX, no files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext

from .view import View

ORIGIN = (Decimal(0), Decimal(0))
SIZE0 = Decimal(16)  # side of a level-0 tile, plane units
TILE = 64  # pixels per tile side
PREC = 200  # digits for lattice arithmetic (exact: rounding raises decimal.Inexact)


def _pow2(n: int) -> Decimal:
    """2**n as an exact Decimal, for any integer n."""
    with localcontext(prec=PREC) as ctx:
        ctx.traps[Inexact] = True
        return Decimal(2) ** n if n >= 0 else Decimal(1) / (Decimal(2) ** -n)


def side(level: int) -> Decimal:
    """Side of a tile of ``level``, plane units (exact)."""
    with localcontext(prec=PREC) as ctx:
        ctx.traps[Inexact] = True
        return SIZE0 * _pow2(-level)


def spacing(level: int) -> Decimal:
    """Pixel spacing of ``level``, plane units (exact)."""
    with localcontext(prec=PREC) as ctx:
        ctx.traps[Inexact] = True
        return side(level) / TILE


@dataclass(frozen=True, order=True)
class Tile:
    level: int
    i: int
    j: int

    def view(self) -> View:
        """The tile as a square TILE x TILE view with exact centre and span."""
        s = side(self.level)
        with localcontext(prec=PREC) as ctx:
            ctx.traps[Inexact] = True
            half = Decimal("0.5")
            cx = ORIGIN[0] + (self.i + half) * s
            cy = ORIGIN[1] + (self.j + half) * s
        return View(center=(cx, cy), span=s, size=(TILE, TILE))

    def key_fields(self) -> dict:
        """What names the tile's pixels (cache keys): the lattice and the index."""
        return {"pyramid": {"origin": [str(ORIGIN[0]), str(ORIGIN[1])], "size0": str(SIZE0), "tile": TILE},
                "tile": [self.level, self.i, self.j]}

    def name(self) -> str:
        return f"L{self.level}({self.i},{self.j})"


def level_for(pixel: Decimal) -> int:
    """The coarsest level whose spacing is at most ``pixel`` (finer, or equal)."""
    pixel = Decimal(pixel)
    if pixel <= 0:
        raise ValueError("a pixel spacing must be positive")
    with localcontext(prec=50):
        n = math.ceil((SIZE0 / (TILE * pixel)).ln() / Decimal(2).ln())
    while spacing(n) > pixel:
        n += 1
    while spacing(n - 1) <= pixel:
        n -= 1
    return n


@dataclass(frozen=True)
class Footprint:
    """The block of a level's lattice that a frame covers.

    Lattice columns ``c0 .. c0 + cols - 1`` and rows ``r0 .. r0 + rows - 1``
    (global indices: column c is x in [ox + c p, ox + (c+1) p)). The frame's
    left (bottom) edge lies ``fx`` (``fy``) lattice pixels past ``c0`` (``r0``),
    and one frame pixel is ``ratio`` lattice pixels wide.
    """

    level: int
    c0: int
    r0: int
    cols: int
    rows: int
    fx: float
    fy: float
    ratio: float

    def tiles(self) -> list[Tile]:
        i0, i1 = self.c0 // TILE, (self.c0 + self.cols - 1) // TILE
        j0, j1 = self.r0 // TILE, (self.r0 + self.rows - 1) // TILE
        return [Tile(self.level, i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]


def footprint(view: View, level: int) -> Footprint:
    """The lattice block of ``level`` under ``view`` (every pixel it touches)."""
    W, H = view.size
    p = spacing(level)
    with localcontext(prec=PREC):
        f = view.span / W
        u = (view.center[0] - f * W / 2 - ORIGIN[0]) / p  # left edge, lattice units
        v = (view.center[1] - f * H / 2 - ORIGIN[1]) / p
        r = f / p
        c0, r0 = math.floor(u), math.floor(v)
        cols = math.ceil(u + r * W) - c0
        rows = math.ceil(v + r * H) - r0
        return Footprint(level, c0, r0, cols, rows, float(u - c0), float(v - r0), float(r))


@dataclass(frozen=True)
class FramePlan:
    """Where one frame's pixels come from: the level whose spacing is at most
    the frame's, and the next coarser one, blended by ``blend`` (0 = fine
    only, towards 1 as the frame's spacing nears twice the fine level's)."""

    fine: Footprint
    coarse: Footprint | None
    blend: float

    def tiles(self) -> list[Tile]:
        return self.fine.tiles() + (self.coarse.tiles() if self.coarse is not None else [])


def frame_plan(view: View) -> FramePlan:
    """The levels, lattice blocks and blend weight of one frame."""
    with localcontext(prec=PREC):
        f = view.span / view.size[0]
    n = level_for(f)
    fine = footprint(view, n)
    with localcontext(prec=PREC):
        ratio = f / spacing(n)  # in [1, 2)
    if ratio == 1:
        return FramePlan(fine, None, 0.0)
    blend = math.log2(float(ratio))
    return FramePlan(fine, footprint(view, n - 1), blend)


def tiles_for(plans) -> list[Tile]:
    """Every tile a set of frame plans reads, once, coarse levels first."""
    return sorted({t for fp in plans for t in fp.tiles()})
