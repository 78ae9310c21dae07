"""The per-pixel measure: a training run's loss record in, one number out.

Pure NumPy in float64, no JAX: the engine's devices send back each step's
loss, and these accumulators sum them as they arrive, in one fixed order.

Network (the paper's measure): v_t = L_t / L_0, non-finite or larger values
capped at :data:`V_CAP`; converged when the mean of the last :data:`LAST`
values is below 1, then -sum v_t (negative), else +sum 1/v_t (positive).
Mandelbrot: smooth escape time for escaped points, -(1 + mean |z|^2 over the
last iterations) for bounded ones.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

V_CAP = 1e6  # guard and cap of the normalised loss (paper)
LAST = 20  # the converged test averages this many final values
MANDELBROT_ESCAPE = 1e3  # escape radius for smooth escape time


def network_measure(losses: np.ndarray) -> np.ndarray:
    """Paper's per-pixel measure from a (steps, N) loss record.

    Negative: converged (-sum v_t). Positive: diverged (+sum 1/v_t).
    """
    losses = np.asarray(losses, dtype=np.float64)
    with np.errstate(all="ignore"):
        v = losses / losses[:1]
        v = np.where(np.isfinite(v), v, V_CAP)
        v = np.minimum(v, V_CAP)
        converged = v[-LAST:].mean(axis=0) < 1.0
        return np.where(converged, -v.sum(axis=0), (1.0 / v).sum(axis=0))


def mandelbrot_measure(mod2: np.ndarray) -> np.ndarray:
    """Measure from a (steps, N) record of |z_t|^2.

    Escaped points: +smooth escape time (small = escaped fast).
    Bounded points: -(1 + mean over the last iterations of |z|^2), always negative.
    """
    mod2 = np.asarray(mod2, dtype=np.float64)
    steps = mod2.shape[0]
    with np.errstate(all="ignore"):
        escaped_at = mod2 > MANDELBROT_ESCAPE**2  # NaN compares False
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


class NetworkMeasure:
    """:func:`network_measure`, accumulated segment by segment as losses arrive.

    The engine never holds the whole (steps, N) loss record: per pixel it keeps
    L_0, the running sums of v_t and 1/v_t, and the sum of the last
    :data:`LAST` values. NumPy sums a (steps, N) array over axis 0 one step
    after another, and so does this, so the result is the same bits (the suite
    checks it); a pixel retired before the end gets the cap for every later
    step, as its NaN record would.
    """

    def __init__(self, steps: int, n: int):
        self.steps = steps
        self.first_tail = max(0, steps - LAST)
        self.l0 = np.full(n, np.nan)
        self.last = np.full(n, np.nan)  # L_t / L_0 at the latest step added
        self.sums = np.zeros((3, n))  # sum v_t, sum 1/v_t, sum of the last LAST v_t

    def add(self, t: int, ids: np.ndarray, losses: np.ndarray) -> None:
        """Losses (k, len(ids)) of pixels ``ids`` at steps t .. t+k-1."""
        losses = np.asarray(losses, dtype=np.float64)
        if t == 0:
            self.l0[ids] = losses[0]
        with np.errstate(all="ignore"):
            v = losses / self.l0[ids]
            self.last[ids] = v[-1]
            v = np.minimum(np.where(np.isfinite(v), v, V_CAP), V_CAP)
            inv = 1.0 / v
        acc = self.sums[:, ids]
        for k in range(v.shape[0]):
            acc[0] += v[k]
            acc[1] += inv[k]
            if t + k >= self.first_tail:
                acc[2] += v[k]
        self.sums[:, ids] = acc

    def retire(self, ids: np.ndarray, t: int) -> None:
        """Pixels ``ids`` train no further from step t: the cap for every later step."""
        if t >= self.steps or not ids.size:
            return
        acc = self.sums[:, ids]
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
        converged = self.sums[2] / (self.steps - self.first_tail) < 1.0
        return np.where(converged, -self.sums[0], self.sums[1])


class RecordMeasure:
    """Keeps the whole (steps, N) record and reduces it with ``measure`` at the end."""

    def __init__(self, measure: Callable, steps: int, n: int):
        self.measure = measure
        self.record = np.full((steps, n), np.nan)

    def add(self, t: int, ids: np.ndarray, values: np.ndarray) -> None:
        self.record[t : t + values.shape[0], ids] = values

    def retire(self, ids: np.ndarray, t: int) -> None:
        pass  # the record stays NaN from step t on

    def result(self) -> np.ndarray:
        return self.measure(self.record)
