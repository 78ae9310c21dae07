"""The per-pixel measure: a training run's loss record in, one number out.

Pure NumPy, no JAX: the engine's devices send back each step's loss, and
these accumulators sum them as they arrive, in one fixed order.

Records come in two forms. A float arithmetic's record holds each value as
one float64 (shape (steps, N)); double-double's holds its two parts
(steps, N, 2), and the measure is then taken in double-double too
(:class:`DDMeasureMath`). That matters where a pixel's class is decided by a
threshold of the measure itself: a run whose mean of the last ``LAST``
values of v_t is 1 - 1e-16 converges, and float64 sums of float64-rounded
losses cannot tell it from one at 1 + 1e-16. In a deep view, pixels a few
1e-18 apart in log10 learning rate differ by that much, so a float64
measure put the boundary thousands of pixels away from where it is.

Network (the paper's measure): v_t = L_t / L_0, non-finite or larger values
capped at :data:`V_CAP`; converged when the mean of the last :data:`LAST`
values is below 1, then -sum v_t (negative), else +sum 1/v_t (positive).
A model's ``criterion`` (:data:`~zoomreel.model.CRITERIA`) may replace the
class test, never the values: "bounded" (Liu et al.'s trainability) calls a
run trainable when every v_t is finite and at most V_CAP, before capping; it
then gets -sum v_t, and +sum 1/v_t otherwise.
Mandelbrot: smooth escape time for escaped points, -(1 + mean |z|^2 over the
last iterations) for bounded ones.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..model import CRITERIA

V_CAP = 1e6  # guard and cap of the normalised loss (paper)
LAST = 20  # the converged test averages this many final values
MANDELBROT_ESCAPE = 1e3  # escape radius for smooth escape time


def network_measure(losses: np.ndarray, criterion: str = "converged") -> np.ndarray:
    """Paper's per-pixel measure from a (steps, N) loss record, or a
    double-double one (steps, N, 2), taken in double-double.

    Negative: trainable by ``criterion`` (-sum v_t): converged (the paper's)
    or bounded. Positive: not (+sum 1/v_t).
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim == 3:
        m = NetworkMeasure(losses.shape[0], losses.shape[1], parts=2, criterion=criterion)
        m.add(0, np.arange(losses.shape[1]), losses)
        return m.result()
    with np.errstate(all="ignore"):
        v = losses / losses[:1]
        if criterion == "bounded":
            trainable = _within_cap(v).all(axis=0)
        v = np.where(np.isfinite(v), v, V_CAP)
        v = np.minimum(v, V_CAP)
        if criterion != "bounded":
            trainable = v[-LAST:].mean(axis=0) < 1.0
        return np.where(trainable, -v.sum(axis=0), (1.0 / v).sum(axis=0))


def _within_cap(v):
    """Per value: finite and at most :data:`V_CAP` (NaN: no)."""
    return np.isfinite(v) & (v <= V_CAP)


def mandelbrot_measure(mod2: np.ndarray) -> np.ndarray:
    """Measure from a (steps, N) record of |z_t|^2.

    Escaped points: +smooth escape time (small = escaped fast).
    Bounded points: -(1 + mean over the last iterations of |z|^2), always negative.
    """
    mod2 = np.asarray(mod2, dtype=np.float64)
    exact = None
    if mod2.ndim == 3:  # double-double: escape decided on hi + lo
        exact = DDMeasureMath.greater(mod2[..., 0], mod2[..., 1], MANDELBROT_ESCAPE**2)
        mod2 = mod2[..., 0]
    steps = mod2.shape[0]
    with np.errstate(all="ignore"):
        escaped_at = mod2 > MANDELBROT_ESCAPE**2 if exact is None else exact  # NaN compares False
        esc = escaped_at.any(axis=0)
        first = np.argmax(escaped_at, axis=0)
        zz = mod2[first, np.arange(mod2.shape[1])]
        # smooth iteration count: n + 1 - log2(log|z_n|), clipped at 0
        nu = first + 1.0 - np.log2(np.log(np.sqrt(zz)))
        nu = np.maximum(nu, 1e-3)
        tail = mod2[-min(LAST, steps):]
        # only read for points that never escaped, whose record is finite
        bounded = -(1.0 + np.where(np.isfinite(tail), tail, 0.0).mean(axis=0))
        return np.where(esc, nu, bounded)


class DDMeasureMath:
    """Double-double arithmetic on NumPy arrays (hi, lo), for the measure.

    NumPy rounds every operation on its own (no contraction into fused
    multiply-adds, no reassociation), so the classic error-free
    transformations hold as written: TwoSum, and TwoProd with Veltkamp's
    split. Values the measure meets are at most :data:`V_CAP` (or non-finite,
    which it caps first), far from the split's overflow.
    """

    SPLITTER = 134217729.0  # 2^27 + 1

    @staticmethod
    def two_sum(a, b):
        s = a + b
        bb = s - a
        return s, (a - (s - bb)) + (b - bb)

    @staticmethod
    def quick_two_sum(a, b):
        s = a + b
        return s, b - (s - a)

    @classmethod
    def split(cls, a):
        t = cls.SPLITTER * a
        hi = t - (t - a)
        return hi, a - hi

    @classmethod
    def two_prod(cls, a, b):
        p = a * b
        ah, al = cls.split(a)
        bh, bl = cls.split(b)
        return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl

    @classmethod
    def add(cls, ah, al, bh, bl):
        s1, s2 = cls.two_sum(ah, bh)
        t1, t2 = cls.two_sum(al, bl)
        s1, s2 = cls.quick_two_sum(s1, s2 + t1)
        return cls.quick_two_sum(s1, s2 + t2)

    @classmethod
    def mul_d(cls, ah, al, b):
        p, e = cls.two_prod(ah, b)
        return cls.quick_two_sum(p, e + al * b)

    @classmethod
    def div(cls, ah, al, bh, bl):
        """(ah + al) / (bh + bl), three float64 quotients refined in double-double."""
        q1 = ah / bh
        rh, rl = cls.add(ah, al, *(-x for x in cls.mul_d(bh, bl, q1)))
        q2 = rh / bh
        rh, rl = cls.add(rh, rl, *(-x for x in cls.mul_d(bh, bl, q2)))
        q3 = rh / bh
        q1, q2 = cls.quick_two_sum(q1, q2)
        return cls.add(q1, q2, q3, np.zeros_like(q3))

    @staticmethod
    def greater(hi, lo, c: float):
        """hi + lo > c, exactly (for a normalised pair; NaN: False)."""
        return (hi > c) | ((hi == c) & (lo > 0))

    @staticmethod
    def less(hi, lo, c: float):
        """hi + lo < c, exactly (for a normalised pair; NaN: False)."""
        return (hi < c) | ((hi == c) & (lo < 0))


class NetworkMeasure:
    """:func:`network_measure`, accumulated segment by segment as losses arrive.

    The engine never holds the whole (steps, N) loss record: per pixel it keeps
    L_0, the running sums of v_t and 1/v_t, and the sum of the last
    :data:`LAST` values. NumPy sums a (steps, N) array over axis 0 one step
    after another, and so does this, so the result is the same bits (the suite
    checks it); a pixel retired before the end gets the cap for every later
    step, as its NaN record would.

    ``parts=2``: the losses arrive as double-double (hi, lo) pairs and every
    quantity above is kept in double-double; the class (the mean of the last
    values below 1) is decided exactly on those sums, and the values are
    their float64 roundings.

    ``criterion="bounded"`` keeps one more flag per pixel, whether every v_t
    so far was finite and at most the cap (on the double-double value with
    ``parts=2``), and classes by it; the sums are the same.
    """

    def __init__(self, steps: int, n: int, parts: int = 1, criterion: str = "converged"):
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}")
        self.steps = steps
        self.parts = parts
        self.bounded = np.ones(n, dtype=bool) if criterion == "bounded" else None
        self.first_tail = max(0, steps - LAST)
        tail = (2,) if parts == 2 else ()
        self.l0 = np.full((n,) + tail, np.nan)
        self.last = np.full(n, np.nan)  # L_t / L_0 at the latest step added
        self.sums = np.zeros((3, n) + tail)  # sum v_t, sum 1/v_t, sum of the last LAST v_t

    def add(self, t: int, ids: np.ndarray, losses: np.ndarray) -> None:
        """Losses (k, len(ids)) of pixels ``ids`` at steps t .. t+k-1 ((k, len(ids), 2) with parts=2)."""
        losses = np.asarray(losses, dtype=np.float64)
        if t == 0:
            self.l0[ids] = losses[0]
        if self.parts == 2:
            self._add_dd(t, ids, losses)
            return
        with np.errstate(all="ignore"):
            v = losses / self.l0[ids]
            self.last[ids] = v[-1]
            if self.bounded is not None:
                self.bounded[ids] &= _within_cap(v).all(axis=0)
            v = np.minimum(np.where(np.isfinite(v), v, V_CAP), V_CAP)
            inv = 1.0 / v
        acc = self.sums[:, ids]
        # A loss that falls to ~1e-300 or below (a run converging faster than
        # geometrically, as Liu et al.'s multiplicative ripple does) makes
        # 1/v_t near or past the largest float64, and its sum overflows to inf,
        # as network_measure's does; that sum is read only for runs that are not
        # trainable (inf then, by either measure). So overflow here is expected.
        with np.errstate(over="ignore"):
            for k in range(v.shape[0]):
                acc[0] += v[k]
                acc[1] += inv[k]
                if t + k >= self.first_tail:
                    acc[2] += v[k]
        self.sums[:, ids] = acc

    def _add_dd(self, t: int, ids: np.ndarray, losses: np.ndarray) -> None:
        D = DDMeasureMath
        l0 = self.l0[ids]
        with np.errstate(all="ignore"):
            vh, vl = D.div(losses[..., 0], losses[..., 1], l0[:, 0], l0[:, 1])
            self.last[ids] = vh[-1]
            cap = ~(np.isfinite(vh) & np.isfinite(vl)) | D.greater(vh, vl, V_CAP)
            if self.bounded is not None:
                self.bounded[ids] &= ~cap.any(axis=0)
            vh, vl = np.where(cap, V_CAP, vh), np.where(cap, 0.0, vl)
            ih, il = D.div(np.ones_like(vh), np.zeros_like(vl), vh, vl)
        acc = self.sums[:, ids]
        with np.errstate(over="ignore", invalid="ignore"):  # 1/v_t past float64's range: as in :meth:`add`
            for k in range(vh.shape[0]):
                self._accumulate(acc, t + k, (vh[k], vl[k]), (ih[k], il[k]))
        self.sums[:, ids] = acc

    def _accumulate(self, acc, step: int, v, inv) -> None:
        D = DDMeasureMath
        acc[0, ..., 0], acc[0, ..., 1] = D.add(acc[0, ..., 0], acc[0, ..., 1], *v)
        acc[1, ..., 0], acc[1, ..., 1] = D.add(acc[1, ..., 0], acc[1, ..., 1], *inv)
        if step >= self.first_tail:
            acc[2, ..., 0], acc[2, ..., 1] = D.add(acc[2, ..., 0], acc[2, ..., 1], *v)

    def retire(self, ids: np.ndarray, t: int) -> None:
        """Pixels ``ids`` train no further from step t: the cap for every later step."""
        if t >= self.steps or not ids.size:
            return
        if self.bounded is not None:  # its record is NaN from step t on
            self.bounded[ids] = False
        acc = self.sums[:, ids]
        if self.parts == 2:
            n = ids.size
            cap = (np.full(n, V_CAP), np.zeros(n))
            inv = DDMeasureMath.div(np.ones(n), np.zeros(n), *cap)
            for k in range(t, self.steps):
                self._accumulate(acc, k, cap, inv)
            self.sums[:, ids] = acc
            return
        for k in range(t, self.steps):
            acc[0] += V_CAP
            acc[1] += 1.0 / V_CAP
            if k >= self.first_tail:
                acc[2] += V_CAP
        self.sums[:, ids] = acc

    def past(self, ids: np.ndarray, limit: float) -> np.ndarray:
        """Pixels ``ids`` whose latest normalised loss exceeds ``limit`` (NaN: no)."""
        with np.errstate(invalid="ignore"):
            return self.last[ids] > limit

    def result(self) -> np.ndarray:
        count = self.steps - self.first_tail
        if self.parts == 2:
            s = self.sums
            trainable = self.bounded if self.bounded is not None else \
                DDMeasureMath.less(s[2, :, 0], s[2, :, 1], float(count))
            return np.where(trainable, -s[0, :, 0], s[1, :, 0])
        trainable = self.bounded if self.bounded is not None else self.sums[2] / count < 1.0
        return np.where(trainable, -self.sums[0], self.sums[1])


class RecordMeasure:
    """Keeps the whole (steps, N) record and reduces it with ``measure`` at the end."""

    def __init__(self, measure: Callable, steps: int, n: int, parts: int = 1):
        self.measure = measure
        self.record = np.full((steps, n) + ((2,) if parts == 2 else ()), np.nan)

    def add(self, t: int, ids: np.ndarray, values: np.ndarray) -> None:
        self.record[t : t + values.shape[0], ids] = values

    def retire(self, ids: np.ndarray, t: int) -> None:
        pass  # the record stays NaN from step t on

    def result(self) -> np.ndarray:
        return self.measure(self.record)
