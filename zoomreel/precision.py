"""Precision: which dtype a frame needs, measured rather than guessed.

The arithmetics (:data:`zoomreel.engine.LADDER`: float32, float64, then
double-double ``dd``) are walked cheapest first. Two hard facts come first:
- if neighbouring pixels' hyperparameters are not distinct in the last
  arithmetic of the ladder, the frame cannot be rendered (UserError naming
  the deepest span that works);
- if they are not distinct in an arithmetic, it is out; auto also leaves it
  out once neighbours are fewer than ``MIN_ULPS`` of its ulps apart, where
  rounding would visibly unevenly space the pixels.

Then a probe: a fixed sample of the frame's pixels. float32 is trained on it
and compared with float64: if the two agree on the converged/diverged class
for at least ``MIN_AGREEMENT`` of the sample, the frame is rendered in
float32, and that agreement is its "resolved %". From float64 on, an
arithmetic is judged by itself: its resolved % is its agreement with itself
with every hyperparameter nudged up by ``NUDGE_ULP`` of its own ulps (a dd ulp
is 2^-53 of a float64 one); pixels that flip under such a nudge are
undetermined at that precision. float64 is kept while it resolves at least
``KEEP_RESOLVED``; otherwise (or where it cannot space the pixels) the frame
goes to perturbation (``perturb``: every pixel a float64 difference from a
reference pixel trained in many digits, :mod:`zoomreel.engine.perturb`),
judged by its own nudge too (every pixel's offset from the reference moved
up by ``NUDGE_ULP`` of its float64 ulps), and used whatever it resolves.
Where perturbation does not train the model, dd, the last arithmetic, takes
its place. Below ``F64_WARN`` a warning says how much is undetermined. A
forced precision is probed the same way (float32 against float64, the
others by their nudge).

The probe's values in the chosen dtype come back with the decision
(:func:`decide_and_probe`), so the frame does not train those pixels again.
The thresholds are calibrated in docs/precision.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from . import engine, preflight
from .cancel import Cancel, stop_if
from .errors import UserError
from .model import Model
from .path import hyper_axes
from .precision_names import PERTURB
from .view import View

MIN_AGREEMENT = 0.99  # a cheaper arithmetic must agree with the next one this well
F64_WARN = 0.90
# From float64 on, an arithmetic is judged by its own nudge test, not by the
# next one up (training the probe in dd costs far more than float64 twice):
# it is kept while it resolves at least KEEP_RESOLVED of the probe.
SELF_JUDGED_RANK = 1
KEEP_RESOLVED = F64_WARN
NUDGE_ULP = 4
MIN_ULPS = 4  # auto uses a cheaper arithmetic only where neighbouring pixels are this many of its ulps apart
# The probe: 1/64 of the frame, at least 256 pixels (the size docs/precision.md
# calibrated the thresholds with) and at most 1024, so that its extra runs cost
# a few percent of any frame of 16384 pixels or more.
PROBE_MIN, PROBE_MAX, PROBE_FRACTION = 256, 1024, 1 / 64
PROBE_SEED = 20240209


# How a cached decision record names each arithmetic's agreement (the cache's
# format, zoomreel.cache.DECISION_FIELDS): records written by every version
# read back the same.
STORED_AGREEMENTS = {"float32": "f32_agreement", "float64": "f64_agreement", "dd": "dd_agreement"}
PERTURB_AGREEMENT = "perturb_agreement"  # stored only where perturbation was probed (cache.DECISION_OPTIONAL)


@dataclass(frozen=True)
class Decision:
    dtype: str  # the arithmetic's name: "float32" | "float64" | "dd"
    resolved: float  # measured class agreement of the chosen dtype, 0..1
    reason: str
    # per arithmetic probed: float32 its agreement with float64, the others
    # their own agreement under a nudge (module doc)
    agreements: Mapping[str, float] = field(default_factory=dict, hash=False)
    probe_pixels: int = 0
    warning: str | None = None
    redone: float | None = None  # perturbation: share of the frame's pixels redone after a glitch

    def to_json(self) -> dict:
        """The record the cache stores (the fields of STORED_AGREEMENTS, None where not probed;
        perturbation's agreement and redone share only where there are)."""
        d = {
            "dtype": self.dtype, "resolved": self.resolved, "reason": self.reason,
            **{stored: self.agreements.get(name) for name, stored in STORED_AGREEMENTS.items()},
            "probe_pixels": self.probe_pixels, "warning": self.warning,
        }
        if PERTURB in self.agreements:
            d[PERTURB_AGREEMENT] = self.agreements[PERTURB]
        if self.redone is not None:
            d["redone"] = self.redone
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Decision":
        agreements = {name: d[stored] for name, stored in STORED_AGREEMENTS.items() if d.get(stored) is not None}
        if d.get(PERTURB_AGREEMENT) is not None:
            agreements[PERTURB] = d[PERTURB_AGREEMENT]
        return cls(d["dtype"], d["resolved"], d["reason"], agreements, d.get("probe_pixels", 0), d.get("warning"),
                   d.get("redone"))


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
    glitched: np.ndarray | None = None  # perturbation: the probe's pixels that were redone


def probe_indices(size: tuple[int, int]) -> np.ndarray:
    W, H = size
    npix = W * H
    k = int(min(npix, max(PROBE_MIN, min(PROBE_MAX, npix * PROBE_FRACTION))))
    rng = np.random.default_rng(PROBE_SEED)
    return np.sort(rng.choice(npix, size=k, replace=False))


def _classes(v: np.ndarray) -> np.ndarray:
    return v < 0


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose converged/diverged class is the same in both."""
    return float(np.mean(_classes(a) == _classes(b)))


def decide(model: Model, view: View, precision: str = "auto", where: str = "view", cancel: Cancel = None) -> Decision:
    """Pick the arithmetic for one frame (see module doc). Trains only a small probe."""
    return decide_and_probe(model, view, precision, where, cancel)[0]


class _ProbeRuns:
    """The probe's pixels trained in each arithmetic, each at most once."""

    def __init__(self, model: Model, view: View, idx: np.ndarray, cancel: Cancel = None):
        self.model, self.view, self.idx = model, view, idx
        self.cancel = cancel
        self.on_progress = (lambda n: stop_if(cancel)) if cancel is not None else None
        self.values: dict[str, np.ndarray] = {}
        self.axes: dict[str, tuple] = {}

    def hypers(self, A):
        if A.name not in self.axes:
            hx, hy = hyper_axes(self.model, self.view, A)
            W = self.view.size[0]
            self.axes[A.name] = (hx, hy, hx[self.idx % W], hy[self.idx // W])
        return self.axes[A.name]

    def run(self, A) -> np.ndarray:
        if A.name not in self.values:
            stop_if(self.cancel)
            px, py = self.hypers(A)[2:]
            self.values[A.name] = engine.train(self.model, px, py, A, on_progress=self.on_progress).values
        return self.values[A.name]

    def perturbed(self, nudge: int = 0):
        """The probe by perturbation (``nudge``: offsets moved up by that many ulps)."""
        from .engine import perturb

        key = (PERTURB, nudge)
        if key not in self.values:
            stop_if(self.cancel)
            self.values[key] = perturb.train_view(self.model, self.view, self.idx, nudge, self.on_progress)
        return self.values[key]

    def nudged(self, A) -> float:
        stop_if(self.cancel)
        px, py = self.hypers(A)[2:]
        vn = engine.train(self.model, A.nudge(px, NUDGE_ULP), A.nudge(py, NUDGE_ULP), A, on_progress=self.on_progress).values
        return agreement(vn, self.run(A))


def decide_and_probe(model: Model, view: View, precision: str = "auto", where: str = "view",
                     cancel: Cancel = None) -> tuple[Decision, Probe]:
    """:func:`decide`, and the probe pixels' values in the chosen arithmetic.

    ``cancel()`` is asked before each of the probe's runs and after every
    segment of steps they train; once it says True the decision is abandoned
    with :class:`zoomreel.cancel.Cancelled` (a superseded view)."""
    from .engine import perturb

    ladder = engine.arithmetics_for(model)  # the arithmetics this model trains in, cheapest first
    top = ladder[-1]
    by_perturb = precision == PERTURB or (precision == "auto" and perturb.supports(model))
    if precision == PERTURB and not perturb.supports(model):
        raise UserError("perturbation does not train this model", where, 'use precision = "auto" or "dd"')
    stop_if(cancel)
    if by_perturb:
        preflight.check_range(model, view, where)
    else:
        preflight.check_view(model, view, where, top)
    idx = probe_indices(view.size)
    runs = _ProbeRuns(model, view, idx, cancel)
    usable, even = {}, {}
    for A in ladder[:-1]:
        ax, ay = runs.hypers(A)[:2]
        usable[A.name] = A.distinct(ax) and A.distinct(ay)
        even[A.name] = usable[A.name] and A.spaced(ax, MIN_ULPS) and A.spaced(ay, MIN_ULPS)
    forced = None if precision in ("auto", PERTURB) else engine.arithmetic(precision)
    if forced is not None and forced is not top and not usable[forced.name]:
        # before any training: the user waits for nothing
        raise UserError(
            f"{forced.name} cannot tell neighbouring pixels apart at span {float(view.span):.3g}",
            where,
            'use precision = "auto" or ' + " or ".join(f'"{B.name}"' for B in ladder[forced.rank + 1 :]),
        )
    agree: dict[str, float] = {}
    reason = "forced"
    for k, A in enumerate(ladder[:-1]):
        if (forced is not None and forced is not A) or precision == PERTURB:
            continue
        nxt = ladder[k + 1]
        own = A.rank >= SELF_JUDGED_RANK  # judged by its own nudge test, not by the next arithmetic
        if forced is A or even[A.name]:
            agree[A.name] = runs.nudged(A) if own else agreement(runs.run(A), runs.run(nxt))
        if forced is A or agree.get(A.name, -1.0) >= (KEEP_RESOLVED if own else MIN_AGREEMENT):
            if forced is None:
                reason = (f"{A.name} resolves {agree[A.name]:.1%} of the probe under a {NUDGE_ULP}-ulp nudge" if own
                          else f"{A.name} agrees with {nxt.name} on {agree[A.name]:.1%} of the probe")
            return _decision(A, agree[A.name], reason, agree, runs)
        if forced is None:
            if not usable[A.name]:
                reason = f"{A.name} cannot tell neighbouring pixels apart"
            elif not even[A.name]:
                reason = f"neighbouring pixels are fewer than {MIN_ULPS} {A.name} ulps apart"
            elif own:
                reason = f"{A.name} resolves only {agree[A.name]:.1%} of the probe under a {NUDGE_ULP}-ulp nudge"
            else:
                reason = f"{A.name} agrees with {nxt.name} on only {agree[A.name]:.1%} of the probe"
    if by_perturb:
        resolved = float(np.mean(perturb.settled(runs.perturbed(), runs.perturbed(NUDGE_ULP))))
        agree[PERTURB] = resolved
        res = runs.perturbed()
        d = Decision(PERTURB, resolved, reason, dict(agree), int(idx.size), _warn(PERTURB, resolved))
        return d, Probe(PERTURB, idx, res.values, res.glitched)
    resolved = runs.nudged(top)
    agree[top.name] = resolved
    return _decision(top, resolved, reason, agree, runs)


def _decision(A, resolved: float, reason: str, agree: dict, runs: _ProbeRuns) -> tuple[Decision, Probe]:
    d = Decision(A.name, resolved, reason, dict(agree), int(runs.idx.size), _warn(A.name, resolved))
    return d, Probe(A.name, runs.idx, runs.run(A))


def _warn(dtype: str, resolved: float) -> str | None:
    if resolved >= F64_WARN:
        return None
    return (
        f"only {resolved:.1%} of the probe is resolved in {dtype}; about {1 - resolved:.0%} "
        "of the frame's pixels are undetermined (they flip under a change of a few ulp)"
    )
