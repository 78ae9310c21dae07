"""Perturbation: every pixel a float64 difference from one reference pixel.

A reference pixel is trained in many digits (:mod:`.reference`); every other
pixel's state is the reference's plus a difference, and the difference is
trained in float64 through an exact difference form of the step, so that no
value of the reference's size is ever subtracted from another in float64
(docs/precision.md, "Perturbation", has the theory). The step's pieces are
the network formulation's (:func:`.network.constants`, its layout and
constants); the scheduler is the engine's (:func:`.scheduler.train_jobs`).

Per pixel and step the device sends back the loss's difference from the
reference's and a glitch flag. The measure adds the reference's loss in
double-double (:class:`PerturbMeasure`), so the class is decided on
L_ref + dL without cancellation.

A glitch is a pixel whose values, taken as reference + difference, carry
rounding errors more than :data:`GLITCH_RATIO` times larger than float64
would on the pixel's own values: ``(|ref| + |d|) / |ref + d|`` past it, for
the weights (as vectors) and for the loss, while the pixel's normalised loss
is at most the cap; or a pixel still alive when its reference retired. For
the Mandelbrot set it is the classical test |Z + d| < 1e-3 |Z|. A glitched
pixel is retired at once and trained again from another reference
(:mod:`.placement` says which; :func:`train_view`), up to
a budget of references per view (:func:`budget`); what is left is trained in
double-double.
"""

from __future__ import annotations

import functools
import math
import json
import threading
from dataclasses import dataclass, fields
from decimal import Decimal, localcontext
from typing import Callable, NamedTuple

import numpy as np

import jax.numpy as jnp
from jax import lax

from .. import kinds, path
from ..model import Model
from . import keep, placement, reference
from .arith import FLOAT64, FULL, sum_last, tanh64
from .formulation import Formulation, Segment
from .measure import MANDELBROT_ESCAPE, V_CAP, DDMeasureMath, NetworkMeasure, RecordMeasure, mandelbrot_measure
from .network import RETIRE_V, constants
from .randoms import draws

GLITCH_RATIO = 16.0  # the rounding a difference may carry, in units of the pixel's own float64 rounding
MANDELBROT_GLITCH = 1e-3  # |Z + d| < this * |Z|: the classical glitch test (Pauldelbrot)
MAX_REFERENCES = 32  # references per view before the last glitched pixels go to dd
# ... where dd can place the view's pixels (neighbours MIN_DD_ULPS of its ulps
# apart); past that, dd would train a pixel up to a few spacings from where
# it is, so a view may make up to DEEP_MAX_REFERENCES before it falls back.
DEEP_MAX_REFERENCES = 64
MIN_DD_ULPS = 4
# The nudge test of perturbation (docs/precision.md, "Parting in a chaotic
# stretch"): a pixel is settled when its offset moved by a few ulps keeps its
# class, and moves the quantity its class is read from (:func:`settled`) by
# less than its size divided by this: the rounding such a pixel carries when
# it parts from its reference is a few hundred times the nudge (measured:
# about 360).
ROUNDING_PER_NUDGE = 1000.0

def supports(model) -> bool:
    """Whether perturbation trains ``model``: the Mandelbrot set, and the
    paper's network as the hand-written step trains it (plain gradient
    descent; its spec's ``native``): any field past the paper's is a model
    perturbation does not train."""
    if model.kind not in ("network", "mandelbrot") or not kinds.spec(model.kind).native(model):
        return False
    return model.kind == "mandelbrot" or (
        model.nonlinearity in ("tanh", "relu", "identity") and model.plane in ("lr-lr", "init-lr"))


# -- the network's difference form


class NetworkDiff(NamedTuple):
    w0: object  # (N, n, n) the pixel's input-layer weights minus the reference's
    w1: object  # (N, n)
    vprev: object  # (N,) the pixel's last L_t / L_0 (NaN before the first step)


