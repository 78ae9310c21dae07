"""Double-double: about 106 bits from pairs of float64, the third arithmetic.

A :class:`DD` value is an unevaluated sum ``hi + lo`` of two float64 arrays
with ``|lo| <= ulp(hi) / 2`` (normalised), a registered JAX pytree, so the
network step written over an arithmetic (:mod:`.network`) runs on it as it
is: ``+ - * /``, ``reshape``, ``transpose``, ``.T`` and indexing act on both
parts. Every operation is built from error-free transformations:

- TwoSum (Knuth): ``s = a + b`` and the exact rounding error of that sum;
- TwoProd (Dekker): ``p = a * b`` and its exact error, with each factor
  split into two halves of at most 26 bits by integer operations on its
  bits, so every partial product is exact.

What the compiler may do (docs/precision.md): XLA does not reassociate
floating-point sums, which TwoSum needs. It does contract a multiply and the
add that reads it into one FMA, on the CPU as well (jax 0.10.2), and it
copies a cheap product into every fused loop that reads it, so one product
can take two values. The split has no floating-point multiply and every
partial product is exact, so contraction cannot change those; the rounded
products and error sums that an error-free transformation reads twice go
through :func:`rounded`, which contraction does not look through.
``tests/test_dd.py`` checks all of it with inputs whose error terms are
exactly known, on whatever device runs the suite.

The elementary functions are double-double all the way: tanh from a table of
tanh(j / 64) made from 60-digit decimals, a Taylor series for the rest and
the addition formula (no float64 ``tanh`` or ``exp``). Products over an axis
(:func:`einsum`) are exact float64 matrix products of slices of the operands.

:class:`DDArithmetic` is the arithmetic ``"dd"`` appended to
:data:`~.arith.LADDER`: hyperparameters come from the exact decimal
coordinates (60 digits) split into hi and lo, so a host value is an (N, 2)
float64 array.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

from . import arith
from .arith import PREC

# bits of a float64 that the split rounds away: 27 of the 52 stored ones,
# leaving a high half of 26 significant bits and a low half of at most 26
_LOW_BITS = np.uint64((1 << 27) - 1)
_HALF = np.uint64(1 << 26)


def _f64(x):
    return jnp.asarray(x, dtype=jnp.float64)


def two_sum(a, b):
    """s = fl(a + b) and e with a + b = s + e exactly (Knuth; any order of |a|, |b|)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def quick_two_sum(a, b):
    """s, e with a + b = s + e exactly, for |a| >= |b| (or a = 0)."""
    s = a + b
    return s, b - (s - a)


def split(a):
    """hi, lo with a = hi + lo exactly and each of at most 26 significant bits.

    hi is a rounded to its 26 leading bits by integer arithmetic on its
    bits (round half up in magnitude), so no floating-point operation can be
    contracted or reassociated here; a - hi is then exact.
    """
    a = _f64(a)
    bits = lax.bitcast_convert_type(a, jnp.uint64)
    hi = lax.bitcast_convert_type((bits + _HALF) & ~_LOW_BITS, jnp.float64)
    return hi, a - hi


def rounded(x):
    """x itself, as a value no compiler can fuse into a following add.

    XLA copies a cheap product into every fused loop that reads it, and the
    CPU and GPU code generators then contract each copy with the add that
    follows into one FMA (a*b + c rounded once), so the "same" product can
    take two values in one computation, and an error-free transformation
    that reads it twice is no longer exact. A select between the product and
    NaN (taken only when it is NaN already) is a different instruction, which
    the contraction does not look through; ``tests/test_dd.py`` checks that it
    still holds.
    """
    return jnp.where(jnp.isnan(x), jnp.nan, x)


def two_prod(a, b):
    """p = fl(a * b) and e with a * b = p + e exactly (Dekker, all partial products exact)."""
    p = rounded(a * b)
    ah, al = split(a)
    bh, bl = split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


# -- double-double operations on (hi, lo) pairs


def _add(ah, al, bh, bl):
    s1, s2 = two_sum(ah, bh)
    t1, t2 = two_sum(al, bl)
    s2 = s2 + t1
    s1, s2 = quick_two_sum(s1, s2)
    s2 = s2 + t2
    return quick_two_sum(s1, s2)


