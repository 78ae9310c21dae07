"""Overlay: axis labels (the hyperparameter range at the frame's edges) and zoom depth.

The labels print as many significant digits as the zoom needs to tell the two
edges apart, in scientific notation. Drawn with Pillow, which imageio brings.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np

from . import kinds
from .model import Model
from .path import PREC, View

def axis_names(model: Model) -> tuple[str, str]:
    """The plane's axes as the overlay names them (the kind's spec says how)."""
    x, y = kinds.axes(model)
    return x.label, y.label


def edges(view: View) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
    W, H = view.size
    with localcontext(prec=PREC):
        hx = view.span / 2
        hy = view.span * H / W / 2
        cx, cy = view.center
        return (cx - hx, cx + hx), (cy - hy, cy + hy)


def digits_needed(model: Model, view: View, axis: int) -> int:
    """Significant digits that tell the two edges of ``axis`` (0: x, 1: y) apart."""
    span = float(view.span)
    if kinds.axis_logs(model)[axis]:
        rel = span * math.log(10.0)
    else:
        mag = abs(float(view.center[axis])) + span
        rel = span / mag
    return max(3, math.ceil(-math.log10(max(rel, 1e-300))) + 2)


def fmt(model: Model, coord: Decimal, digits: int, axis: int) -> str:
    with localcontext(prec=max(PREC, digits + 5)):
        v = Decimal(10) ** coord if kinds.axis_logs(model)[axis] else coord
        return f"{v:.{digits - 1}e}"


def labels(model: Model, view: View, first_span: Decimal) -> dict:
    """Label texts: the four edges and the zoom depth."""
    (x0, x1), (y0, y1) = edges(view)
    nx, ny = axis_names(model)
    depth = math.log10(float(first_span) / float(view.span)) if view.span != first_span else 0.0
    if kinds.axis_logs(model)[0] == kinds.axis_logs(model)[1]:  # one count for both, as the plane is one
        dx = dy = max(digits_needed(model, view, 0), digits_needed(model, view, 1))
    else:
        dx, dy = digits_needed(model, view, 0), digits_needed(model, view, 1)
    return {
        "x": f"{nx}: {fmt(model, x0, dx, 0)} .. {fmt(model, x1, dx, 0)}",
        "y": f"{ny}: {fmt(model, y0, dy, 1)} .. {fmt(model, y1, dy, 1)}",
        "depth": f"zoom 10^{depth:.2f}  (span {float(view.span):.3g})",
    }


def draw(img: np.ndarray, model: Model, view: View, first_span: Decimal) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    H, W = img.shape[:2]
    lab = labels(model, view, first_span)

    def font_of(size):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: one small bitmap font
            return ImageFont.load_default()

    im = Image.fromarray(img)
    dr = ImageDraw.Draw(im)
    size = max(9, min(W, H) // 24)
    widest = max(dr.textlength(t, font=font_of(size)) for t in lab.values())
    if widest > 0.96 * W:  # shrink to fit the frame's width
        size = int(size * 0.96 * W / widest)
    if size < 7:  # too small to read: leave the frame clean
        return img
    font = font_of(size)
    pad = max(2, size // 3)
    style = dict(font=font, fill=(255, 255, 255), stroke_width=max(1, size // 8), stroke_fill=(0, 0, 0))
    dr.text((pad, H - pad), lab["x"], anchor="lb", **style)
    dr.text((pad, pad), lab["y"], anchor="lt", **style)
    dr.text((W - pad, pad + size + pad), lab["depth"], anchor="rt", **style)
    return np.asarray(im)