def phi_diff(nonlinearity: str, Zr, dz, sqrt2):
    """The reference's activation and derivative (H, D) and the pixel's
    differences from them (dH, dD), exact forms (module doc)."""
    if nonlinearity == "tanh":
        u = sqrt2 * Zr
        e = jnp.exp(-2.0 * jnp.abs(u))
        om = 2.0 * e / (1.0 + e)  # 1 - |tanh u|, without cancellation
        H = jnp.sign(u) * (1.0 - om)
        D0 = om * (2.0 - om)  # 1 - tanh(u)^2
        du = sqrt2 * dz
        # |du| <= 1: tanh(u + du) - tanh(u) = tanh(du) (1 - H^2) / (1 + H tanh(du)), whose
        # denominator is at least 1 - tanh(1) > 0.2; further out the pixel has parted from
        # the reference in this unit and its own tanh, less H, is as exact (one tanh either way)
        near = jnp.abs(du) <= 1.0
        T = tanh64(jnp.where(near, du, u + du))
        dH = jnp.where(near, T * D0 / (1.0 + H * T), T - H)
        return H, sqrt2 * D0, dH, -sqrt2 * dH * (2.0 * H + dH)
    if nonlinearity == "relu":
        zp = Zr + dz
        on, pon = Zr > 0, zp > 0
        H = sqrt2 * jnp.where(on, Zr, 0.0)
        dH = sqrt2 * jnp.where(on, jnp.where(pon, dz, -Zr), jnp.where(pon, zp, 0.0))
        D = jnp.where(on, sqrt2, 0.0)
        return H, D, dH, jnp.where(pon, sqrt2, 0.0) - D
    return Zr, jnp.ones_like(Zr), dz, jnp.zeros_like(dz)


def _ratio(ref, diff, total):
    """(|ref| + |diff|) / |total|: how many times the pixel's own rounding a difference carries."""
    return (ref + diff) / total


class PerturbMeasure:
    """The network measure from float64 loss differences.

    The values: the reference's loss (double-double) is added to each
    difference, rounded to float64, and :class:`NetworkMeasure` sums v_t in
    float64 (the values are colours; within a class, pixels below float64's
    resolution read as one value either way, and a double-double sum cost
    a third of a deep frame's time). The class: the mean of the last LAST values of v_t is below 1 exactly when
    (sum of the last LAST L_t) - LAST L_0 < 0, and that is the reference's
    part of it, exact before rounding (``orbit.tail``), plus the pixel's,
    sum of its last LAST differences less LAST times its first, summed in
    double-double: neither part cancels against the reference's size, so
    the class stays exact far below what a double-double v_t resolves. A
    pixel with a capped value among its last LAST diverged. Also gathers
    each pixel's glitch flag. ``orbits``: the references, pixel i's being
    ``orbits[which[i]]`` (default: all the first).
    """

    def __init__(self, steps: int, n: int, orbits: list, which: np.ndarray | None = None):
        self.inner = NetworkMeasure(steps, n)
        self.l0 = np.full((n, 2), np.nan)  # the first loss, double-double
        self.which = np.zeros(n, dtype=int) if which is None else np.asarray(which)
        self.ref = np.stack([o.loss for o in orbits])  # (references, steps, 2)
        self.tail = np.array([o.tail for o in orbits])[self.which]  # per pixel
        self.glitched = np.zeros(n, dtype=bool)
        self.first_tail = self.inner.first_tail
        self.count = steps - self.first_tail
        self.d0 = np.full(n, np.nan)
        self.s = np.zeros((n, 2))  # sum of the last differences less count * the first, double-double
        self.capped = np.zeros(n, dtype=bool)
        self.margin = np.full(n, np.nan)  # mean of the last LAST v_t less 1; NaN where capped or retired

    def add(self, t: int, ids: np.ndarray, rec: np.ndarray) -> None:
        rec = np.asarray(rec, dtype=np.float64)
        k = rec.shape[0]
        D = DDMeasureMath
        with np.errstate(all="ignore"):
            self.glitched[ids] |= (rec[..., 1] > 0).any(axis=0)
            mine = self.ref[self.which[ids], t : t + k]  # (pixels, k, 2)
            rh, rl = mine[..., 0].T, mine[..., 1].T
            s, e = D.two_sum(rh, rec[..., 0])
            hi, lo = D.quick_two_sum(s, e + rl)
        if t == 0:
            self.d0[ids] = rec[0, :, 0]
            sh, sl = D.two_prod(-float(self.count), self.d0[ids])
            self.s[ids, 0], self.s[ids, 1] = sh, sl
            self.l0[ids, 0], self.l0[ids, 1] = hi[0], lo[0]
        self.inner.add(t, ids, hi)
        j0 = max(0, self.first_tail - t)
        if j0 >= k:
            return
        acc = self.s[ids]
        with np.errstate(all="ignore"):
            for j in range(j0, k):
                d = rec[j, :, 0]
                acc[:, 0], acc[:, 1] = D.add(acc[:, 0], acc[:, 1], d, np.zeros_like(d))
            vh, vl = D.div(hi[j0:], lo[j0:], self.l0[ids, 0], self.l0[ids, 1])
            self.capped[ids] |= (~(np.isfinite(vh) & np.isfinite(vl)) | D.greater(vh, vl, V_CAP)).any(axis=0)
        self.s[ids] = acc

    def retire(self, ids, t):
        ids = ids[~self.glitched[ids]]  # a glitched pixel's values are thrown away: it is trained again
        if t < self.inner.steps:
            self.capped[ids] = True
        self.inner.retire(ids, t)

    def past(self, ids, limit):
        return self.inner.past(ids, limit)

    def result(self):
        values = self.inner.result()
        whole = np.isfinite(self.tail)  # else the reference retired: its survivors are glitched
        D = DDMeasureMath
        th, tl = D.add(self.s[:, 0], self.s[:, 1], self.tail, np.zeros(len(values)))
        with np.errstate(all="ignore"):  # (sum of the last L_t - count L_0) / (count L_0), no cancellation
            self.margin = np.where(self.capped | ~whole, np.nan, th / (self.count * self.l0[:, 0]))
        converged = ~self.capped & D.less(th, tl, 0.0)
        sums = self.inner.sums
        return np.where(whole, np.where(converged, -sums[0], sums[1]), values)


