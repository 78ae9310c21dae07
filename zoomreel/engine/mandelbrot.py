"""The Mandelbrot formulation: z <- z^2 + c per pixel, the classic fractal
through the same pipeline (for comparison with the network's boundary)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from jax import lax

from .formulation import Formulation, Segment, register
from .measure import MANDELBROT_ESCAPE, RecordMeasure, mandelbrot_measure


class MandelbrotState(NamedTuple):
    zr: object  # (N,)
    zi: object  # (N,)


class MandelbrotXLA(Formulation):
    kind = "mandelbrot"
    impl = "xla"

    def initial_state(self, model, a, A):
        z = A.cast(np.zeros(a.shape[0]))
        return MandelbrotState(z, z.copy())

    def measure(self, steps, n, A):
        return RecordMeasure(mandelbrot_measure, steps, n, A.record_parts)

    def segment(self, model, A, B, seg, stop):
        def step(a, b, carry, _):
            zr, zi = carry
            m2 = zr * zr + zi * zi
            zr, zi = zr * zr - zi * zi + a, 2.0 * zr * zi + b
            return (zr, zi), (A.record(m2), A.to_float64(m2))

        def segment(state, a, b, l0, consts, idx):
            (zr, zi), (rec, m2) = lax.scan(functools.partial(step, a, b), tuple(state), None, length=seg)
            dead = ~(m2 <= MANDELBROT_ESCAPE**2).all(axis=0)
            return Segment(MandelbrotState(zr, zi), rec, dead, seg, l0)

        return segment


XLA = register(MandelbrotXLA())
