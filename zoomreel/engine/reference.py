"""The reference orbit of perturbation: one pixel trained in many digits.

Perturbation (:mod:`.perturb`) trains every pixel of a frame as a float64
difference from one reference pixel. This module trains that reference: in
fixed point, every value an exact Python integer times 2^-F (NumPy arrays of
Python integers), so that sums and products are exact and each rounding
(a right shift, a division) is one floor of at most 2^-F. tanh is mpmath's
(:func:`mpmath.libmp.mpf_tanh` on the raw integers, correctly rounded to
F + 8 bits). F follows from the digits asked for (:func:`digits_needed`).

Why fixed point and not mpmath numbers: the step's two matrix products are
most of the work, and NumPy multiplies arrays of Python integers about ten
times faster than arrays of mpf (measured: 14 ms for the 272 x 16 by 16 x 16
product at 300 bits, on the 2-core development CPU); values stay of order 1
to 1e15 until a run is retired, so a fixed binary point loses nothing.

What leaves this module, per step t before its update: the reference's
weights rounded to float64, and its loss as a double-double (hi, lo), which
the measure adds to each pixel's float64 difference; and, computed exactly
before it is rounded, the quantity the converged test compares with zero
(``tail``): the sum of the last LAST losses less LAST times the first. Past
a span of about 1e-30 a pixel's class can hang on digits that no
double-double holds. A reference whose
normalised loss passes ``RETIRE_V`` (or the Mandelbrot escape radius) stops
there: its later rows are NaN, and a pixel still alive then is redone from
another reference (:mod:`.perturb`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
from mpmath import libmp

from .measure import LAST, MANDELBROT_ESCAPE, V_CAP

# Measured digits a chaotic run loses per step (docs/precision.md: about 0.08
# on the boundary, by dd and float64 against mpmath); the budget takes 0.1.
LOSS_PER_STEP = 0.1
GUARD_DIGITS = 12  # digits kept beyond the frame's finest offset after the loss
EXTRA_BITS = 16  # bits beyond the digits, for the floors of the fixed point


def digits_needed(finest_offset: float, steps: int) -> int:
    """Digits of the reference for pixels ``finest_offset`` (relative) apart
    after ``steps`` steps: the offset's own digits, plus the digits the run
    can lose, plus a guard."""
    finest_offset = max(float(finest_offset), 1e-300)
    return int(math.ceil(-math.log10(finest_offset) + LOSS_PER_STEP * steps)) + GUARD_DIGITS


@dataclass(frozen=True)
class NetworkOrbit:
    """A network reference: per step t (before its update), in float64."""

    w0: np.ndarray  # (T, n, n) input-layer weights
    w1: np.ndarray  # (T, n) output-layer weights
    loss: np.ndarray  # (T, 2) the loss as a double-double (hi, lo); NaN after ``valid``
    valid: int  # steps with a loss (T unless the reference was retired)
    tail: float  # sum of the last LAST losses less LAST times the first, exactly then rounded (NaN if retired)
    lr0: float  # the reference's learning rates, rounded to float64
    lr1: float
    digits: int

    @property
    def converged(self) -> bool:
        """The run's exact class: it trained every step, the mean of its last
        LAST values of v_t is below 1 (``tail`` < 0), and none of them is capped."""
        last = self.loss[-LAST:, 0] / self.loss[0, 0]
        return bool(self.valid == self.loss.shape[0] and self.tail < 0 and np.all(last <= V_CAP))


@dataclass(frozen=True)
class MandelbrotOrbit:
    z: np.ndarray  # (T, 2) Re, Im of z_t before step t, float64; NaN after ``valid``
    valid: int
    digits: int


def _bits(digits: int) -> int:
    return int(math.ceil(digits * math.log2(10))) + EXTRA_BITS


def _fix(x: float, F: int) -> int:
    """float64 ``x`` as an integer times 2^-F, exactly where it can be (else floored)."""
    return math.floor(Fraction(x) * (1 << F))


def _fix_dec(x: Decimal, F: int) -> int:
    with localcontext(prec=F // 3 + 40):
        return int((x * (Decimal(2) ** F)).to_integral_value(rounding="ROUND_FLOOR"))


def _array(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _fixed(a: np.ndarray, F: int) -> np.ndarray:
    return _array([_fix(float(v), F) for v in np.ravel(a)]).reshape(np.shape(a))


def _to_float(v: int, F: int) -> float:
    try:
        return v / (1 << F)  # correctly rounded (Python's integer division)
    except OverflowError:
        return math.copysign(math.inf, v)


def _floats(a: np.ndarray, F: int) -> np.ndarray:
    return np.array([_to_float(int(v), F) for v in np.ravel(a)], dtype=np.float64).reshape(np.shape(a))


def _dd(v: int, F: int) -> tuple[float, float]:
    """An integer times 2^-F as the nearest double-double (hi, lo)."""
    hi = _to_float(v, F)
    if not math.isfinite(hi):
        return hi, 0.0
    p, q = hi.as_integer_ratio()  # q a power of two
    rest = Fraction(v, 1 << F) - Fraction(p, q)
    return hi, float(rest)


def _tanh(u: np.ndarray, F: int) -> np.ndarray:
    one = 1 << F
    limit = (F + 8) * one  # tanh is 1 within 2^-F-8 past |u| = (F + 8) ln 2 / 2 < F + 8
    out = []
    for v in np.ravel(u):
        v = int(v)
        if v >= limit:
            out.append(one)
        elif v <= -limit:
            out.append(-one)
        else:
            out.append(libmp.to_fixed(libmp.mpf_tanh(libmp.from_man_exp(v, -F), F + 8), F))
    return _array(out).reshape(u.shape)


def network_orbit(model, draws, hx: Decimal, hy: Decimal, digits: int, retire_v: float) -> NetworkOrbit:
    """The reference pixel with plane hyperparameters ``hx``, ``hy`` (exact:
    10**coordinate; lr-lr: the two layers' learning rates; init-lr: the
    input-layer offset and both layers' rate), trained for ``model.steps``
    steps in ``digits`` digits. The step is the paper's, as
    :mod:`.network` trains it (tests/reference_mp.py is its independent
    check)."""
    F = _bits(digits)
    S = 1 << F
    n = model.width
    T = model.steps
    P = model.n_points
    mb = model.minibatch
    rows = mb or P
    with localcontext(prec=F // 3 + 40):
        c_isn = _fix_dec(1 / Decimal(n).sqrt(), F)
        c_s2 = _fix_dec(Decimal(2).sqrt(), F)
        c_in = _fix_dec(1 / Decimal(n), F)
        c_two = _fix_dec(2 / Decimal(rows), F)
    if model.plane == "lr-lr":
        lr0, lr1, offset = hx, hy, None
    else:
        lr0 = lr1 = hy
        offset = hx
    L0, L1 = _fix_dec(lr0, F), _fix_dec(lr1, F)
    X = _fixed(draws.x, F)  # (P, n)
    Y = _fixed(draws.y[:, 0], F)  # (P,)
    W0 = _fixed(draws.w0, F)  # (n, n): input i -> unit j
    W1 = _fixed(draws.w1[:, 0], F)
    if offset is not None:
        W0 = W0 + _fix_dec(offset, F)
    w0s = np.full((T, n, n), np.nan)
    w1s = np.full((T, n), np.nan)
    loss = np.full((T, 2), np.nan)
    first = None
    valid = T
    kept = []
    for t in range(T):
        w0s[t], w1s[t] = _floats(W0, F), _floats(W1, F)
        z = ((X @ W0) >> F) * c_isn >> F  # (P, n)
        if model.nonlinearity == "tanh":
            h = _tanh(z * c_s2 >> F, F)
            dphi = (S - (h * h >> F)) * c_s2 >> F
        elif model.nonlinearity == "relu":
            pos = (z > 0).astype(object)  # 1 or 0, as Python integers
            h = pos * (z * c_s2 >> F)
            dphi = pos * c_s2
        else:
            h = z
            dphi = np.full(z.shape, S, dtype=object)
        out = ((h @ W1) >> F) * c_in >> F  # (P,)
        r = out - Y
        L = (r @ r >> F) // P
        loss[t] = _dd(L, F)
        kept.append(L)
        if first is None:
            first = L
        if not L <= retire_v * first:  # retired: the engine's rule
            valid = t + 1
            break
        sel = np.arange(P) if mb is None else draws.idx[t]
        g = r[sel] * c_two >> F  # (rows,)
        hg, xg, dg = h[sel], X[sel], dphi[sel]
        dw1 = ((g @ hg) >> F) * c_in >> F  # (n,)
        dz = ((g[:, None] * W1[None, :] >> F) * c_in >> F) * dg >> F  # (rows, n)
        dw0 = ((xg.T @ dz) >> F) * c_isn >> F  # (n, n)
        W0 = W0 - (L0 * dw0 >> F)
        W1 = W1 - (L1 * dw1 >> F)
    tail = math.nan
    if valid == T:
        start = max(0, T - LAST)
        tail = _to_float(sum(kept[start:]) - (T - start) * kept[0], F)
    return NetworkOrbit(w0s, w1s, loss, valid, tail, float(lr0), float(lr1), digits)


def mandelbrot_orbit(cx: Decimal, cy: Decimal, steps: int, digits: int) -> MandelbrotOrbit:
    """z <- z^2 + c from z = 0 in ``digits`` digits; stops once |z| passes
    the escape radius (then the later rows are NaN)."""
    F = _bits(digits)
    cr, ci = _fix_dec(cx, F), _fix_dec(cy, F)
    zr = zi = 0
    z = np.full((steps, 2), np.nan)
    esc = int(MANDELBROT_ESCAPE) ** 2 << (2 * F)
    valid = steps
    for t in range(steps):
        z[t] = _to_float(zr, F), _to_float(zi, F)
        if zr * zr + zi * zi > esc:
            valid = t + 1
            break
        zr, zi = (zr * zr - zi * zi >> F) + cr, (2 * zr * zi >> F) + ci
    return MandelbrotOrbit(z, valid, digits)