class PerturbNetwork(Formulation):
    """The network's difference form. The per-step schedule is the reference:
    row t holds its weights (pixel-row layout), its loss's float64 value and
    the minibatch's rows."""

    kind = "network"
    impl = "perturb"

    def __init__(self, orbit: reference.NetworkOrbit | None = None):
        self.orbit = orbit
        self.last_measure: PerturbMeasure | None = None

    # one compiled program per model and chunk, whatever the reference
    def __hash__(self):
        return hash(type(self))

    def __eq__(self, other):
        return type(other) is type(self)

    def consts(self, model, A):
        d = draws(model)
        return (d.x, d.y, np.array([self.orbit.lr0, self.orbit.lr1]))

    def schedule(self, model):
        o = self.orbit
        T, n = o.w1.shape
        d = draws(model)
        parts = [o.w0.transpose(0, 2, 1).reshape(T, n * n), o.w1, o.loss[:, :1]]
        if model.minibatch is not None:
            parts.append(d.idx.astype(np.float64))
        return np.concatenate(parts, axis=1)

    def initial_state(self, model, a, A):
        N, n = a.shape[0], model.width
        w0 = np.zeros((N, n, n))
        if model.plane == "init-lr":
            w0 = w0 + np.asarray(a, dtype=np.float64)[:, None, None]
        return NetworkDiff(w0, np.zeros((N, n)), np.full(N, np.nan))

    def measure(self, steps, n, A):
        self.last_measure = PerturbMeasure(steps, n, [self.orbit])
        return self.last_measure

    def retire(self, measure, ids):
        return measure.past(ids, RETIRE_V) | measure.glitched[ids]  # a glitched pixel is trained again

    def segment(self, model, A, B, seg, stop):
        return network_segment(model, B, seg, stop)


