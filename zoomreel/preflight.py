"""Preflight: what would be refused, found before anything is trained.

One set of rules, in one wording, for every front end:

- :func:`check_keyframes`: the keyframe file's views, at its size, reach only
  hyperparameters float64 can hold and are not deeper than float64 can place
  (the scene checks them as it parses a file; no JAX);
- :func:`check_view`: a view the arithmetic (default: the deepest of the
  ladder) can train (the explorer before queueing a view, ``locate`` and
  ``frame`` before training, the precision decision before its probe);
- :func:`plan_refusals`: every refusal a render's plan would meet (the frames
  nearest each keyframe, where the path is deepest; in pyramid mode, also the
  finest level's tiles). ``render`` raises the first, ``info`` lists them.

A refusal is a :class:`~zoomreel.errors.UserError`, worded by
:func:`out_of_range` or :func:`too_deep` whichever check finds it.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np

from . import kinds
from .errors import UserError
from .model import Model
from .view import PREC, View

# Spans below this leave neighbouring pixels equal in float64 at any size and place.
SPAN_MIN = Decimal("1e-324")
_COARSE = Decimal("1e400")  # beyond this no check needs exact arithmetic


def out_of_range(view_text: str, arithmetic: str, where: str, log_axes: bool) -> UserError:
    return UserError(
        f"the view {view_text} reaches hyperparameters that {arithmetic} cannot hold",
        where,
        "keep log10 coordinates between about -300 and 300" if log_axes
        else "keep coordinates between about -1e308 and 1e308",
    )


def too_deep(span, arithmetic: str, where: str, deepest: float | None, level: str = "") -> UserError:
    """``level``: what has neighbouring pixels equal, when not the view's own pixels."""
    fix = (f"the deepest span this size supports here is about {deepest:.2g}; stop the zoom there or use fewer pixels"
           if deepest is not None else f"stop the zoom at a larger span ({arithmetic} tells no pixels apart below {SPAN_MIN})")
    equal = f"{level} has neighbouring pixels equal" if level else "neighbouring pixels are equal"
    return UserError(f"span {span} is too deep: {equal} in {arithmetic}", where, fix)


def _span_text(span) -> str:
    f = float(span)
    return f"{f:.3g}" if 0 < f < math.inf else f"{Decimal(span):.3g}"  # past float64's range: its decimal


# -- the keyframe file (no JAX)


def _float64_holds(x: Decimal, log_axes: bool) -> bool:
    """Whether a plane coordinate becomes a usable float64 hyperparameter."""
    if x.copy_abs() > (1000 if log_axes else _COARSE):
        return False
    if not log_axes:
        return math.isfinite(float(x))
    with localcontext(prec=PREC):
        h = float(Decimal(10) ** x)
    return math.isfinite(h) and h > 0


