"""Compose: a frame's picture from the pyramid's tiles.

A frame pixel is a square of the plane. Its colour is the area-weighted mean
(a box filter) of the colours of the lattice pixels it covers, on the level
:func:`zoomreel.pyramid.frame_plan` picks (spacing at most the frame's), and
the same on the next coarser level; the two are blended by the plan's weight
(0 when the frame's spacing equals the fine level's, towards 1 as it nears
twice that), so a level switch never pops. Filtering happens in colour space
(RGB), after the rank restretch, so that an antialiased pixel is a mix of the
colours it covers. The converged fraction of a pixel (the share of its
footprint whose samples converged) is filtered and blended the same way.

A frame whose pixels lie exactly on a level's lattice (same spacing, edges on
lattice lines) gets weights that are exactly 1 and 0, so its picture is the
tiles' pixels bit for bit. Pure NumPy: no JAX, no files.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import color
from .pyramid import TILE, Footprint, FramePlan, Tile


def mosaic(fp: Footprint, tile: Callable[[Tile], np.ndarray]) -> np.ndarray:
    """The lattice block under a footprint, (rows, cols), row 0 = lowest y,
    cut from the tiles ``tile(t)`` returns ((TILE, TILE) raw measures)."""
    out = np.empty((fp.rows, fp.cols), dtype=np.float64)
    for t in fp.tiles():
        c, r = t.i * TILE - fp.c0, t.j * TILE - fp.r0  # tile origin in block coordinates
        a, b = max(c, 0), min(c + TILE, fp.cols)
        d, e = max(r, 0), min(r + TILE, fp.rows)
        out[d:e, a:b] = tile(t)[d - r : e - r, a - c : b - c]
    return out


def box_weights(offset: float, ratio: float, n_out: int, n_src: int) -> tuple[np.ndarray, np.ndarray]:
    """Area weights of a 1-D box filter: output pixel k covers source
    coordinates [offset + k ratio, offset + (k+1) ratio); source pixel m covers
    [m, m+1). Returns (index, weight), each (n_out, K), rows summing to 1."""
    k = np.arange(n_out, dtype=np.float64)
    a = offset + k * ratio
    b = a + ratio
    K = int(np.ceil(ratio)) + 1
    m = np.floor(a)[:, None] + np.arange(K)[None, :]
    w = np.clip(np.minimum(b[:, None], m + 1) - np.maximum(a[:, None], m), 0.0, None)
    inside = (m >= 0) & (m < n_src)
    w = np.where(inside, w, 0.0)
    w = w / w.sum(axis=1, keepdims=True)
    idx = np.clip(m, 0, n_src - 1).astype(np.intp)
    return idx, w


def area_filter(block: np.ndarray, fp: Footprint, size: tuple[int, int]) -> np.ndarray:
    """Box-filter a lattice block (rows, cols[, channels]) onto a W x H frame."""
    W, H = size
    ix, wx = box_weights(fp.fx, fp.ratio, W, fp.cols)
    iy, wy = box_weights(fp.fy, fp.ratio, H, fp.rows)
    extra = (None,) * (block.ndim - 2)
    cols = sum(wx[(None, slice(None), t) + extra] * block[:, ix[:, t]] for t in range(ix.shape[1]))
    return sum(wy[(slice(None), t, None) + extra] * cols[iy[:, t]] for t in range(iy.shape[1]))


def compose(plan: FramePlan, blocks: dict[int, np.ndarray], size: tuple[int, int], ref: dict,
            palette: str) -> tuple[np.ndarray, np.ndarray]:
    """The frame's picture and its converged fraction.

    ``blocks``: level -> lattice block under that level's footprint
    (:func:`mosaic`). Returns the RGB image (H, W, 3) uint8 drawn as a plot
    (top row = highest y, as :func:`zoomreel.color.colorize`), and the
    converged fraction (H, W) float64 in 0..1 with row 0 = lowest y.
    """
    rgb, frac = _level(plan.fine, blocks, size, ref, palette)
    if plan.coarse is not None and plan.blend > 0:
        rgb2, frac2 = _level(plan.coarse, blocks, size, ref, palette)
        rgb = (1.0 - plan.blend) * rgb + plan.blend * rgb2
        frac = (1.0 - plan.blend) * frac + plan.blend * frac2
    img = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[::-1]), frac


def _level(fp: Footprint, blocks: dict[int, np.ndarray], size, ref, palette):
    block = blocks[fp.level]
    colours = color.colorize(block, ref, palette)[::-1].astype(np.float64)  # row 0 = lowest y
    return area_filter(colours, fp, size), area_filter((block < 0).astype(np.float64), fp, size)