def network_segment(model: Model, B: int, seg: int, stop: bool) -> Callable:
    n = model.width
    nl = model.nonlinearity
    mb = model.minibatch
    points = model.n_points
    K = constants(model, FLOAT64)
    s2, inv_n, two = K["sqrt2"], K["inv_n"], K["two_per_row"]

    def step(xt, y, lrs, da0, da1, row, carry):
        w0r, w1, vprev, l0 = carry  # (B*n, n) differences, rows = unit j; (B, n); (B,); (B,)
        W0r = row[: n * n].reshape(n, n)  # reference, rows = unit j
        W1 = row[n * n : n * n + n]
        Lr = row[n * n + n]
        Zr = jnp.matmul(W0r, xt, precision=FULL)  # (n, P)
        dz = jnp.matmul(w0r, xt, precision=FULL).reshape(B, n, -1)
        H, D, dH, dD = phi_diff(nl, Zr, dz, s2)
        Rr = jnp.einsum("jp,j->p", H, W1, precision=FULL) * inv_n - y  # (P,)
        dR = (jnp.einsum("bjp,bj->bp", dH, W1 + w1, precision=FULL)
              + jnp.einsum("jp,bj->bp", H, w1, precision=FULL)) * inv_n  # (B, P)
        dL = sum_last(dR * (2.0 * Rr + dR)) / points
        L = Lr + dL
        l0 = jnp.where(jnp.isnan(l0), L, l0)
        v = L / l0
        # the glitch test (module doc), on values before this step's update
        sr = jnp.sum(W0r * W0r) + jnp.sum(W1 * W1)
        sw = jnp.sum(w0r.reshape(B, -1) ** 2, axis=1) + jnp.sum(w1 * w1, axis=1)
        p0 = w0r.reshape(B, n, n) + W0r
        p1 = w1 + W1
        sp = jnp.sum(p0.reshape(B, -1) ** 2, axis=1) + jnp.sum(p1 * p1, axis=1)
        kw = _ratio(jnp.sqrt(sr), jnp.sqrt(sw), jnp.sqrt(sp))
        kl = _ratio(Lr, jnp.abs(dL), jnp.maximum(jnp.abs(L), l0))  # the measure reads L / L_0
        live = ~(vprev > V_CAP)
        glitch = live & ~((kw <= GLITCH_RATIO) & (kl <= GLITCH_RATIO))
        if mb is None:
            xg, Hg, Dg, dHg, dDg, Rg, dRg, rows = xt, H, D, dH, dD, Rr, dR, points
        else:
            idx_t = row[n * n + n + 1 :].astype(jnp.int32)
            xg, Hg, Dg, Rg = xt[:, idx_t], H[:, idx_t], D[:, idx_t], Rr[idx_t]
            dHg, dDg, dRg, rows = dH[:, :, idx_t], dD[:, :, idx_t], dR[:, idx_t], mb
        G = Rg * two  # (rows,)
        dG = dRg * two  # (B, rows)
        gp = G + dG
        dW1r = jnp.einsum("jp,p->j", Hg, G, precision=FULL) * inv_n
        ddW1 = (jnp.einsum("bjp,bp->bj", dHg, gp, precision=FULL)
                + jnp.einsum("jp,bp->bj", Hg, dG, precision=FULL)) * inv_n
        a = G[None, :] * W1[:, None] * inv_n  # (n, rows)
        da = (dG[:, None, :] * (W1 + w1)[:, :, None] + G[None, None, :] * w1[:, :, None]) * inv_n
        ddz = da * (Dg + dDg) + a * dDg  # (B, n, rows)
        dW0r = jnp.matmul(a * Dg, xg.T, precision=FULL)  # (n, n)
        ddW0 = jnp.matmul(ddz.reshape(B * n, rows), xg.T, precision=FULL)  # (B*n, n)
        w0r = w0r - (da0[:, None] * (jnp.tile(dW0r, (B, 1)) + ddW0) + lrs[0] * ddW0)
        w1 = w1 - (da1[:, None] * (dW1r + ddW1) + lrs[1] * ddW1)
        return (w0r, w1, v, l0), dL, L, glitch

    def segment(state, a, b, l0, consts, sched):
        x, y, lrs = consts
        xt = (x * K["inv_sqrt_n"]).T
        if model.plane == "lr-lr":
            da0, da1 = a, b
        else:
            da0 = da1 = b
        da0c = jnp.repeat(da0, n)
        w0r = state.w0.transpose(0, 2, 1).reshape(B * n, n)
        yrow = y[:, 0]

        def more(c):
            return (c[0] < seg) & ~c[-1]

        def one_step(c):
            t, w0r, w1, vprev, l0, rec, _ = c
            (w0r, w1, vprev, l0), dL, L, glitch = step(xt, yrow, lrs, da0c, da1, sched[t], (w0r, w1, vprev, l0))
            rec = lax.dynamic_update_index_in_dim(rec, jnp.stack([dL, glitch.astype(dL.dtype)], axis=-1), t, 0)
            gone = jnp.all(~(L / l0 <= RETIRE_V)) if stop else jnp.asarray(False)
            return t + 1, w0r, w1, vprev, l0, rec, gone

        rec = jnp.full((seg, B, 2), jnp.nan)
        start = (0, w0r, state.w1, state.vprev, l0, rec, jnp.asarray(False))
        ran, w0r, w1, vprev, l0, rec, _ = lax.while_loop(more, one_step, start)
        w0 = w0r.reshape(B, n, n).transpose(0, 2, 1)
        dead = jnp.isnan(w0).any(axis=(1, 2)) | jnp.isnan(w1).any(axis=1)
        return Segment(NetworkDiff(w0, w1, vprev), rec, dead, ran, l0)

    return segment


# -- the Mandelbrot set's: d <- 2 Z d + d^2 + dc


class MandelbrotDiff(NamedTuple):
    dr: object
    di: object
    out: object  # (N,) bool: escaped at an earlier step


