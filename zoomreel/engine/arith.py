"""Arithmetics: the precisions the engine trains in, as objects.

An :class:`Arithmetic` knows how to build each pixel's hyperparameters from the
exact decimal coordinates of the plane, whether it can tell neighbouring pixels
apart, and how to cast, multiply, take tanh and sum on a device. The steps of
every model are written once over these operations (``A.matmul``,
``A.tanh``, ...); an arithmetic is not a copy of the steps.

:data:`LADDER` is the order ``precision = "auto"`` walks, cheapest first; a
frame's cache key and summary name the arithmetic by :attr:`Arithmetic.name`.

Float arithmetics keep a hyperparameter on the host as the correctly rounded
float64 of its decimal value, cast to the arithmetic's dtype on the way to the
device (float32 is rounded from that float64).
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np

import jax.numpy as jnp
from jax import lax


PREC = 60  # significant digits of the decimal work


# Every product in the step asks for true float32 (or float64) arithmetic. JAX's
# default lets a GPU compute float32 products in TF32 (10-bit mantissa) and a
# TPU in bfloat16; the precision rule (docs/precision.md) is calibrated for true
# float32, so a frame must not get less on an accelerator. The CPU always
# computes in full precision, so there the setting changes no value.
FULL = lax.Precision.HIGHEST



# float64 tanh as a plain rational function, the one XLA's CPU backend itself
# evaluates for jnp.tanh (coefficients and thresholds read from the code it
# generates, jax 0.10.2): x P(x^2) / Q(x^2) with x clamped to +-TANH64_CLAMP,
# and +-1 from |u| >= 20. Spelt out, with the saturation chosen before the one
# division, XLA fuses it into a single loop that runs the float64 step about
# 5 % faster than its own tanh op (docs/benchmarks.md). On the CPU the values
# are the same bits as jnp.tanh; the suite checks them against NumPy's tanh.
TANH64_P = tuple(map(float.fromhex, (  # numerator, in y = x^2, highest power first; then * x
    "0x1.f9f82e5d782dfp-76", "0x1.c3c836c04b4c8p-61", "0x1.c3379f905e662p-49",
    "0x1.29aff6c8edd96p-38", "0x1.525a389dce7c2p-29", "0x1.708819be51cd9p-21",
    "0x1.8996f4026a7fap-14", "0x1.87f80b957ed00p-8", "0x1.36fba9b450e5ap-3", "0x1p0")))
TANH64_Q = tuple(map(float.fromhex, (  # denominator, in y = x^2, highest power first
    "0x1.e8630cf903250p-68", "0x1.0aabca9a5fea0p-54", "0x1.232981aa2bba8p-43",
    "0x1.ee2f015ea8065p-34", "0x1.81f1947c52304p-25", "0x1.26c82ab46d140p-17",
    "0x1.b2e7c4d488c04p-11", "0x1.1998830265b50p-5", "0x1.f0d32a2f7dc79p-2", "0x1p0")))
TANH64_CLAMP = float.fromhex("0x1.1b6d58f246197p+4")  # about 17.71
TANH64_ONE = 20.0  # from here on, tanh is +-1


def _horner(coeffs, y):
    p = coeffs[0]
    for c in coeffs[1:]:
        p = p * y + c
    return p


def tanh64(u):
    """tanh of a float64 array (see TANH64_P); NaN stays NaN, +-inf gives +-1."""
    x = jnp.clip(u, -TANH64_CLAMP, TANH64_CLAMP)
    y = x * x
    one = jnp.abs(u) >= TANH64_ONE
    num = jnp.where(one, jnp.copysign(1.0, u), x * _horner(TANH64_P, y))
    return num / jnp.where(one, 1.0, _horner(TANH64_Q, y))


def sum_last(a, lanes: int = 16):
    """Sum over the last axis in one fixed order, whatever the other axes' sizes.

    A reduction op leaves its order to the compiler, and XLA's CPU backend
    sums a (B, P) array's rows in another order for B < 16 than for larger B,
    so a pixel's loss depended on how many pixels shared its chunk. Here the
    order is spelt out: the axis, zero-padded to a multiple of ``lanes``, is
    cut into rows of ``lanes`` values that are added one row after another
    (element-wise adds, which vectorise), then the lanes are added pairwise.
    Adding the padding's zeros is exact.
    """
    size = a.shape[-1]
    rows = -(-size // lanes)
    if rows * lanes != size:
        a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, rows * lanes - size)])
    a = a.reshape(a.shape[:-1] + (rows, lanes))
    acc = a[..., 0, :]
    for k in range(1, rows):
        acc = acc + a[..., k, :]
    while acc.shape[-1] > 1:
        half = acc.shape[-1] // 2
        acc = acc[..., :half] + acc[..., half:]
    return acc[..., 0]




class FloatArithmetic:
    """IEEE float32 or float64 on the device; one array per value."""

    host_shape = ()  # one float64 per value on the host

    def __init__(self, name: str, dtype, rank: int):
        self.name = name
        self.dtype = np.dtype(dtype)
        self.rank = rank  # position in LADDER (0: cheapest)

    def __repr__(self) -> str:
        return f"<arithmetic {self.name}>"

    def __reduce__(self):  # one object per name, also across processes
        return (arithmetic, (self.name,))

    # -- the host side: hyperparameters from exact decimals

    def hypers(self, coords: list[Decimal], log_axes: bool) -> np.ndarray:
        """Each coordinate's hyperparameter (10**coord on log axes), correctly
        rounded to float64: the host form, cast on the device."""
        with localcontext(prec=PREC):
            vals = [Decimal(10) ** c for c in coords] if log_axes else coords
            return np.array([float(v) for v in vals], dtype=np.float64)

    def _cast(self, host) -> np.ndarray:
        """Host values in this dtype; past its range they become inf, which the checks read, quietly."""
        with np.errstate(over="ignore"):
            return np.asarray(host).astype(self.dtype)

    def host_values(self, host: np.ndarray) -> np.ndarray:
        """The values the device will hold, as float64 (for checks on the host)."""
        return self._cast(np.asarray(host, dtype=np.float64)).astype(np.float64)

    def finite(self, host: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(self._cast(host))))

    def distinct(self, host_axis: np.ndarray) -> bool:
        """Strictly increasing values along an axis once cast: neighbouring pixels differ."""
        v = self._cast(host_axis)
        return bool(np.all(np.isfinite(v)) and np.all(np.diff(v) > 0))

    def spaced(self, host_axis: np.ndarray, ulps: int) -> bool:
        """Neighbours at least ``ulps`` ulps of this arithmetic apart."""
        vals = np.asarray(host_axis, dtype=np.float64)
        v = self._cast(vals)
        if not np.all(np.isfinite(v)):
            return False
        gaps = np.diff(vals)
        ulp = np.spacing(np.maximum(np.abs(v[:-1]), np.abs(v[1:]))).astype(np.float64)
        return bool(np.all(gaps >= ulps * ulp))

    def nudge(self, host: np.ndarray, ulps: int) -> np.ndarray:
        """Every value moved up by ``ulps`` ulps of float64 (the undetermined-pixel test)."""
        out = np.asarray(host, dtype=np.float64).copy()
        for _ in range(ulps):
            out = np.nextafter(out, np.inf)
        return out

    def deepest_span(self, center: tuple, width: int, log_axes: bool) -> float:
        """Smallest span at this width whose neighbouring pixels stay two ulps
        apart, taken at the larger of the two centre coordinates."""
        worst = 0.0
        for c in center:
            c = float(c)
            if log_axes:
                v = np.asarray(10.0**c, dtype=self.dtype)
                s = float(np.log10(1.0 + 2.0 * float(np.spacing(v)) / float(v)))
            else:
                s = 2.0 * float(np.spacing(np.asarray(max(abs(c), 1e-300), dtype=self.dtype)))
            worst = max(worst, s)
        return float(worst * width)

    def cast(self, host: np.ndarray) -> np.ndarray:
        """Host float64 values in this arithmetic (NumPy, for building a state)."""
        return np.asarray(host).astype(self.dtype)

    def from_host(self, host: np.ndarray) -> np.ndarray:
        """Host-form values (the hyperparameters) in this arithmetic: here, :meth:`cast`."""
        return self.cast(host)

    def broadcast_rows(self, value: np.ndarray, rows: int) -> np.ndarray:
        """``rows`` copies of a host value, one per pixel."""
        return np.broadcast_to(value, (rows,) + value.shape).copy()

    @property
    def loss_dtype(self):
        """The dtype of the losses a segment writes out."""
        return self.dtype

    def const(self, f64: float, exact: Decimal):
        """A constant of the step: its float64 value (a Python float, which JAX
        rounds to the array's dtype), or for a wider arithmetic the exact one."""
        return f64

    # -- the device side: what the steps are written over

    def matmul(self, a, b):
        return jnp.matmul(a, b, precision=FULL)

    def einsum(self, spec: str, a, b):
        return jnp.einsum(spec, a, b, precision=FULL)

    def tanh(self, u):
        return tanh64(u) if self.dtype == np.float64 else jnp.tanh(u)

    def relu(self, z):
        return jnp.maximum(z, 0.0)  # maximum propagates NaN

    def step(self, z, height: float):
        """``height`` where z > 0, else 0 (relu's derivative, scaled)."""
        return jnp.where(z > 0, height, 0.0).astype(z.dtype)

    def ones_like(self, a):
        return jnp.ones_like(a)

    def repeat(self, a, n: int):
        return jnp.repeat(a, n)

    def sum_last(self, a):
        return sum_last(a)

    def isnan(self, a):
        return jnp.isnan(a)

    def to_float64(self, a):
        """A device value as a float64 array (early exit and L_0 read it)."""
        return a

    record_parts = 1  # float64s per value in a segment's record

    def record(self, a):
        """A device value as the record keeps it for the measure: here, as it is."""
        return a


# The order ``precision = "auto"`` walks, by rank: the first arithmetic that
# resolves a view is used (see zoomreel.precision). Each arithmetic registers
# itself with its rank (:func:`register`); double-double (:mod:`.dd`, rank 2)
# does so when the engine package is imported.
LADDER: list = []


def register(A):
    """Put arithmetic ``A`` on the ladder at its rank (``A.rank``: 0 cheapest).

    The ranks are explicit, not the order of imports: a rank taken twice, or
    a ladder with a gap, is a programming error."""
    if any(B.rank == A.rank or B.name == A.name for B in LADDER):
        raise ValueError(f"arithmetic {A.name!r} (rank {A.rank}) is registered already or its rank is taken")
    LADDER.append(A)
    LADDER.sort(key=lambda B: B.rank)
    if [B.rank for B in LADDER] != list(range(len(LADDER))):
        raise ValueError(f"the arithmetics' ranks {[B.rank for B in LADDER]} leave a gap")
    return A


FLOAT32 = register(FloatArithmetic("float32", np.float32, rank=0))
FLOAT64 = register(FloatArithmetic("float64", np.float64, rank=1))


def arithmetic(name) -> "FloatArithmetic":
    """The arithmetic called ``name`` (an arithmetic is returned as it is)."""
    if not isinstance(name, str):
        return name
    for a in LADDER:
        if a.name == name:
            return a
    raise KeyError(f"unknown arithmetic {name!r}; known: {', '.join(a.name for a in LADDER)}")


def names() -> tuple[str, ...]:
    return tuple(a.name for a in LADDER)
