"""The zoom path: which view each frame shows, computed in exact decimals.

Between two keyframes log(span) is linear in time, and the centre moves so
that the motion on screen is a pure zoom about the point both views share:
c* = (c2 - r c1) / (1 - r), r = span2 / span1, c(t) = c* + (c1 - c*) span(t) / span1.
When r = 1 the centre moves linearly. Views are :class:`zoomreel.view.View`.

The path reads a :class:`zoomreel.scene.Scene` (its keyframes, duration and
video) without importing the scene stage, which sits above it.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext

import numpy as np

from . import kinds
from .errors import UserError
from .model import Model
from .view import PREC, View


def frame_count(scene, fps: int | None = None) -> int:
    """How many frames the video has: frame k shows time k / fps
    (:func:`frame_time`), and every frame lies on the path, so the count is
    floor(T * fps) + 1 for a last keyframe at time T. When T is not a whole
    number of frames, the last frame comes just before T."""
    fps = fps or scene.video.fps
    T = scene.duration
    with localcontext(prec=len(T.as_tuple().digits) + 12):  # exact: T has finitely many digits
        n = int((T * fps).to_integral_value(rounding=ROUND_FLOOR)) + 1
    while n > 1 and frame_time(n - 1, fps) > T:  # k / fps rounded up past T in its 60th digit
        n -= 1
    return n


def frame_time(k: int, fps: int) -> Decimal:
    with localcontext(prec=PREC):
        return Decimal(k) / Decimal(fps)


def view_at(scene, t: Decimal, size: tuple[int, int] | None = None) -> View:
    size = tuple(size or scene.video.size)
    kfs = scene.keyframes
    if t < 0 or t > kfs[-1].time:
        raise UserError(
            f"time {t} is outside the path",
            scene.keyframes_where,
            f"use a time from 0 to {kfs[-1].time}",
        )
    with localcontext(prec=PREC):
        if len(kfs) == 1:
            k = kfs[0]
            return View(center=(+k.center[0], +k.center[1]), span=+k.span, size=size)
        i = 0
        while i < len(kfs) - 2 and t > kfs[i + 1].time:
            i += 1
        a, b = kfs[i], kfs[i + 1]
        u = (t - a.time) / (b.time - a.time)
        r = b.span / a.span
        if u == 0:
            span = +a.span
        elif u == 1:
            span = +b.span
        else:
            span = a.span * (r**u)
        if r == 1:
            center = tuple(ca + (cb - ca) * u for ca, cb in zip(a.center, b.center))
        elif u == 1:
            center = (+b.center[0], +b.center[1])
        else:
            star = tuple((cb - r * ca) / (1 - r) for ca, cb in zip(a.center, b.center))
            center = tuple(cs + (ca - cs) * span / a.span for cs, ca in zip(star, a.center))
    return View(center=center, span=span, size=size)


def levels(center: tuple[Decimal, Decimal], final: Decimal, size: tuple[int, int], widest: Decimal = Decimal(6)) -> list[View]:
    """The paper's zoom sequence: views 2x apart, all centred on ``center``,
    from the first span of at least ``widest`` down to ``final``, widest first."""
    spans = [final]
    with localcontext(prec=PREC):
        while spans[-1] < widest:
            spans.append(spans[-1] * 2)
    return [View(center=center, span=s, size=tuple(size)) for s in reversed(spans)]


def axis_coords(view: View, prec: int = PREC) -> tuple[list[Decimal], list[Decimal]]:
    """Plane coordinates of each column (x) and each row (y, row 0 lowest),
    to ``prec`` significant digits."""
    W, H = view.size
    with localcontext(prec=prec):
        s = view.span / W
        xs = [view.center[0] + (j + Decimal("0.5") - Decimal(W) / 2) * s for j in range(W)]
        ys = [view.center[1] + (i + Decimal("0.5") - Decimal(H) / 2) * s for i in range(H)]
    return xs, ys


def hyper_axes(model: Model, view: View, A) -> tuple[np.ndarray, np.ndarray]:
    """Each column's and each row's hyperparameter in arithmetic ``A``'s host
    form (:meth:`zoomreel.engine.arith.FloatArithmetic.hypers`): 10**coord on
    a log axis, the coordinate itself on a linear one (the Mandelbrot plane)."""
    xs, ys = axis_coords(view)
    lx, ly = kinds.axis_logs(model)
    return A.hypers(xs, lx), A.hypers(ys, ly)


def pixel_hypers(model: Model, view: View, A) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's two hyperparameters, flat, row by row from the lowest y
    (reshape a result to (H, W) to get the frame)."""
    hx, hy = hyper_axes(model, view, A)
    H = view.size[1]
    W = view.size[0]
    HX = np.tile(hx, (H,) + (1,) * (hx.ndim - 1))
    HY = np.repeat(hy, W, axis=0)
    return HX, HY
