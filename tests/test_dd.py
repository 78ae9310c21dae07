"""Double-double: exact error terms through the compiler, dd accuracy against mpmath."""

import math
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

E = 2.0**-30


@pytest.fixture(scope="module", autouse=True)
def configured():
    engine.configure()


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


def test_constants_keep_their_error_terms_when_compiled():
    """XLA rewrites (x + C) - C to x for a constant C, which zeroes TwoSum's
    error term when its first operand is a constant: dd keeps constants
    opaque. Sums and products with a constant whose error terms are known."""
    third = dd.DD(np.float64(1 / 3), np.float64(0.0))
    tiny = engine.DD.cast(np.array([2.0**-60]))
    three = engine.DD.cast(np.array([3.0]))
    cases = [
        (lambda x: third + x, tiny, Fraction(1 / 3) + Fraction(1, 2**60)),
        (lambda x: x + third, tiny, Fraction(1 / 3) + Fraction(1, 2**60)),
        (lambda x: 1.0 + x, tiny, 1 + Fraction(1, 2**60)),
        (lambda x: x - 1.0, tiny, Fraction(1, 2**60) - 1),
        (lambda x: x * third, three, 3 * Fraction(1 / 3)),
    ]
    for k, (f, x, exact) in enumerate(cases):
        got = jax.jit(f)(x)
        assert _exact(np.asarray(got.hi)[0]) + _exact(np.asarray(got.lo)[0]) == exact, k


def test_product_slices_are_exact_and_on_one_grid():
    """The slices of a double-double row sum back to it, and each slice's
    entries along the summed axis are small multiples of one power of two,
    so a float64 dot product of two slices is exact."""
    rng = np.random.default_rng(3)
    hi = rng.standard_normal((5, 272)) * np.exp2(rng.integers(-30, 30, (5, 1)))
    hi[1, :] = 0.0
    lo = hi * rng.uniform(-2.0**-53, 2.0**-53, hi.shape)
    beta, count, whole = dd.slicing(272)
    assert 2 * beta + math.ceil(math.log2(272 * (count if whole else 1))) <= 53 and beta * count >= dd.TARGET_BITS
    assert dd.slicing(16)[2]  # short sums add a whole anti-diagonal exactly
    qs = [np.asarray(q) for q in jax.jit(lambda h, l: dd.slices(dd.DD(h, l), 1, beta, count))(hi, lo)]
    for r in range(5):
        total = sum(Fraction(float(q[r, j])) for q in qs for j in range(0, 272, 37))
        want = sum(Fraction(float(hi[r, j])) + Fraction(float(lo[r, j])) for j in range(0, 272, 37))
        scale = Fraction(float(np.max(np.abs(hi[r])))) if hi[r].any() else Fraction(0)
        assert abs(total - want) <= 8 * scale * Fraction(1, 2 ** (beta * count)), r
        for k, q in enumerate(qs, start=1):
            if not q[r].any():
                continue
            e = math.floor(math.log2(np.max(np.abs(hi[r]))))
            unit = Fraction(2) ** (e + 1 - beta * k)
            ints = [Fraction(float(v)) / unit for v in q[r]]
            assert all(i.denominator == 1 and abs(i) <= 2**beta for i in ints), (r, k)


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
@pytest.mark.slow
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


@mpmath.workdps(50)
def test_tanh_agrees_with_mpmath_across_its_table():
    """Points spread over [-41, 41], and next to the table's points and the
    midpoints between them, where the series' argument is largest."""
    rng = np.random.default_rng(7)
    grid = np.arange(0, 40 * 64 + 1) / 64
    xs = np.concatenate([rng.uniform(-41, 41, 400), rng.choice(grid, 60) + 1 / 128,
                         rng.choice(grid, 60) - 2.0**-40, -rng.choice(grid, 30) + 1 / 128 - 2.0**-45,
                         rng.uniform(-1e-3, 1e-3, 30)])
    lo = xs * rng.uniform(-2.0**-53, 2.0**-53, xs.size)
    x = dd.DD(jnp.array(xs), jnp.array(lo))
    t = jax.jit(dd.tanh)(x)
    for i in range(xs.size):
        ref = mpmath.tanh(_mp(x, i))
        assert abs(_mp(t, i) - ref) <= abs(ref) * mpmath.mpf(2) ** -103, xs[i]  # measured: 2^-104.8


@pytest.mark.slow
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


@pytest.mark.slow
def test_dd_values_do_not_depend_on_the_chunk_or_early_exit():
    """Every product is exact per pixel, so a pixel's values are the same
    bits whichever pixels share its chunk, and early exit changes none."""
    model = Model(width=4, steps=50)  # two segments of one length: two compilations
    lrs = ["-1.0", "0.4", "0.5", "1.2", "2.5", "3.0"]  # converging, slow, diverging, blowing up
    host = engine.DD.hypers([Decimal(v) for v in lrs], True)
    alone = engine.train(model, host, host, "dd", chunk=2, early_exit=False)
    together = engine.train(model, host, host, "dd", chunk=6, early_exit=True)
    assert np.any(alone.values < 0) and np.any(alone.values > 0)  # both classes
    assert together.computed < alone.computed  # early exit stopped some pixels
    assert np.array_equal(together.values, alone.values, equal_nan=True)
