"""Double-double: exact error terms through the compiler, dd accuracy against mpmath."""

from decimal import Decimal
from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from zoomreel import engine
from zoomreel.engine import dd
from zoomreel.model import Model

from reference_mp import engine_losses, losses as mp_losses

engine.configure()

E = 2.0**-30


def _exact(x) -> Fraction:
    return Fraction(float(x))


def _bits(x) -> int:
    """Significant bits of a float (0 for zero)."""
    n = abs(Fraction(float(x)).numerator)
    return (n >> ((n & -n).bit_length() - 1)).bit_length() if n else 0


def test_error_free_transformations_are_exact_when_compiled():
    # inputs whose rounding errors are known exactly; one compiled program
    # holds them all, on whatever device runs the suite
    a = np.array([1.0, 2.0**-60, 1e16, 1 + E, 1 + 2.0**-52, 3.0, -(1 + E)])
    b = np.array([2.0**-60, 1.0, 1.0 + 2.0**-40, 1 + E, 1 - 2.0**-53, 1.0 / 3.0, 1 + E])

    @jax.jit
    def eft(a, b):
        return dd.two_sum(a, b), dd.two_prod(a, b), dd.split(a)

    (s, se), (p, pe), (h, l) = jax.tree_util.tree_map(np.asarray, eft(a, b))
    for k in range(a.size):
        A, B = Fraction(float(a[k])), Fraction(float(b[k]))
        assert _exact(s[k]) + _exact(se[k]) == A + B, k  # TwoSum: no reassociation
        assert s[k] == float(a[k] + b[k])
        assert _exact(p[k]) + _exact(pe[k]) == A * B, k  # TwoProd: the error term exactly
        assert p[k] == float(a[k] * b[k])  # the product rounded once, not fused away
        assert _exact(h[k]) + _exact(l[k]) == A
        assert _bits(h[k]) <= 26 and _bits(l[k]) <= 26  # so every partial product is exact
    # the known cases spelt out
    assert (p[3], pe[3]) == (1 + 2 * E, E * E)
    assert (se[0], pe[4]) == (2.0**-60, 2.0**-53 - 2.0**-105)


@pytest.mark.parametrize("terms", [2, 3, 16, 40])
def test_products_feeding_sums_stay_exact_when_compiled(terms):
    """A dot product: products and sums in one program, the pattern a compiler
    fuses into FMAs. The result must be the exact dot product to 2^-100."""
    rng = np.random.default_rng(terms)
    a = rng.uniform(-1, 1, (8, terms))
    b = rng.uniform(-1, 1, (terms, 8))
    A, B = engine.DD.cast(a), engine.DD.cast(b)
    got = jax.jit(engine.DD.matmul)(A, B)
    hi, lo = np.asarray(got.hi), np.asarray(got.lo)
    for i in range(8):
        for j in range(8):
            exact = sum(Fraction(float(a[i, k])) * Fraction(float(b[k, j])) for k in range(terms))
            scale = sum(abs(Fraction(float(a[i, k])) * Fraction(float(b[k, j]))) for k in range(terms))
            assert abs(_exact(hi[i, j]) + _exact(lo[i, j]) - exact) <= scale * Fraction(1, 2**100), (i, j)
    # the contraction case itself: (1 + 2^-30)^2 - (1 + 2^-29) is exactly 2^-60
    x = engine.DD.cast(np.full(4, 1 + E))
    z = engine.DD.cast(np.full(4, -(1 + 2 * E)))
    r = jax.jit(lambda x, z: x * x + z)(x, z)
    assert np.all(np.asarray(r.hi) == E * E) and np.all(np.asarray(r.lo) == 0.0)


def _mp(d, i):
    return mpmath.mpf(float(np.asarray(d.hi)[i])) + mpmath.mpf(float(np.asarray(d.lo)[i]))


@mpmath.workdps(50)
def test_tanh_and_arithmetic_agree_with_mpmath_to_double_double():
    xs = [0.0, 1e-30, 3e-9, 0.1, 0.3, 0.55, 1.0, 2.5, 5.0, 10.0, 18.0, 25.0, 39.0, 41.0, -0.7, -12.0]
    lo = [0.0, 0.0, 1e-26, 1e-18, -2e-18, 3e-18, 0.0, 1e-17, 0.0, 1e-16, 0.0, 0.0, 0.0, 0.0, 5e-18, 0.0]
    x = dd.DD(jnp.array(xs), jnp.array(lo))
    t = jax.jit(dd.tanh)(x)
    for i in range(len(xs)):
        ref = mpmath.tanh(_mp(x, i))
        assert abs(_mp(t, i) - ref) <= abs(ref) * mpmath.mpf(2) ** -100, xs[i]
    edge = jax.jit(dd.tanh)(dd.DD(jnp.array([np.nan, np.inf, -np.inf]), jnp.zeros(3)))
    assert np.isnan(np.asarray(edge.hi)[0]) and list(np.asarray(edge.hi)[1:]) == [1.0, -1.0]
    a = dd.DD(jnp.array([1 / 3, -7.25, 1e-8]), jnp.array([1 / 3 * 2.0**-54, 1e-17, 3e-25]))
    b = dd.DD(jnp.array([7.1, 0.3, -2.0]), jnp.array([1e-17, -1e-18, 0.0]))
    for op in ("+", "-", "*", "/"):
        r = jax.jit(eval(f"lambda a, b: a {op} b"))(a, b)
        for i in range(3):
            ref = eval(f"_mp(a, i) {op} _mp(b, i)")
            assert abs(_mp(r, i) - ref) <= abs(ref) * mpmath.mpf(2) ** -100, (op, i)


def test_dd_training_agrees_with_mpmath_to_28_digits():
    """Three pixels of a converging region, 50 steps: every loss to >= 28 digits."""
    model = Model(width=4, steps=50)
    lrs = ["-1.2", "-0.9", "-0.6"]  # log10 learning rates, both layers
    host = engine.DD.hypers([Decimal(v) for v in lrs], True)
    got = engine_losses(model, "dd", host)
    draws = engine.draws(model)
    with mpmath.workdps(60):
        for k in range(len(lrs)):
            lr = mpmath.mpf(float(host[k, 0])) + mpmath.mpf(float(host[k, 1]))  # the pixel's dd value, exactly
            ref = mp_losses(model, draws, lr, lr, model.steps)
            assert ref[-1] < ref[0]  # the region converges: no chaos to amplify rounding
            for t in range(model.steps):
                assert abs(got[k][t] - ref[t]) <= abs(ref[t]) * mpmath.mpf(10) ** -28, (k, t)