def check_keyframes(model: Model, keyframes, size: tuple[int, int], file_name: str) -> None:
    """Refuse keyframes whose view at ``size`` leaves the plane float64 can
    hold (the views between two keyframes lie within the two keyframes' hull,
    so the keyframes are enough). ``file_name`` names the file in errors."""
    W, H = size
    for i, k in enumerate(keyframes):
        where = f"{file_name}:keyframe[{i}]"
        if k.span < SPAN_MIN:
            raise too_deep(k.span, "float64", where + ".span", None)
        ok = all(c.copy_abs() <= _COARSE for c in k.center) and k.span <= _COARSE
        if ok:
            with localcontext(prec=PREC):
                half = (k.span / W * (W - 1) / 2, k.span / W * (H - 1) / 2)
                ends = [c + sign * h for c, h in zip(k.center, half) for sign in (-1, 1)]
            logs = kinds.axis_logs(model)
            ok = all(_float64_holds(x, logs[k // 2]) for k, x in enumerate(ends))
        if not ok:
            raise out_of_range(View(k.center, k.span, size).describe(), "float64", where + ".center", any(kinds.axis_logs(model)))


# -- views and plans (the engine's arithmetics)


def _top(model: Model):
    """The deepest arithmetic ``model`` trains in (dd, or float64 for the generic step)."""
    from . import engine

    return engine.arithmetics_for(model)[-1]


def deepest_span(model: Model, view: View, A=None) -> float:
    """Smallest span at this size whose neighbouring pixels stay distinct in
    ``A`` (default: the deepest arithmetic of the ladder)."""
    A = A or _top(model)
    return max(A.deepest_span((c,), view.size[0], log) for c, log in zip(view.center, kinds.axis_logs(model)))


def _perturbs(model: Model) -> bool:
    """Whether perturbation trains ``model``: then no arithmetic's depth limits a view."""
    from .engine import perturb

    return perturb.supports(model)


def check_range(model: Model, view: View, where: str, A=None) -> None:
    """Refuse a view whose hyperparameters ``A`` (default: float64) cannot hold."""
    from . import engine
    from .path import hyper_axes

    A = A or engine.FLOAT64
    hx, hy = hyper_axes(model, view, A)
    lx, ly = kinds.axis_logs(model)
    positive = all(np.all(A.host_values(h) > 0) for h, log in ((hx, lx), (hy, ly)) if log)
    if not (A.finite(hx) and A.finite(hy) and positive):
        raise out_of_range(view.describe(), A.name, where, any(kinds.axis_logs(model)))


DECIMALS = f"{PREC}-digit decimals"  # what places the pixels of a view that perturbation trains


def decimals_deepest_span(view: View) -> float:
    """Smallest span at this size whose pixel centres stay two units of the
    path's last decimal digit apart (:data:`zoomreel.view.PREC` digits)."""
    worst = 0.0
    for c in view.center:
        lead = c.adjusted() if c != 0 else -300
        worst = max(worst, 2.0 * 10.0 ** (lead - (PREC - 1)))
    return worst * view.size[0]


def check_decimals(view: View, where: str) -> None:
    """Refuse a view whose pixel centres the path's decimals cannot tell apart
    (perturbation has no depth of its own: the reference takes the digits it needs)."""
    from .path import axis_coords

    xs, ys = axis_coords(view)
    if not (all(a < b for a, b in zip(xs, xs[1:])) and all(a < b for a, b in zip(ys, ys[1:]))):
        raise too_deep(_span_text(view.span), DECIMALS, where, decimals_deepest_span(view))


def check_view(model: Model, view: View, where: str, A=None) -> None:
    """Refuse a view that arithmetic ``A`` (default: the deepest, or
    perturbation where it trains the model, which any depth the view's
    decimals separate suits) cannot train."""
    from .path import hyper_axes

    if A is None and _perturbs(model):
        check_range(model, view, where)
        check_decimals(view, where)
        return
    A = A or _top(model)
    check_range(model, view, where, A)
    hx, hy = hyper_axes(model, view, A)
    if not (A.distinct(hx) and A.distinct(hy)):
        raise too_deep(_span_text(view.span), A.name, where, deepest_span(model, view, A))


def check_tiles(model: Model, tiles, where: str, span, width: int) -> None:
    """Refuse pyramid tiles whose finest level the deepest arithmetic cannot
    train; ``span`` and ``width`` are the deepest frame's that reads them."""
    from . import pyramid
    from .path import hyper_axes

    if not tiles or _perturbs(model):
        return
    A = _top(model)
    top = max(t.level for t in tiles)
    for t in (t for t in tiles if t.level == top):
        v = t.view()
        hx, hy = hyper_axes(model, v, A)
        if A.finite(hx) and A.finite(hy) and not (A.distinct(hx) and A.distinct(hy)):
            deep = deepest_span(model, v, A) / pyramid.TILE * width * 2
            level = f"pyramid level {top} (pixel spacing {float(pyramid.spacing(top)):.3g})"
            raise too_deep(_span_text(span), A.name, where, deep, level)


def plan_refusals(plan) -> list[UserError]:
    """Everything a render of ``plan`` would refuse, found without training:
    the frames nearest each keyframe (the path's span is smallest at one of
    them) checked as the precision decision checks every frame; in pyramid
    mode, the finest level of tiles the frames read."""
    scene = plan.scene
    ks = set()
    for kf in scene.keyframes:
        at = kf.time * plan.fps
        ks.update(min(plan.n_frames - 1, int(f)) for f in (at.to_integral_value(rounding="ROUND_FLOOR"),
                                                            at.to_integral_value(rounding="ROUND_CEILING")))
    ks = {k for k in ks if 0 <= k < plan.n_frames} or {plan.n_frames - 1}
    out = []
    for k in sorted(ks):
        try:
            check_view(scene.model, plan.view(k), f"{scene.keyframes_where}, frame {k}")
        except UserError as e:
            out.append(e)
    if plan.mode == "pyramid" and not out:
        try:
            check_tiles(scene.model, plan.tiles(), scene.keyframes_where, plan.view(plan.n_frames - 1).span, plan.size[0])
        except UserError as e:
            out.append(e)
    return out
