"""The engine against the independent NumPy reference (tests/reference.py)."""

import dataclasses
import os

import numpy as np
import pytest

import reference as ref
from zoomreel import engine
from zoomreel.model import Model

CONDITIONS = ref.conditions(40)
# Every registered implementation of the network step is held to the same tests
# where it runs natively (on a GPU: the XLA step and the fused kernel). Off a GPU
# the fused kernel runs in interpret mode, too slow for these grids in CI:
# tests/test_fused.py checks it there on smaller ones, and
# ZOOMREEL_TEST_INTERPRET=1 runs these tests with it as well.
# every implementation of the network step; those other than XLA's run natively on a GPU only
IMPLS = [pytest.param(f.impl, marks=() if f.impl == "xla" else pytest.mark.gpu) for f in engine.implementations("network")]


def native_or_asked(impl: str) -> bool:
    """Whether ``impl`` runs natively here (the XLA step always does), or was asked for."""
    import jax

    platform = jax.devices()[0].platform
    f = engine.formulation.get("network", impl)
    return impl == "xla" or f.suits(platform, Model()) or bool(os.environ.get("ZOOMREEL_TEST_INTERPRET"))


def grid(model, k=5):
    # log10 coordinates spanning both phases of each condition
    if model.plane == "init-lr":
        xs, ys = np.linspace(-2, 2, k), np.linspace(-2, 1.5, k)
    else:
        xs, ys = np.linspace(-1, 4, k), np.linspace(-1, 3.5, k)
    return 10.0**xs, 10.0**ys


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.slow
def test_engine_matches_numpy_reference(name, impl):
    if not native_or_asked(impl):
        pytest.skip(f"{impl} runs natively only on a GPU (ZOOMREEL_TEST_INTERPRET=1 runs it here)")
    model = CONDITIONS[name]
    hx, hy = grid(model)
    HX, HY = np.meshgrid(hx, hy)
    got = engine.train(model, HX.ravel(), HY.ravel(), "float64", impl=impl).values.reshape(HY.shape)
    want = ref.frame(model, engine.draws(model), hx, hy)
    # both phases must be present, or the comparison proves little
    assert (want < 0).any() and (want > 0).any(), name
    assert np.mean(np.sign(got) == np.sign(want)) >= 0.96, name
    # away from chaotic pixels the values agree to rounding
    rel = np.abs(got - want) / np.abs(want)
    assert np.median(rel) < 1e-9, (name, np.median(rel))


@pytest.mark.slow
def test_gradient_matches_autodiff():
    """The hand-written backward pass equals jax.grad of the paper's loss."""
    import jax
    import jax.numpy as jnp

    model = Model(steps=20)
    d = engine.draws(model)
    n = model.width

    def loss(w0, w1):
        z = d.x @ w0 / jnp.sqrt(n)
        h = jnp.tanh(jnp.sqrt(2.0) * z)
        out = (h @ w1 / jnp.sqrt(n)) / jnp.sqrt(n)
        return jnp.mean((out - d.y) ** 2)

    w0, w1 = jnp.asarray(d.w0), jnp.asarray(d.w1)
    lr0, lr1 = 0.7, 0.3
    losses = []
    for _ in range(20):
        l, (g0, g1) = jax.value_and_grad(loss, argnums=(0, 1))(w0, w1)
        losses.append(float(l))
        w0, w1 = w0 - lr0 * g0, w1 - lr1 * g1
    got = engine.train(model, np.array([lr0]), np.array([lr1]), "float64").values
    np.testing.assert_allclose(got[0], ref.measure(losses), rtol=1e-12)