def _add_d(ah, al, b):
    s1, s2 = two_sum(ah, b)
    s2 = s2 + al
    return quick_two_sum(s1, s2)


def _mul(ah, al, bh, bl):
    p, e = two_prod(ah, bh)
    e = e + (ah * bl + al * bh)
    return quick_two_sum(p, rounded(e))


def _mul_d(ah, al, b):
    p, e = two_prod(ah, b)
    e = e + al * b
    return quick_two_sum(p, rounded(e))


def _div(ah, al, bh, bl):
    q1 = ah / bh
    rh, rl = _add(ah, al, *_neg(*_mul(bh, bl, q1, 0.0)))
    q2 = rh / bh
    rh, rl = _add(rh, rl, *_neg(*_mul(bh, bl, q2, 0.0)))
    q3 = rh / bh
    q1, q2 = quick_two_sum(q1, q2)
    return _add_d(q1, q2, q3)


def _neg(h, l):
    return -h, -l


class DD:
    """An array of double-double values: ``hi + lo``, both float64 arrays of one shape."""

    __slots__ = ("hi", "lo")
    __array_priority__ = 100  # a NumPy array on the left defers to DD's operators

    def __init__(self, hi, lo):
        self.hi = hi
        self.lo = lo

    def __repr__(self) -> str:
        return f"DD(hi={self.hi!r}, lo={self.lo!r})"

    # -- the pytree
    def tree_flatten(self):
        return (self.hi, self.lo), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)

    # -- shape
    @property
    def shape(self):
        return jnp.shape(self.hi)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self):
        return np.dtype(np.float64)

    def _map(self, f):
        return DD(f(self.hi), f(self.lo))

    def reshape(self, *shape):
        return self._map(lambda a: a.reshape(*shape))

    def transpose(self, *axes):
        return self._map(lambda a: a.transpose(*axes))

    @property
    def T(self):
        return self._map(lambda a: a.T)

    def __getitem__(self, idx):
        return self._map(lambda a: a[idx])

    def copy(self):
        return self._map(lambda a: a.copy())

    # -- arithmetic
    def __neg__(self):
        return DD(-self.hi, -self.lo)

    def __add__(self, other):
        a = _opaque(self)
        if isinstance(other, DD):
            return _kept(_add(a.hi, a.lo, *_opaque(other).parts()))
        return _kept(_add_d(a.hi, a.lo, opaque(other)))

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        a = _opaque(self)
        if isinstance(other, DD):
            return _kept(_mul(a.hi, a.lo, *_opaque(other).parts()))
        return _kept(_mul_d(a.hi, a.lo, opaque(other)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        a = _opaque(self)
        if isinstance(other, DD):
            return _kept(_div(a.hi, a.lo, *_opaque(other).parts()))
        return _kept(_div(a.hi, a.lo, opaque(other), 0.0))

    def __rtruediv__(self, other):
        return DD(opaque(other), jnp.zeros_like(self.lo)) / self

    def parts(self):
        return self.hi, self.lo


def _kept(parts) -> "DD":
    """A result, stored once: each part divided by an opaque 1.0.

    A double-double value is two arrays from one chain of operations, and
    XLA's CPU backend copies such a chain into the loop of every reader,
    recomputing it there (about three times the work in the network step).
    XLA does not copy a division into several readers, so dividing by 1.0,
    which is exact and which the compiler cannot see to be 1.0, makes it
    compute the chain once and store it. No value changes.
    """
    one = opaque(1.0)
    return DD(*(v / one for v in parts))


def opaque(x):
    """x itself; a constant (not a traced value) hidden from the compiler's rewrites.

    XLA's algebraic simplifier rewrites ``(x + C) - C`` to ``x`` when C is a
    constant, which turns TwoSum's error term into zero whenever its first
    operand is one (jax 0.10.2 on the CPU; ``tests/test_dd.py`` checks it).
    An optimisation barrier keeps the constant's value out of sight.
    """
    if isinstance(x, _TRACER):
        return x
    return lax.optimization_barrier(_f64(x))


def _tracer_type() -> type:
    """JAX's class of traced values: ``jax.core.Tracer`` (public up to JAX 0.10
    at least), else where JAX keeps it, should a later release drop the alias."""
    public = getattr(jax.core, "Tracer", None)
    if public is not None:
        return public
    from jax._src import core

    return core.Tracer


_TRACER = _tracer_type()


def _opaque(a: "DD") -> "DD":
    return DD(opaque(a.hi), opaque(a.lo))


jax.tree_util.register_pytree_node_class(DD)


def where(cond, a: DD, b: DD) -> DD:
    return DD(jnp.where(cond, a.hi, b.hi), jnp.where(cond, a.lo, b.lo))


def from_decimal(x: Decimal) -> tuple[float, float]:
    """(hi, lo): hi the float64 nearest x, lo the float64 nearest x - hi."""
    with localcontext(prec=PREC):
        hi = float(x)
        if not math.isfinite(hi):
            return hi, 0.0
        return hi, float(x - Decimal(hi))


# -- elementary functions

TANH_ONE = 40.0  # from |x| = 40 on, tanh(x) rounds to +-1 in double-double (1 - tanh < 2e-35)
TANH_GRID = 64  # table points per unit: tanh(j / 64) for j = 0 .. 40 * 64


def _tanh_series() -> list[Fraction]:
    """c_k with tanh(r) = r (1 + c_1 r^2 + c_2 r^4 + ...), k = 1..7, exactly:
    c_k = 2^(2k+2) (2^(2k+2) - 1) B_(2k+2) / (2k+2)!, from Bernoulli numbers."""
    bern = [Fraction(1)]
    for m in range(1, 17):
        bern.append(-sum(math.comb(m + 1, j) * bern[j] for j in range(m)) / (m + 1))
    return [Fraction(4 ** (k + 1) * (4 ** (k + 1) - 1), math.factorial(2 * k + 2)) * bern[2 * k + 2]
            for k in range(1, 8)]


_SERIES = _tanh_series()
with localcontext(prec=PREC):
    _SERIES_DD = [from_decimal(Decimal(c.numerator) / Decimal(c.denominator)) for c in _SERIES[:3]]
_SERIES_F64 = [float(c) for c in _SERIES[3:]]


@functools.cache
def _tanh_table() -> tuple[np.ndarray, np.ndarray]:
    """tanh(j / TANH_GRID) for j = 0 .. TANH_ONE * TANH_GRID, as (hi, lo), from 60-digit decimals."""
    hi, lo = [], []
    with localcontext(prec=PREC):
        for j in range(int(TANH_ONE * TANH_GRID) + 1):
            e = (Decimal(2 * j) / TANH_GRID).exp()
            h, l = from_decimal((e - 1) / (e + 1))
            hi.append(h)
            lo.append(l)
    return np.array(hi), np.array(lo)


def tanh(x: DD) -> DD:
    """tanh in double-double, relative error about 2^-104; +-1 from |x| = 40.

    |x| = c + r with c = j / 64 the nearest table point and |r| <= 1/128;
    tanh(r) = r (1 + c_1 r^2 + c_2 r^4 + ...) with the first three terms in
    double-double and the rest (below 2^-53 of r) in float64; then
    tanh(c + r) = (tanh c + tanh r) / (1 + tanh c tanh r) with tanh c from a
    60-digit table. NaN stays NaN; +-inf gives +-1.
    """
    neg = x.hi < 0
    ax = where(neg, -x, x)
    one = ax.hi >= TANH_ONE
    ax = where(one, DD(jnp.zeros_like(ax.hi), jnp.zeros_like(ax.lo)), ax)
    j = jnp.round(ax.hi * TANH_GRID)
    # ax.hi - c is exact: both are multiples of ulp(ax.hi) and |ax.hi - c| <= 1/128
    r = _kept(two_sum(ax.hi - j / TANH_GRID, ax.lo))
    y = r * r
    tail = _horner(_SERIES_F64, y.hi)
    h = _kept(_add_d(opaque(_SERIES_DD[2][0]), opaque(_SERIES_DD[2][1]), rounded(y.hi * tail)))
    for c in (_SERIES_DD[1], _SERIES_DD[0]):
        h = y * h + DD(_f64(c[0]), _f64(c[1]))
    t = r + r * (y * h)
    table_hi, table_lo = _tanh_table()
    k = j.astype(jnp.int32)
    tc = DD(jnp.take(jnp.asarray(table_hi), k), jnp.take(jnp.asarray(table_lo), k))
    t = (tc + t) / (tc * t + 1.0)
    t = where(one, DD(jnp.ones_like(t.hi), jnp.zeros_like(t.lo)), t)
    t = where(neg, -t, t)
    nan = jnp.isnan(x.hi) | jnp.isnan(x.lo)
    return _kept((jnp.where(nan, x.hi + x.lo, t.hi), jnp.where(nan, x.hi + x.lo, t.lo)))


def _horner(coeffs, y):
    """coeffs[0] + coeffs[1] y + ... by Horner's rule (lowest power first)."""
    p = coeffs[-1]
    for c in coeffs[-2::-1]:
        p = p * y + c
    return p


# -- products and sums over one axis


def sum_last(a: DD) -> DD:
    """Sum over the last axis in one fixed order: pairwise, halves added
    element-wise, an odd length padded with one zero (exact)."""
    while a.shape[-1] > 1:
        n = a.shape[-1]
        if n % 2:
            widths = [(0, 0)] * (a.ndim - 1) + [(0, 1)]
            a = DD(jnp.pad(a.hi, widths), jnp.pad(a.lo, widths))
            n += 1
        a = a[..., : n // 2] + a[..., n // 2 :]
    return a[..., 0]


# Products by exact float64 matrix products (the Ozaki scheme). Each operand
# is cut into slices of float64 numbers; the entries of one slice that are
# summed together (one row of a, one column of b) are integer multiples of
# one power of two, at most 2^beta of it, so every product of two slices,
# and every partial sum of it, is an integer below 2^53 of a common unit: a
# float64 dot product computes it exactly, in whatever order and with or
# without fused multiply-adds. The slices' sum is the operand to
# 2^-(beta * slices) of its largest entry in that row, so the result is the
# exact product to about K * 2^-105 of max|a| max|b| (K terms summed).
TARGET_BITS = 110


def slicing(k: int) -> tuple[int, int, bool]:
    """(bits per slice, slices, whole anti-diagonals) for a product that
    sums ``k`` terms: the fewest slices of at least TARGET_BITS in all, each
    product of two slices exact; where the same number of slices, a little
    narrower, also lets the products of one anti-diagonal (i + j fixed) be
    summed exactly in float64, that is used, and otherwise the products are
    added in double-double one by one."""
    beta = (53 - math.ceil(math.log2(max(k, 2)))) // 2
    count = -(-TARGET_BITS // beta)
    narrow = (53 - math.ceil(math.log2(k * count))) // 2
    if narrow * count >= TARGET_BITS:
        return narrow, count, True
    return beta, count, False


def _scaled_one_and_half(e):
    """1.5 * 2^e as float64, from int64 e clipped to the normal exponents."""
    e = jnp.clip(e, -1022, 1023)
    bits = ((e + 1023).astype(jnp.uint64) << np.uint64(52)) | np.uint64(1 << 51)
    return lax.bitcast_convert_type(bits, jnp.float64)


def slices(a: DD, axis: int, beta: int, count: int) -> list:
    """``count`` float64 arrays that sum to ``a`` up to 2^-(beta*count) of
    the largest |a| along ``axis``; in slice k (from 1) every entry along
    ``axis`` is an integer multiple of u_k = 2^(e + 1 - beta k), at most
    2^beta of them, where 2^e <= max|a| < 2^(e+1).

    Each slice is the remainder rounded to a multiple of u_k by adding and
    subtracting 1.5 * 2^52 u_k (no multiply for a compiler to contract; XLA
    does not reassociate the two adds, :func:`two_sum` relies on the same),
    and the remainder stays exact as a double-double.
    """
    amax = jnp.max(jnp.abs(a.hi), axis=axis, keepdims=True)
    bits = lax.bitcast_convert_type(amax, jnp.uint64)
    e = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(jnp.int64) - 1023
    rh, rl = a.hi, a.lo
    out = []
    for k in range(1, count + 1):
        sigma = _scaled_one_and_half(e + 1 - beta * k + 52)
        q = (rh + sigma) - sigma
        out.append(q)
        rh, rl = two_sum(rh - q, rl)
    return out


def einsum(spec: str, a: DD, b: DD) -> DD:
    """A two-operand einsum with one summed index, from exact float64 products
    of the operands' :func:`slices` (slice i of a times slice j of b, for
    i + j <= slices + 1), added in double-double, smallest first: each
    anti-diagonal i + j summed exactly beforehand where :func:`slicing`
    allows it. The result does not depend on how the
    compiler orders a sum, nor on how many pixels share the arrays.
    """
    ins, out = spec.replace(" ", "").split("->")
    sa, sb = ins.split(",")
    summed = [c for c in dict.fromkeys(sa + sb) if c not in out]
    if len(summed) != 1:
        raise ValueError(f"dd einsum sums exactly one index, not {summed} in {spec!r}")
    c = summed[0]
    beta, count, whole = slicing(a.shape[sa.index(c)])
    qa = slices(a, sa.index(c), beta, count)
    qb = slices(b, sb.index(c), beta, count)
    hi = lo = None
    for d in range(count + 1, 1, -1):  # i + j = d, the smallest products first
        terms = [jnp.einsum(spec, qa[i - 1], qb[d - i - 1], precision=arith.FULL)
                 for i in range(max(1, d - count), min(count, d - 1) + 1)]
        if whole:  # one unit, below 2^53 of it: float64 sums them exactly
            terms = [functools.reduce(lambda p, t: p + t, terms)]
        for p in terms:
            if hi is None:
                hi, lo = p, jnp.zeros_like(p)
            else:
                hi, lo = _kept(_add_d(hi, lo, p)).parts()
    return DD(hi, lo)


class DDArithmetic:
    """Double-double on the device; a value is a :class:`DD`, on the host an (..., 2) float64."""

    name = "dd"
    host_shape = (2,)
    dtype = np.dtype(np.float64)  # the dtype of each part
    loss_dtype = np.dtype(np.float64)  # the dtype of each part of a recorded value
    record_parts = 2  # records keep (hi, lo): the measure is taken in double-double
    ulp_bits = 53  # a dd ulp is ulp(hi) / 2^53: 106 bits in all

    def __init__(self, rank: int):
        self.rank = rank

    def __repr__(self) -> str:
        return f"<arithmetic {self.name}>"

    def __reduce__(self):
        return (arith.arithmetic, (self.name,))

    # -- the host side
    def hypers(self, coords: list[Decimal], log_axes: bool) -> np.ndarray:
        """(N, 2): 10**coord (or the coordinate) from 60-digit decimals, split into hi and lo."""
        with localcontext(prec=PREC):
            vals = [Decimal(10) ** c for c in coords] if log_axes else coords
            return np.array([from_decimal(v) for v in vals], dtype=np.float64).reshape(-1, 2)

    def host_values(self, host: np.ndarray) -> np.ndarray:
        return np.asarray(host, dtype=np.float64)[..., 0]

    def finite(self, host: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(np.asarray(host, dtype=np.float64))))

    def _ulp(self, hi: np.ndarray) -> np.ndarray:
        return np.spacing(np.abs(hi)) * 2.0**-self.ulp_bits

    def _gaps(self, host_axis: np.ndarray) -> np.ndarray:
        h = np.asarray(host_axis, dtype=np.float64)
        # exact enough: neighbours' hi differ by a few float64 ulps at most
        # where it matters, so hi - hi is exact and lo - lo adds one rounding
        return (h[1:, 0] - h[:-1, 0]) + (h[1:, 1] - h[:-1, 1])

    def distinct(self, host_axis: np.ndarray) -> bool:
        """Neighbours at least one dd ulp (2^-53 of hi's float64 ulp) apart.
        Merely different (hi, lo) pairs are not enough: where lo happens to be
        tiny, its own float64 spacing is far finer than dd's 106 bits, and
        pairs that dd arithmetic cannot keep apart would still differ."""
        return self.spaced(host_axis, 1)

    def spaced(self, host_axis: np.ndarray, ulps: int) -> bool:
        h = np.asarray(host_axis, dtype=np.float64)
        if not np.all(np.isfinite(h)):
            return False
        ulp = self._ulp(np.maximum(np.abs(h[:-1, 0]), np.abs(h[1:, 0])))
        return bool(np.all(self._gaps(h) >= ulps * ulp))

    def nudge(self, host: np.ndarray, ulps: int) -> np.ndarray:
        """Every value moved up by ``ulps`` double-double ulps (ulp(hi) / 2^53 each)."""
        h = np.asarray(host, dtype=np.float64)
        hi, lo = h[..., 0], h[..., 1] + ulps * self._ulp(h[..., 0])  # exact: lo's own scale
        s = hi + lo
        lo = lo - (s - hi)
        return np.stack([s, lo], axis=-1)

    def deepest_span(self, center: tuple, width: int, log_axes: bool) -> float:
        """Smallest span at this width whose neighbouring pixels stay two dd ulps apart."""
        worst = 0.0
        for c in center:
            c = float(c)
            if log_axes:
                s = 2.0 * 2.0**-52 * 2.0**-self.ulp_bits / math.log(10)  # 2 ulps relative, in log10
            else:
                s = 2.0 * float(np.spacing(max(abs(c), 1e-300))) * 2.0**-self.ulp_bits
            worst = max(worst, s)
        return float(worst * width)

    def cast(self, host: np.ndarray) -> DD:
        """Plain float64 host values (the draws) as double-double, exactly."""
        h = np.asarray(host, dtype=np.float64)
        return DD(h, np.zeros_like(h))

    def from_host(self, host: np.ndarray) -> DD:
        """Host-form values (..., 2), the hyperparameters, as double-double."""
        h = np.asarray(host, dtype=np.float64)
        return DD(np.ascontiguousarray(h[..., 0]), np.ascontiguousarray(h[..., 1]))

    def broadcast_rows(self, value: DD, rows: int) -> DD:
        return DD(*(np.broadcast_to(v, (rows,) + np.shape(v)).copy() for v in (value.hi, value.lo)))

    def const(self, f64: float, exact: Decimal) -> DD:
        hi, lo = from_decimal(exact)
        return DD(np.float64(hi), np.float64(lo))

    # -- the device side
    def matmul(self, a: DD, b: DD) -> DD:
        return einsum("ik,kj->ij", a, b)

    def einsum(self, spec: str, a: DD, b: DD) -> DD:
        return einsum(spec, a, b)

    def tanh(self, u: DD) -> DD:
        return tanh(u)

    def relu(self, z: DD) -> DD:
        keep = ~(z.hi <= 0)  # NaN is kept, as jnp.maximum propagates it
        return DD(jnp.where(keep, z.hi, 0.0), jnp.where(keep, z.lo, 0.0))

    def step(self, z: DD, height: DD) -> DD:
        pos = z.hi > 0
        return DD(jnp.where(pos, height.hi, 0.0), jnp.where(pos, height.lo, 0.0))

    def ones_like(self, a: DD) -> DD:
        return DD(jnp.ones_like(a.hi), jnp.zeros_like(a.lo))

    def repeat(self, a: DD, n: int) -> DD:
        return a._map(lambda v: jnp.repeat(v, n))

    def sum_last(self, a: DD) -> DD:
        return sum_last(a)

    def isnan(self, a: DD):
        return jnp.isnan(a.hi) | jnp.isnan(a.lo)

    def to_float64(self, a: DD):
        return a.hi  # normalised: hi is hi + lo rounded to float64

    def record(self, a: DD):
        """(..., 2): hi and lo, so that the measure sees the value to 106 bits.
        Rounded to float64 a loss loses what decides a pixel's class where the
        mean of its last values lies within 1e-16 of 1 (zoomreel.engine.measure)."""
        return jnp.stack([a.hi, a.lo], axis=-1)


DD_ARITH = arith.register(DDArithmetic(rank=2))  # after float32 and float64