class GlitchRecordMeasure:
    """The Mandelbrot measure on the record's first channel; the second is the glitch flag."""

    def __init__(self, steps, n):
        self.inner = RecordMeasure(mandelbrot_measure, steps, n)
        self.glitched = np.zeros(n, dtype=bool)
        self.margin = np.full(n, np.nan)  # the class is read from the escape alone (:func:`settled`)

    def add(self, t, ids, rec):
        rec = np.asarray(rec, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            self.glitched[ids] |= (rec[..., 1] > 0).any(axis=0)
        self.inner.add(t, ids, rec[..., 0])

    def retire(self, ids, t):
        self.inner.retire(ids, t)

    def result(self):
        return self.inner.result()


class PerturbMandelbrot(Formulation):
    kind = "mandelbrot"
    impl = "perturb"

    def __init__(self, orbit: reference.MandelbrotOrbit | None = None):
        self.orbit = orbit
        self.last_measure = None

    def __hash__(self):
        return hash(type(self))

    def __eq__(self, other):
        return type(other) is type(self)

    def schedule(self, model):
        return self.orbit.z

    def initial_state(self, model, a, A):
        z = np.zeros(a.shape[0])
        return MandelbrotDiff(z, z.copy(), np.zeros(a.shape[0], dtype=bool))

    def measure(self, steps, n, A):
        self.last_measure = GlitchRecordMeasure(steps, n)
        return self.last_measure

    def retire(self, measure, ids):
        return measure.glitched[ids]  # trained again from another reference

    def segment(self, model, A, B, seg, stop):
        esc2 = MANDELBROT_ESCAPE**2

        def step(a, b, carry, Z):
            dr, di, out = carry
            zr, zi = Z[0] + dr, Z[1] + di
            m2 = zr * zr + zi * zi
            M2 = Z[0] * Z[0] + Z[1] * Z[1]
            glitch = ~out & ~(m2 >= MANDELBROT_GLITCH**2 * M2)  # also where the reference ended (NaN)
            out = out | (m2 > esc2)
            dr, di = (2.0 * (Z[0] * dr - Z[1] * di) + (dr * dr - di * di) + a,
                      2.0 * (Z[0] * di + Z[1] * dr) + 2.0 * dr * di + b)
            return (dr, di, out), (jnp.stack([m2, glitch.astype(m2.dtype)], axis=-1), m2)

        def segment(state, a, b, l0, consts, sched):
            (dr, di, out), (rec, m2) = lax.scan(functools.partial(step, a, b), tuple(state), sched[:seg], length=seg)
            dead = ~(m2 <= esc2).all(axis=0)
            return Segment(MandelbrotDiff(dr, di, out), rec, dead, seg, l0)

        return segment


# -- a view: references, offsets, rebasing


@dataclass(frozen=True)
class PerturbResult:
    values: np.ndarray  # (N,) the measure of the pixels asked for
    margin: np.ndarray  # (N,) network: the mean of the last LAST v_t less 1 (NaN where capped, by dd, or Mandelbrot)
    glitched: np.ndarray  # (N,) bool: pixels trained again after a glitch, or finished in dd (redone)
    references: int  # references the call could use: the view's plan's and its own
    by_dd: int  # pixels that were left glitched and trained in double-double
    computed: int  # pixel-steps trained (perturbation and dd)
    digits: int  # digits of the first reference


def settled(res: "PerturbResult", nudged: "PerturbResult") -> np.ndarray:
    """Per pixel, whether it held under the nudge: its class, and the
    quantity its class is read from, moved by less than its own size
    divided by :data:`ROUNDING_PER_NUDGE`. That quantity is the network's
    margin (the mean of its last values of v_t less 1); where a pixel has
    none (a capped run, a pixel finished in dd, the Mandelbrot set) it is
    its measure."""
    same = (res.values < 0) == (nudged.values < 0)
    m, mn = res.margin, nudged.margin
    has = np.isfinite(m) & np.isfinite(mn)
    q, qn = np.where(has, m, res.values), np.where(has, mn, nudged.values)
    with np.errstate(invalid="ignore"):
        held = (ROUNDING_PER_NUDGE * np.abs(q - qn) < np.abs(q)) | (q == qn)
    return same & held


def _prec(view) -> int:
    """Decimal digits that keep 20 significant digits of a pixel's offset from the reference."""
    spacing = view.span / view.size[0]
    return 60 + max(0, -spacing.adjusted())


def _hyper(c: Decimal, log_axes: bool, prec: int) -> Decimal:
    with localcontext(prec=prec):
        return Decimal(10) ** c if log_axes else +c


def _offsets(vals: list[Decimal], ref: Decimal, prec: int) -> np.ndarray:
    with localcontext(prec=prec):
        return np.array([float(v - ref) for v in vals], dtype=np.float64)


def _finest(model: Model, view) -> float:
    """The smallest relative offset between neighbouring pixels."""
    s = float(view.span) / view.size[0]
    if kinds.axis_logs(model)[0]:
        return s * math.log(10)
    return s / max(1.0, max(abs(float(c)) for c in view.center))


@functools.lru_cache(maxsize=DEEP_MAX_REFERENCES)
def _orbit(model: Model, rx: Decimal, ry: Decimal, digits: int, prec: int):
    where = keep.file("references", _orbit_key(model, rx, ry, digits, prec))
    kind = reference.MandelbrotOrbit if model.kind == "mandelbrot" else reference.NetworkOrbit
    kept = _read_orbit(kind, where, model.steps)
    if kept is not None:
        return kept
    if model.kind == "mandelbrot":
        ref = reference.mandelbrot_orbit(rx, ry, model.steps, digits)
    else:
        hx, hy = _hyper(rx, True, prec), _hyper(ry, True, prec)
        ref = reference.network_orbit(model, draws(model), hx, hy, digits, RETIRE_V)
    keep.save(where, {f.name: np.asarray(getattr(ref, f.name)) for f in fields(kind)})
    return ref


def _orbit_key(model: Model, rx: Decimal, ry: Decimal, digits: int, prec: int) -> str:
    """Everything that changes a reference orbit: the model as its cache key
    names it, the exact point, the digits, the engine's and perturbation's
    versions, and JAX's (the network's draws are JAX's)."""
    import jax

    from ..model import ARITHMETIC_VERSIONS, ENGINE_VERSION

    fields_ = json.dumps(kinds.key_fields(model), sort_keys=True)
    return (f"orbit {fields_} {rx} {ry} {digits} {prec} engine {ENGINE_VERSION} "
            f"perturb {ARITHMETIC_VERSIONS['perturb']} jax {jax.__version__}")


def _read_orbit(kind, where: str | None, steps: int):
    """A kept orbit of class ``kind``, or None when there is none whole."""
    names = tuple(f.name for f in fields(kind))
    got = keep.load(where, names)
    if got is None:
        return None
    out = {}
    for f in fields(kind):
        a = got[f.name]
        out[f.name] = a if a.ndim else (int(a) if f.type == "int" else float(a))
    big = out["z"] if kind is reference.MandelbrotOrbit else out["loss"]
    return kind(**out) if big.shape[0] == steps else None


def orbit(model: Model, rx: Decimal, ry: Decimal, digits: int, prec: int = 120):
    """The reference orbit at plane point (rx, ry) in ``digits`` digits: kept
    in this process for the views that share it, and on disk beside the
    compiled programs (:mod:`.keep`), so a resumed or repeated frame, and
    every frame of a zoom whose reference point is the same, trains it once."""
    return _orbit(model, rx, ry, digits, prec)


def train_offsets(model: Model, ref, da: np.ndarray, db: np.ndarray, on_progress=None,
                  chunk: int | None = None) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Pixels with hyperparameter offsets (da, db) from reference orbit
    ``ref``: (values, glitched, pixel-steps, margin (:class:`PerturbResult`))."""
    (v, g, m), n = train_many(model, [(ref, da, db)], on_progress, chunk)
    return v[0], g[0], n, m[0]


def train_many(model: Model, parts: list, on_progress=None, chunk: int | None = None) -> tuple:
    """Several references' pixels at once: ``parts`` lists (orbit, da, db).
    ((values, glitched, margin), pixel-steps), each of the three a list
    in the order of ``parts``. The references share one segment loop and
    one measure (:func:`.scheduler.train_jobs`), a group of pixels at a time."""
    from .devices import policy
    from .scheduler import Counts, Job, train_jobs

    kind = PerturbMandelbrot if model.kind == "mandelbrot" else PerturbNetwork
    pol = policy(model, "float64", chunk)
    counts = Counts()
    sizes = [da.shape[0] for _, da, _ in parts]
    at = np.concatenate([[0], np.cumsum(sizes)])
    da_all = np.concatenate([da for _, da, _ in parts]) if parts else np.empty(0)
    db_all = np.concatenate([db for _, _, db in parts]) if parts else np.empty(0)
    which_all = np.repeat(np.arange(len(parts)), sizes)
    forms = [kind(ref) for ref, _, _ in parts]
    given = [(f.consts(model, FLOAT64), f.schedule(model)) for f in forms]
    N = da_all.shape[0]
    vals, glitched, margin = np.empty(N), np.zeros(N, dtype=bool), np.full(N, np.nan)
    for g0 in range(0, N, pol.group):
        g1 = min(N, g0 + pol.group)
        jobs, refs = [], sorted(set(which_all[g0:g1]))
        for i in refs:
            lo, hi = max(g0, at[i]), min(g1, at[i + 1])
            jobs.append(Job(forms[i], *given[i], da_all[lo:hi], db_all[lo:hi]))
        local = np.searchsorted(refs, which_all[g0:g1])
        if model.kind == "mandelbrot":
            measure = GlitchRecordMeasure(model.steps, g1 - g0)
        else:
            measure = PerturbMeasure(model.steps, g1 - g0, [parts[i][0] for i in refs], local)
        vals[g0:g1] = train_jobs(jobs, model, FLOAT64, pol, True, on_progress, counts, measure)
        glitched[g0:g1], margin[g0:g1] = measure.glitched, measure.margin
    split = lambda a: [a[at[i] : at[i + 1]] for i in range(len(parts))]  # noqa: E731
    return (split(vals), split(glitched), split(margin)), counts.computed


def _nudge(a: np.ndarray, ulps: int) -> np.ndarray:
    for _ in range(ulps):
        a = np.nextafter(a, np.inf)
    return a


@functools.lru_cache(maxsize=16)
def budget(model: Model, view) -> int:
    """References a view may make: :data:`MAX_REFERENCES`, or
    :data:`DEEP_MAX_REFERENCES` where dd, the fallback, cannot place its
    pixels."""
    from .dd import DD_ARITH

    log = kinds.axis_logs(model)[0]
    xs, ys = path.axis_coords(view, _prec(view))
    places = all(DD_ARITH.spaced(DD_ARITH.hypers(list(a), log), MIN_DD_ULPS) for a in (xs, ys) if len(a) > 1)
    return MAX_REFERENCES if places else DEEP_MAX_REFERENCES


class _Run:
    """Pixels of one view trained by perturbation, each from the references
    :class:`.placement.Cells` proposes, glitched ones again from the next."""

    def __init__(self, model: Model, view, flat: np.ndarray, points: list, owns: np.ndarray, nudge: int,
                 on_progress):
        self.model, self.nudge, self.on_progress = model, nudge, on_progress
        W = view.size[0]
        self.prec = _prec(view)
        self.xs, self.ys = path.axis_coords(view, self.prec)
        self.log = kinds.axis_logs(model)[0]  # both axes alike in every model perturbation trains
        self.hxs = [_hyper(x, self.log, self.prec) for x in self.xs]
        self.hys = [_hyper(y, self.log, self.prec) for y in self.ys]
        self.digits = reference.digits_needed(_finest(model, view), model.steps)
        self.cells = placement.Cells(view.size)
        self.flat = np.asarray(flat)
        self.col, self.row = self.flat % W, self.flat // W
        self.points, self.owns = points, owns  # this run adds to them
        self.values, self.margin = np.empty(self.flat.size), np.full(self.flat.size, np.nan)
        self.budget = budget(model, view)
        self.tried = np.zeros((self.flat.size, self.budget), dtype=bool)
        self.computed = 0

    def attempt(self, groups: list) -> list:
        """Train each group (positions in ``flat``, reference k), all in one
        go; the glitched of each."""
        parts = []
        for pos, k in groups:
            rx, ry = self.points[k]
            ref = orbit(self.model, rx, ry, self.digits, self.prec)
            da = _offsets([self.hxs[c] for c in self.col[pos]], _hyper(rx, self.log, self.prec), self.prec)
            db = _offsets([self.hys[r] for r in self.row[pos]], _hyper(ry, self.log, self.prec), self.prec)
            if self.nudge:
                da, db = _nudge(da, self.nudge), _nudge(db, self.nudge)
            parts.append((ref, da, db))
        (vs, gs, ms), n = train_many(self.model, parts, self.on_progress)
        self.computed += n
        out = []
        for (pos, k), v, g, m in zip(groups, vs, gs, ms):
            self.values[pos], self.margin[pos] = v, m
            self.tried[pos, k] = True
            out.append(pos[g])
        return out

    def candidates(self, pos: np.ndarray) -> np.ndarray:
        return self.cells.candidates(self.flat[pos], self.owns, ~self.tried[pos])

    def settle(self, pos: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Train pixels ``pos`` from references ``first`` (-1: a new one), each
        glitched one again from its next candidate, until each is trained or
        has no candidate left once the view's :func:`budget` is made; those
        left. What each reference trains is added to the run's ``owns``."""
        left = []
        while pos.size:
            new = first < 0
            if new.any():
                if len(self.points) < self.budget:
                    p = self.cells.nearest_centroid(self.flat[pos[new]])
                    W = self.cells.W
                    self.points.append((self.xs[p % W], self.ys[p // W]))
                    first[new] = len(self.points) - 1
                else:
                    left.append(pos[new])
                    pos, first = pos[~new], first[~new]
            glitched = []
            groups = [(pos[first == k], int(k)) for k in np.unique(first)]
            for (mine, k), g in zip(groups, self.attempt(groups)):
                self.cells.record(self.owns, self.flat[np.setdiff1d(mine, g)], k)
                glitched.append(g)
            pos = np.concatenate(glitched) if glitched else pos[:0]
            first = self.candidates(pos)
        return np.concatenate(left) if left else pos

    def finish_in_dd(self, pos: np.ndarray) -> None:
        """Pixels ``pos`` trained in double-double."""
        from . import train as engine_train
        from .dd import DD_ARITH

        if not pos.size:
            return
        hx = DD_ARITH.hypers([self.xs[c] for c in self.col[pos]], self.log)
        hy = DD_ARITH.hypers([self.ys[r] for r in self.row[pos]], self.log)
        if self.nudge:
            hx, hy = DD_ARITH.nudge(hx, self.nudge), DD_ARITH.nudge(hy, self.nudge)
        res = engine_train(self.model, hx, hy, DD_ARITH, on_progress=self.on_progress)
        self.values[pos], self.margin[pos] = res.values, np.nan
        self.computed += res.computed

    def redone(self, left: np.ndarray) -> np.ndarray:
        out = self.tried.sum(axis=1) > 1
        out[left] = True
        return out


@dataclass(frozen=True)
class Plan:
    """A view's lattice (:mod:`.placement`), trained: the references it made,
    how many pixels of each cell each trained, and the lattice pixels' results."""

    points: list  # reference plane points, the first at the view's centre (or where asked)
    owns: np.ndarray  # (cells down, cells across, the view's budget)
    lattice: np.ndarray  # flat indices
    values: np.ndarray
    margin: np.ndarray
    redone: np.ndarray  # trained more than once, or in dd
    in_dd: np.ndarray
    computed: int


_PLANS: dict = {}  # (model, view, first point) -> Plan, the latest few
_PLANS_LOCK = threading.Lock()  # the explorer trains on more than one thread
KEPT_PLANS = 4


def plan(model: Model, view, reference_at: tuple[Decimal, Decimal] | None = None,
         on_progress=None) -> tuple[Plan, bool]:
    """The view's lattice trained, first from a reference at its centre (or
    ``reference_at``), and whether it was trained by this call: kept in this
    process for the calls on the view (the precision probe, its nudge, the
    rest of the frame), so all of them start from the same references. It
    depends on nothing but its key: evicted, it is trained again the same."""
    key = (model, view, reference_at or (view.center[0], view.center[1]))
    with _PLANS_LOCK:
        if key in _PLANS:
            return _PLANS[key], False
        return _new_plan(model, view, key, on_progress), True


def _new_plan(model: Model, view, key: tuple, on_progress) -> Plan:
    cells = placement.Cells(view.size)
    lattice = cells.lattice()
    run = _Run(model, view, lattice, [key[2]], cells.owned(budget(model, view)), 0, on_progress)
    pos = np.arange(lattice.size)
    left = run.settle(pos, np.zeros(pos.size, dtype=int))
    run.finish_in_dd(left)
    in_dd = np.zeros(lattice.size, dtype=bool)
    in_dd[left] = True
    got = Plan(run.points, run.owns, lattice, run.values, run.margin, run.redone(left), in_dd, run.computed)
    while len(_PLANS) >= KEPT_PLANS:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[key] = got
    return got


def train_view(model: Model, view, indices: np.ndarray | None = None, nudge: int = 0,
               on_progress=None, reference_at: tuple[Decimal, Decimal] | None = None) -> PerturbResult:
    """Pixels ``indices`` (flat, row by row from the lowest y; default all)
    of ``view``, by perturbation. The view's lattice is trained first
    (:func:`plan`, once per view); each pixel then starts from a reference
    that trained its cell, and a glitched pixel is trained again from a
    neighbouring cell's or from a new one among the glitched (module doc),
    up to the view's :func:`budget` of references. What is left glitched is trained
    in double-double. ``nudge``: every offset moved up by that many of its
    float64 ulps (the precision probe's test); the lattice's references
    are the un-nudged view's."""
    W, H = view.size
    flat = np.arange(W * H) if indices is None else np.asarray(indices)
    p, fresh = plan(model, view, reference_at, on_progress)
    # The plan is read, never changed: a pixel's result depends on the view,
    # the pixels asked for and the nudge, not on the calls before.
    run = _Run(model, view, flat, list(p.points), p.owns.copy(), nudge, on_progress)
    at = np.minimum(np.searchsorted(p.lattice, flat), p.lattice.size - 1)
    known = (p.lattice[at] == flat) & (nudge == 0)  # the lattice's own results, un-nudged
    run.values[known], run.margin[known] = p.values[at[known]], p.margin[at[known]]
    pos = np.flatnonzero(~known)
    left = run.settle(pos, run.candidates(pos))
    run.finish_in_dd(left)
    redone = run.redone(left)
    redone[known] = p.redone[at[known]]
    by_dd = int(left.size + p.in_dd[at[known]].sum())
    computed = run.computed + (p.computed if fresh else 0)
    return PerturbResult(run.values, run.margin, redone, len(run.points), by_dd, computed, run.digits)