def test_float64_tanh_is_tanh():
    """The engine's own float64 tanh: within a few ulp of NumPy's, exact at the edges."""
    import jax
    import jax.numpy as jnp

    engine.config.ensure()  # float64 in JAX, as the engine sets it up before it trains
    f = jax.jit(engine.arith.tanh64)
    rng = np.random.default_rng(7)
    # every scale from tiny (tanh u = u) through saturation; XLA's CPU code
    # flushes subnormals, so the sweep stops at 1e-300
    u = np.concatenate([rng.standard_normal(20_000) * 10.0**e for e in range(-300, 3, 3)]
                       + [rng.uniform(-25.0, 25.0, 200_000)])
    got, want = np.asarray(f(u)), np.tanh(u)
    ulp = np.abs(got - want) / np.spacing(np.abs(want))
    assert ulp.max() <= 8, ulp.max()  # measured 7, near saturation (|u| ~ 10 to 18)
    assert np.median(ulp) == 0
    assert np.array_equal(got, -np.asarray(f(-u)))  # odd
    special = np.asarray(f(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 20.0, -1e300])))
    assert special[0] == 0 and not np.signbit(special[0]) and np.signbit(special[1])
    assert list(special[2:4]) == [1.0, -1.0] and np.isnan(special[4])  # NaN stays NaN: retires the pixel
    assert list(special[5:]) == [1.0, -1.0]
    # on the CPU it is the bits jnp.tanh gives, so frames kept their values
    if jax.devices()[0].platform == "cpu":
        assert np.array_equal(got.view(np.int64), np.asarray(jax.jit(jnp.tanh)(u)).view(np.int64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["tanh", "minibatch"])
def test_every_product_asks_for_full_precision(name, dtype):
    """No product may run in TF32 or bfloat16, which JAX's default allows on a GPU or TPU.

    The CPU computes every product in full precision whatever is asked, so the
    request itself is what is checked: each dot of the jitted segment, scan
    body included, carries Precision.HIGHEST for both operands.
    """
    import jax

    model = CONDITIONS[name]
    B, seg = 8, 3
    A = engine.arithmetic(dtype)
    form = engine.formulation.get("network", "xla")
    state = form.initial_state(model, np.zeros(B), A)
    lr = A.cast(np.ones(B))
    idx = form.schedule(model)
    idx = None if idx is None else idx[:seg]
    args = (state, lr, lr, np.full(B, np.nan, A.loss_dtype), form.consts(model, A), idx)

    def dots(jx):
        for eqn in jx.eqns:
            if eqn.primitive.name == "dot_general":
                yield eqn
            for v in eqn.params.values():
                for sub in (v if isinstance(v, (list, tuple)) else [v]):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        yield from dots(inner)

    for stop in (False, True):  # both forms of the segment: fixed steps, and stopping early
        fn = form.segment(model, A, B, seg, stop)
        found = list(dots(jax.make_jaxpr(fn)(*args).jaxpr))
        assert len(found) >= 4, len(found)  # forward, output, and the two gradient products
        for eqn in found:
            assert eqn.params["precision"] == (jax.lax.Precision.HIGHEST,) * 2, eqn


def test_reference_draws_are_pinned():
    """Seed 0 gives the reference's first numbers (JAX threefry, 64-bit draws)."""
    d = engine.draws(Model())
    assert d.w0.shape == (16, 16) and d.w1.shape == (16, 1)
    assert d.x.shape == (272, 16) and d.y.shape == (272, 1)
    np.testing.assert_allclose(d.w0[0, :3], [-0.04697555, -1.50764285, 0.78984226], atol=1e-8)
    assert Model(nonlinearity="identity").n_points == 16
    assert Model(dataset="single").n_points == 1


def test_draws_kept_on_disk_are_the_draws(tmp_path, monkeypatch):
    """Draws read back from the cache folder are the bits JAX draws; a damaged file is drawn again."""
    import jax

    from zoomreel.engine import config
    from zoomreel.engine import randoms as draws

    args = (16, 272, 0, 40, 16)  # a minibatch model: its indices are kept too
    with jax.threefry_partitionable(True):
        monkeypatch.setattr(config, "cache_folder", lambda: None)
        fresh = draws.load_or_draw(*args)
        monkeypatch.setattr(config, "cache_folder", lambda: str(tmp_path))
        first = draws.load_or_draw(*args)  # drawn, and written
        (kept,) = (tmp_path / "draws").iterdir()
        real = draws.draw

        def no_drawing(*a):
            raise AssertionError("drew again instead of reading the kept draws")

        monkeypatch.setattr(draws, "draw", no_drawing)
        again = draws.load_or_draw(*args)  # read back
        monkeypatch.setattr(draws, "draw", real)
        kept.write_bytes(kept.read_bytes()[:300])  # damaged: cut short
        mended = draws.load_or_draw(*args)
    for got in (first, again, mended):
        for a, b in zip(fresh, got):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert [p.name for p in (tmp_path / "draws").iterdir()] == [kept.name]  # replaced, no temp left
    assert np.load(kept)["idx"].shape == (40, 16)


def test_standard_view_phases():
    """Paper: at the standard view, low output lr converges and high output lr diverges."""
    model = Model(steps=60)
    hx = 10.0 ** np.array([0.0, 2.0, 4.0])
    lo = engine.train(model, hx, np.full(3, 10.0**-2), "float64").values
    hi = engine.train(model, hx, np.full(3, 10.0**5), "float64").values
    assert (lo < 0).all() and (hi > 0).all()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.slow
def test_early_exit_changes_no_value(name, dtype, impl):
    """Retiring NaN pixels and pixels past RETIRE_V leaves every value bit-for-bit equal."""
    if not native_or_asked(impl):
        pytest.skip(f"{impl} runs natively only on a GPU (ZOOMREEL_TEST_INTERPRET=1 runs it here)")
    model = dataclasses.replace(CONDITIONS[name], steps=80)
    hx, hy = grid(model, k=12)
    if model.plane == "init-lr":
        hy = 10.0 ** np.linspace(-1, 3, 12)  # reach the diverging learning rates
    HX, HY = np.meshgrid(hx, hy)
    res = engine.train(model, HX.ravel(), HY.ravel(), dtype, early_exit=True, impl=impl)
    b = engine.train(model, HX.ravel(), HY.ravel(), dtype, early_exit=False, impl=impl).values
    full = HX.size * model.steps
    assert (b > 0).sum() > 5, name  # diverged pixels exist, so something was retired
    assert res.computed < full, name
    np.testing.assert_array_equal(res.values, b)


def test_loss_rule_retires_pixels_before_they_overflow():
    """In float64 a diverging pixel takes long to reach NaN; the RETIRE_V rule stops it sooner."""
    model = Model(steps=80)
    hx = 10.0 ** np.linspace(-1, 5, 40)
    hy = 10.0 ** np.linspace(1, 4, 40)
    res = engine.train(model, hx, hy, "float64")
    b = engine.train(model, hx, hy, "float64", early_exit=False).values
    assert res.retired_by_rule > 5
    np.testing.assert_array_equal(res.values, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.slow
def test_a_pixel_is_the_same_in_any_chunk(name, dtype):
    """A pixel's value does not depend on how many pixels share its chunk.

    The chunk size changes with the frame and, as pixels retire, during a frame
    (down to 8 pixels), so the same run must give the same bits in a chunk of 8
    or of 64.
    """
    import jax

    if jax.devices()[0].platform != "cpu":  # CI is a CPU; see docs/science.md
        pytest.skip("a CPU property: GPU libraries pick a product's kernel, so its order of summation, by its size")
    model = CONDITIONS[name]
    hx, hy = grid(model, k=6)
    HX, HY = (a.ravel() for a in np.meshgrid(hx, hy))
    values = [engine.train(model, HX, HY, dtype, chunk=c, early_exit=False).values for c in (8, 64)]
    for other in values[1:]:
        np.testing.assert_array_equal(values[0], other)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.slow
def test_a_chunk_of_blown_up_pixels_stops_inside_its_segment(dtype):
    """A chunk whose every loss is past RETIRE_V or NaN stops at once, values unchanged.

    Sixteen pixels with large learning rates blow up within a few steps: they
    train fewer steps than one segment. With one converging pixel among them the
    chunk must run on (that pixel needs every step), and the others retire at
    the segment's end as before.
    """
    model = Model(steps=80)
    big = 10.0 ** np.linspace(4, 5, 16)
    res = engine.train(model, big, big[::-1].copy(), dtype, chunk=16)
    b = engine.train(model, big, big[::-1].copy(), dtype, chunk=16, early_exit=False).values
    assert (res.values > 0).all()
    assert res.computed < 16 * engine.SEGMENT_STEPS, res
    np.testing.assert_array_equal(res.values, b)

    mixed_x, mixed_y = big.copy(), big[::-1].copy()
    mixed_x[5], mixed_y[5] = 1.0, 1e-2  # converges
    res = engine.train(model, mixed_x, mixed_y, dtype, chunk=16)
    b = engine.train(model, mixed_x, mixed_y, dtype, chunk=16, early_exit=False).values
    a = res.values
    assert a[5] < 0 and (np.delete(a, 5) > 0).all()
    assert res.computed == 16 * engine.SEGMENT_STEPS + (80 - engine.SEGMENT_STEPS), res
    np.testing.assert_array_equal(a, b)


def test_same_input_same_bits():
    model = Model(steps=30)
    hx = 10.0 ** np.linspace(0, 4, 50)
    a = engine.train(model, hx, hx[::-1].copy(), "float64").values
    b = engine.train(model, hx, hx[::-1].copy(), "float64").values
    assert np.array_equal(a, b)


def test_measure_matches_reference_measure():
    rng = np.random.default_rng(1)
    L = np.abs(rng.normal(size=(50, 30))) * np.exp(rng.normal(size=(50, 1)) * 3)
    L[10:, 3] = np.inf
    L[30:, 4] = np.nan
    got = engine.network_measure(L)
    want = [ref.measure(L[:, i]) for i in range(L.shape[1])]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_measure_kept_step_by_step_is_the_measure_of_the_whole_record():
    """The engine sums the measure as losses arrive; it must equal network_measure bit for bit.

    Losses arrive in segments for scattered pixels, some pixels are retired
    part-way (their record is NaN from then on), and the record holds the
    awkward values: NaN, inf, zero first losses, losses past the cap.
    """
    rng = np.random.default_rng(7)
    T, N = 130, 300
    record = np.exp(rng.normal(0, 4, (T, N))).cumprod(axis=0) ** 0.05
    record[:, ::7] = np.exp(-0.05 * np.arange(T))[:, None]  # converging pixels
    record[40:, 3::11] = np.inf
    record[60:, 5::13] = np.nan
    record[0, 9::17] = 0.0
    retired_at = np.where(rng.random(N) < 0.3, rng.integers(1, T // 25 + 1, N) * 25, T)
    for p in range(N):
        record[retired_at[p] :, p] = np.nan
    m = engine.measure.NetworkMeasure(T, N)
    for t in range(0, T, 25):
        seg = min(25, T - t)
        for ids in np.array_split(rng.permutation(np.flatnonzero(retired_at > t)), 3):
            m.add(t, ids, record[t : t + seg, ids])
        m.retire(np.flatnonzero(retired_at == t + seg), t + seg)
    want = engine.network_measure(record)
    assert (want < 0).sum() > 20 and (want > 0).sum() > 20
    np.testing.assert_array_equal(m.result(), want)
