"""Precision: which dtype a frame needs, measured rather than guessed.

Two hard facts come first:
- if neighbouring pixels' hyperparameters are not distinct in float64, the
  frame cannot be rendered (UserError naming the deepest span that works);
- if they are not distinct in float32, float32 is out; auto also leaves it out
  once neighbours are fewer than ``F32_MIN_ULPS`` float32 ulps apart, where
  rounding would visibly unevenly space the pixels.

Then a probe: a fixed sample of the frame's pixels is trained in float32 and in
float64 (a forced float64 skips the float32 probe). If the two agree on the
converged/diverged class for at least ``F32_MIN_AGREEMENT`` of the sample, the
frame is rendered in float32, and that agreement is its "resolved %".
Otherwise float64 is used, and its resolved % is the agreement between float64
and float64 with every hyperparameter nudged up by ``NUDGE_ULP`` ulp: pixels
that flip under such a nudge are undetermined at float64 itself. Below
``F64_WARN`` a warning says how much is undetermined.

The probe's values in the chosen dtype come back with the decision
(:func:`decide_and_probe`), so the frame does not train those pixels again.
The thresholds are calibrated in docs/precision.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import engine
from .errors import UserError
from .model import Model
from .path import View, hyper_axes

F32_MIN_AGREEMENT = 0.99
F64_WARN = 0.90
NUDGE_ULP = 4
F32_MIN_ULPS = 4  # auto uses float32 only where neighbouring pixels are this many ulps apart
# The probe: 1/64 of the frame, at least 256 pixels (the size docs/precision.md
# calibrated the thresholds with) and at most 1024, so that its extra runs cost
# a few percent of any frame of 16384 pixels or more.
PROBE_MIN, PROBE_MAX, PROBE_FRACTION = 256, 1024, 1 / 64
PROBE_SEED = 20240209


@dataclass(frozen=True)
class Decision:
    dtype: str  # "float32" | "float64"
    resolved: float  # measured class agreement of the chosen dtype, 0..1
    reason: str
    f32_agreement: float | None = None
    f64_agreement: float | None = None
    probe_pixels: int = 0
    warning: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Decision":
        return cls(**d)


@dataclass(frozen=True)
class Probe:
    """The probe's pixels, already trained in the dtype the frame will use.

    ``indices`` are flat frame indices (row by row from the lowest y, as
    :func:`zoomreel.path.pixel_hypers` orders them) and ``values`` their
    measure, so the frame need not train them again.
    """

    dtype: str
    indices: np.ndarray
    values: np.ndarray


def probe_indices(size: tuple[int, int]) -> np.ndarray:
    W, H = size
    npix = W * H
    k = int(min(npix, max(PROBE_MIN, min(PROBE_MAX, npix * PROBE_FRACTION))))
    rng = np.random.default_rng(PROBE_SEED)
    return np.sort(rng.choice(npix, size=k, replace=False))


def _distinct(vals: np.ndarray, dtype) -> bool:
    v = vals.astype(dtype)
    return bool(np.all(np.isfinite(v)) and np.all(np.diff(v) > 0))


def _f32_spaced(vals: np.ndarray) -> bool:
    """Neighbours at least F32_MIN_ULPS float32 ulps apart.

    Rounding to float32 moves each pixel by up to half an ulp; at this spacing
    that is at most 1/8 of a pixel, so the sampling grid stays even on screen.
    """
    v = vals.astype(np.float32)
    if not np.all(np.isfinite(v)):
        return False
    gaps = np.diff(vals)
    ulp = np.spacing(np.maximum(np.abs(v[:-1]), np.abs(v[1:]))).astype(np.float64)
    return bool(np.all(gaps >= F32_MIN_ULPS * ulp))


def deepest_span(model: Model, view: View) -> float:
    """Smallest span at this size whose neighbouring pixels stay distinct in float64.

    Neighbours must be at least two float64 ulps apart (so rounding cannot merge
    them); taken at the larger of the two centre coordinates.
    """
    W = view.size[0]
    worst = 0.0
    for c in view.center:
        c = float(c)
        if model.log_axes:
            v = 10.0**c
            s = np.log10(1.0 + 2.0 * np.spacing(v) / v)
        else:
            s = 2.0 * float(np.spacing(max(abs(c), 1e-300)))
        worst = max(worst, s)
    return float(worst * W)


def check_representable(model: Model, view: View, hx: np.ndarray, hy: np.ndarray, where: str) -> None:
    if not (np.all(np.isfinite(hx)) and np.all(np.isfinite(hy)) and np.all(hx > 0 if model.log_axes else True)):
        raise UserError(
            f"the view {view.describe()} reaches hyperparameters that float64 cannot hold",
            where,
            "keep log10 coordinates between about -300 and 300",
        )
    if not (_distinct(hx, np.float64) and _distinct(hy, np.float64)):
        deep = deepest_span(model, view)
        raise UserError(
            f"span {float(view.span):.3g} is too deep: neighbouring pixels are equal in float64",
            where,
            f"the deepest span this size supports here is about {deep:.2g}; stop the zoom there or use fewer pixels",
        )


def _classes(v: np.ndarray) -> np.ndarray:
    return v < 0


def decide(model: Model, view: View, mode: str = "auto", where: str = "view") -> Decision:
    """Pick the dtype for one frame (see module doc). Trains only a small probe."""
    return decide_and_probe(model, view, mode, where)[0]


def decide_and_probe(model: Model, view: View, mode: str = "auto", where: str = "view") -> tuple[Decision, Probe]:
    """:func:`decide`, and the probe pixels' values in the chosen dtype."""
    hx_axis, hy_axis = hyper_axes(model, view)
    check_representable(model, view, hx_axis, hy_axis, where)
    W, H = view.size
    idx = probe_indices(view.size)
    px = hx_axis[idx % W]
    py = hy_axis[idx // W]
    k = idx.size
    f32_ok = _distinct(hx_axis, np.float32) and _distinct(hy_axis, np.float32)
    f32_even = f32_ok and _f32_spaced(hx_axis) and _f32_spaced(hy_axis)
    if mode == "float32" and not f32_ok:  # before any training: the user waits for nothing
        raise UserError(
            f"float32 cannot tell neighbouring pixels apart at span {float(view.span):.3g}",
            where,
            'use precision = "auto" or "float64"',
        )

    v64 = engine.train(model, px, py, "float64")
    agree32 = None
    if mode != "float64" and (f32_even or (f32_ok and mode == "float32")):
        v32 = engine.train(model, px, py, "float32")
        agree32 = float(np.mean(_classes(v32) == _classes(v64)))

    want32 = mode == "float32" or (mode == "auto" and agree32 is not None and agree32 >= F32_MIN_AGREEMENT)
    if want32:
        reason = "forced" if mode == "float32" else f"float32 agrees with float64 on {agree32:.1%} of the probe"
        decision = Decision("float32", agree32, reason, agree32, None, k, _warn("float32", agree32))
        return decision, Probe("float32", idx, v32)

    nx, ny = px.copy(), py.copy()
    for _ in range(NUDGE_ULP):
        nx, ny = np.nextafter(nx, np.inf), np.nextafter(ny, np.inf)
    vn = engine.train(model, nx, ny, "float64")
    agree64 = float(np.mean(_classes(vn) == _classes(v64)))
    if mode == "float64":
        reason = "forced"
    elif not f32_ok:
        reason = "float32 cannot tell neighbouring pixels apart"
    elif not f32_even:
        reason = f"neighbouring pixels are fewer than {F32_MIN_ULPS} float32 ulps apart"
    else:
        reason = f"float32 agrees with float64 on only {agree32:.1%} of the probe"
    decision = Decision("float64", agree64, reason, agree32, agree64, k, _warn("float64", agree64))
    return decision, Probe("float64", idx, v64)


def _warn(dtype: str, resolved: float) -> str | None:
    if resolved >= F64_WARN:
        return None
    return (
        f"only {resolved:.1%} of the probe is resolved in {dtype}; about {1 - resolved:.0%} "
        "of the frame's pixels are undetermined (they flip under a change of a few ulp)"
    )

