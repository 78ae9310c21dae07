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

The elementary functions are double-double all the way: tanh from expm1 by
argument reduction and a Taylor series (no float64 ``tanh`` or ``exp``).

:class:`DDArithmetic` is the arithmetic ``"dd"`` appended to
:data:`~.arith.LADDER`: hyperparameters come from the exact decimal
coordinates (60 digits) split into hi and lo, so a host value is an (N, 2)
float64 array.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

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
        if isinstance(other, DD):
            return DD(*_add(self.hi, self.lo, other.hi, other.lo))
        return DD(*_add_d(self.hi, self.lo, other))

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, DD):
            return DD(*_mul(self.hi, self.lo, other.hi, other.lo))
        return DD(*_mul_d(self.hi, self.lo, other))

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, DD):
            return DD(*_div(self.hi, self.lo, other.hi, other.lo))
        return DD(*_div(self.hi, self.lo, other, 0.0))

    def __rtruediv__(self, other):
        return DD(_f64(other), jnp.zeros_like(self.lo)) / self


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

_LN2 = from_decimal(Decimal(
    "0.693147180559945309417232121458176568075500134360255254120680009493393621969694715605863326996418687542"))
_EXPM1_HALVINGS = 9  # |r| <= ln2/2 is halved 9 times before the series
_EXPM1_TERMS = 10  # r^k / k! for k = 1..10 at |r| <= 6.8e-4: the last kept is 1e-41 of r
with localcontext(prec=PREC):
    _INV_FACT = [from_decimal(1 / Decimal(math.factorial(k))) for k in range(2, _EXPM1_TERMS + 1)]
TANH_ONE = 40.0  # from |x| = 40 on, tanh(x) rounds to +-1 in double-double (1 - tanh < 2e-35)


def expm1(x: DD) -> DD:
    """e^x - 1 in double-double for x >= 0 (tanh's use), relative error about 1e-31.

    x = k ln2 + r with |r| <= ln2/2; expm1(r) from its Taylor series at
    r / 2^9, doubled back nine times by expm1(2s) = expm1(s) (expm1(s) + 2),
    which keeps the relative accuracy of a small result; then
    e^x - 1 = 2^k expm1(r) + (2^k - 1), exactly expm1(r) when k = 0.
    """
    k = jnp.round(x.hi / _LN2[0])
    r = x - DD(_f64(_LN2[0]), _f64(_LN2[1])) * k
    s = r * (0.5**_EXPM1_HALVINGS)
    # Horner: s + s^2/2! + ... = s (1 + s (1/2! + s (1/3! + ...)))
    p = DD(_f64(_INV_FACT[-1][0]), _f64(_INV_FACT[-1][1])) * s
    for c in reversed(_INV_FACT[:-1]):
        p = (p + DD(_f64(c[0]), _f64(c[1]))) * s
    e = (p + 1.0) * s
    for _ in range(_EXPM1_HALVINGS):
        e = e * (e + 2.0)
    return e * _pow2(k) + (_pow2(k) - 1.0)  # 2^k - 1 is exact for the k < 53 where it matters


def _pow2(k):
    """2^k for integer-valued float64 k in [-1022, 1023], built from its bits
    (XLA's exp2 is not exact at integers)."""
    e = (k.astype(jnp.int64) + 1023).astype(jnp.uint64) << np.uint64(52)
    return lax.bitcast_convert_type(e, jnp.float64)


def tanh(x: DD) -> DD:
    """tanh in double-double: sign(x) e / (e + 2) with e = expm1(2|x|); +-1 from |x| = 40.

    NaN stays NaN; +-inf gives +-1.
    """
    neg = x.hi < 0
    ax = where(neg, -x, x)
    one = ax.hi >= TANH_ONE
    ax = where(one, DD(jnp.zeros_like(ax.hi), jnp.zeros_like(ax.lo)), ax)  # keeps expm1 finite
    e = expm1(ax * 2.0)
    t = e / (e + 2.0)
    t = where(one, DD(jnp.ones_like(t.hi), jnp.zeros_like(t.lo)), t)
    t = where(neg, -t, t)
    nan = jnp.isnan(x.hi) | jnp.isnan(x.lo)
    return DD(jnp.where(nan, x.hi + x.lo, t.hi), jnp.where(nan, x.hi + x.lo, t.lo))


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


def einsum(spec: str, a: DD, b: DD) -> DD:
    """A two-operand einsum with one summed index: every product, summed
    index last, then added pairwise (:func:`sum_last`), in a fixed order.

    (Adding the terms one after another into an output-shaped array runs
    faster on a CPU but made XLA take minutes to compile the whole step.)
    """
    ins, out = spec.replace(" ", "").split("->")
    sa, sb = ins.split(",")
    summed = [c for c in dict.fromkeys(sa + sb) if c not in out]
    if len(summed) != 1:
        raise ValueError(f"dd einsum sums exactly one index, not {summed} in {spec!r}")
    order = out + summed[0]
    return sum_last(_align(a, sa, order) * _align(b, sb, order))


def _align(a: DD, spec: str, order: str) -> DD:
    """``a``'s axes (named by ``spec``) in ``order``, with size-1 axes for the missing names."""
    a = a.transpose(*[spec.index(c) for c in order if c in spec])
    return a[tuple(slice(None) if c in spec else None for c in order)]


class DDArithmetic:
    """Double-double on the device; a value is a :class:`DD`, on the host an (..., 2) float64."""

    name = "dd"
    host_shape = (2,)
    dtype = np.dtype(np.float64)  # the dtype of each part
    loss_dtype = np.dtype(np.float64)  # losses leave the step as their float64 rounding
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


DD_ARITH = DDArithmetic(len(arith.LADDER))
arith.LADDER.append(DD_ARITH)
