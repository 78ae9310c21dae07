"""Perturbation: every pixel a float64 difference from one reference trained in many digits.

Checked against direct float64 training where float64 resolves the frame
(every condition, class of every pixel), against mpmath at a span of 1e-40
(pixels of both classes), and with a constructed glitch: a reference chosen
where the frame's converged pixels cannot follow it.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal, localcontext

import mpmath
import numpy as np
import pytest

import reference_mp
from zoomreel import engine, path
from zoomreel.engine import LAST, V_CAP, draws, perturb, reference
from zoomreel.model import Model
from zoomreel.view import View


def small(**kw) -> Model:
    return Model(width=8, steps=40, **kw)


# Every condition of the paper on a small network, with a point near its
# boundary (the brackets of tests/test_dd_boundary.py).
CONDITIONS = {
    "tanh": (small(seed=0), ("1.0", "1.6516728947948")),
    "relu": (small(nonlinearity="relu", seed=1), ("0.5", "1.4281035")),
    "identity": (small(nonlinearity="identity"), ("0.5", "1.5091535")),
    "single": (small(dataset="single"), ("0.5", "1.4315365")),
    "minibatch": (small(batch=16), ("0.5", "1.4380105")),
    "init-lr": (small(plane="init-lr"), ("0.5", "1.3919545")),
}


@pytest.mark.parametrize("condition", [c if c == "tanh" else pytest.param(c, marks=pytest.mark.slow) for c in CONDITIONS])
def test_difference_form_gives_float64s_classes_where_float64_resolves(condition):
    # Span 1e-6 at 12 x 12: float64 resolves these frames (docs/precision.md),
    # and both classes are in each. The values agree to float64's own
    # chaos-amplified rounding; the class of every pixel is the same.
    model, c = CONDITIONS[condition]
    view = View((Decimal(c[0]), Decimal(c[1])), Decimal("1e-6"), (12, 12))
    hx, hy = path.pixel_hypers(model, view, engine.FLOAT64)
    direct = engine.train(model, hx, hy, "float64").values
    res = perturb.train_view(model, view)
    assert (direct > 0).any() and (direct < 0).any()
    np.testing.assert_array_equal(res.values > 0, direct > 0)
    assert res.by_dd == 0  # glitched pixels (where the centre's run diverged) were redone by perturbation


def mp_values(model: Model, x: Decimal, y: Decimal, dps: int) -> tuple[bool, float]:
    """(diverged, measure) of one pixel by mpmath at ``dps`` digits."""
    with localcontext(prec=dps + 20):
        hx, hy = str(Decimal(10) ** x), str(Decimal(10) ** y)
    losses = reference_mp.losses(model, draws(model), hx, hy, model.steps, dps=dps)
    with mpmath.workdps(dps):
        cap = mpmath.mpf(V_CAP)
        v = [min(loss / losses[0], cap) if mpmath.isfinite(loss) else cap for loss in losses]
        diverged = not sum(v[-LAST:]) / LAST < 1
        return diverged, float(sum(1 / u for u in v) if diverged else -sum(v))


# A point of the tanh boundary of the small network to 52 digits (found by
# bisecting with perturbation in columns of 17 pixels down to 1e-52): along
# x = 1 the run converges below it and diverges above it.
DEEP = (Decimal("1.0"), Decimal("1.651672894794823626645064592917407680979947145598525"))


@pytest.mark.slow
def test_perturbation_matches_mpmath_at_span_1e_40():
    model = CONDITIONS["tanh"][0]
    view = View(DEEP, Decimal("1e-40"), (1, 8))  # one column, pixels 1e-40 apart
    res = perturb.train_view(model, view)
    got = res.values > 0
    assert list(got) == [False] * 4 + [True] * 4, res.values
    xs, ys = path.axis_coords(view)
    for i in (2, 3, 4, 5):  # two of each class, next to the boundary
        diverged, value = mp_values(model, xs[0], ys[i], 70)
        assert diverged == got[i]
        assert res.values[i] == pytest.approx(value, rel=1e-12)


def test_a_glitch_is_detected_and_redone():
    # The reference put far up in the diverging phase: it blows up and is
    # retired while the frame's converged pixels are still training, so
    # their differences from it stop meaning anything. They must be flagged,
    # trained again from a reference among them, and come out as float64
    # has them.
    model, c = CONDITIONS["tanh"]
    view = View((Decimal(c[0]), Decimal(c[1])), Decimal("1e-6"), (8, 8))
    hx, hy = path.pixel_hypers(model, view, engine.FLOAT64)
    direct = engine.train(model, hx, hy, "float64").values
    far = (Decimal(c[0]), Decimal(c[1]) + Decimal("0.5"))
    prec = perturb._prec(view)
    digits = reference.digits_needed(perturb._finest(model, view), model.steps)
    ref = perturb.orbit(model, *far, digits, prec)
    assert ref.valid < model.steps  # the reference was retired
    xs, ys = path.axis_coords(view, prec)
    da = perturb._offsets([perturb._hyper(xs[i % 8], True, prec) for i in range(64)], perturb._hyper(far[0], True, prec), prec)
    db = perturb._offsets([perturb._hyper(ys[i // 8], True, prec) for i in range(64)], perturb._hyper(far[1], True, prec), prec)
    glitched = perturb.train_offsets(model, ref, da, db)[1]
    assert glitched[direct < 0].all()  # every converged pixel was caught
    # The view from that reference: the lattice's one pixel (one 8 x 8 cell)
    # glitches and a new reference goes there; every other pixel starts from
    # that one, so it alone is redone, and the frame has float64's classes.
    res = perturb.train_view(model, view, reference_at=far)
    assert res.references == 2 and res.glitched.sum() == 1
    np.testing.assert_array_equal(res.values > 0, direct > 0)


@pytest.mark.slow
def test_the_glitch_test_flags_every_pixel_a_far_reference_gets_wrong():
    # A reference that diverges but is not retired, 0.1 above a frame of
    # span 1e-15: the pixels' differences from it are large, and float64
    # rounds them coarser than the pixels are apart, so some pixels come
    # out in the wrong class (against dd). The ratio test flags each of them.
    model = CONDITIONS["tanh"][0]
    view = View(DEEP, Decimal("1e-15"), (8, 8))
    far = (DEEP[0], DEEP[1] + Decimal("0.1"))
    ref = perturb.orbit(model, *far, 40, 120)
    assert ref.valid == model.steps
    xs, ys = path.axis_coords(view)
    with localcontext(prec=80):
        da = np.array([float(Decimal(10) ** x - Decimal(10) ** far[0]) for x in xs] * 8)
        db = np.repeat([float(Decimal(10) ** y - Decimal(10) ** far[1]) for y in ys], 8)
    values, glitched, _, _ = perturb.train_offsets(model, ref, da, db)
    hx, hy = path.pixel_hypers(model, view, engine.DD)
    dd = engine.train(model, hx, hy, engine.DD).values
    assert (dd > 0).any() and (dd < 0).any()
    wrong = (values > 0) != (dd > 0)
    assert wrong.any() and glitched[wrong].all()
    # and from the frame's own reference (its centre) every pixel is dd's
    np.testing.assert_array_equal(perturb.train_view(model, view).values > 0, dd > 0)


MANDELBROT = Model(kind="mandelbrot", steps=1000)
SEAHORSE = (Decimal("-0.743643887037158704752191506114774"), Decimal("0.131825904205311970493132056385139"))


def test_mandelbrot_perturbation_matches_direct_float64():
    # Near Seahorse Valley at span 1e-6 the escaping points take 390 to 1000
    # iterations: chaotic, so float64's own rounding (XLA contracts z*z + c
    # into fused multiply-adds) moves escape times by up to 1e-4 relative, as
    # tests/test_mandelbrot.py measures for direct training too.
    view = View(SEAHORSE, Decimal("1e-6"), (24, 16))
    hx, hy = path.pixel_hypers(MANDELBROT, view, engine.FLOAT64)
    direct = engine.train(MANDELBROT, hx, hy, "float64").values
    res = perturb.train_view(MANDELBROT, view)
    assert (direct > 0).sum() > 30 and (direct < 0).sum() > 30
    assert np.mean((res.values > 0) == (direct > 0)) >= 0.99
    both = (direct > 0) & (res.values > 0)
    np.testing.assert_allclose(res.values[both], direct[both], rtol=1e-3)


def test_mandelbrot_perturbation_matches_mpmath_at_span_1e_40():
    # around the Misiurewicz point c = i every pixel escapes, each at its own time
    model = Model(kind="mandelbrot", steps=200)
    view = View((Decimal(0), Decimal(1)), Decimal("1e-40"), (6, 4))
    res = perturb.train_view(model, view)
    raw = res.values.reshape(4, 6)
    assert np.all(raw > 0)
    assert np.all(np.diff(raw, axis=1) != 0)
    xs, ys = path.axis_coords(view)
    for i in (0, 3):
        for j in (0, 5):
            smooth = reference_mp.mandelbrot_smooth(xs[j], ys[i], model.steps, 70)
            assert raw[i, j] == pytest.approx(smooth, rel=1e-9), (i, j)


def test_supported_models():
    assert perturb.supports(Model()) and perturb.supports(Model(kind="mandelbrot"))
    assert perturb.supports(Model(nonlinearity="relu", plane="init-lr", batch=16))

    class WithOptimizer:  # a model of a kind this room does not know (another optimizer)
        kind, nonlinearity, plane, optimizer = "network", "tanh", "lr-lr", "adam"

    assert not perturb.supports(WithOptimizer())


DEEP_SCENE = """
[model]
nonlinearity = "tanh"
width = 8
steps = 40
seed = 0
[video]
size = [16, 16]
precision = "{precision}"
{extra}
[[keyframe]]
time = 0.0
center = ["{x}", "{y}"]
span = {span}
"""


def test_a_frame_past_float64_is_perturbed_and_says_how_much_was_redone(tmp_path):
    import subprocess
    import sys

    toml = tmp_path / "deep.toml"
    toml.write_text(DEEP_SCENE.format(precision="auto", extra="", x=DEEP[0], y=DEEP[1], span="1e-40"))
    npy = tmp_path / "deep.npy"
    done = subprocess.run([sys.executable, "-m", "zoomreel", "frame", str(toml), "--time", "0", "--npy", str(npy)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert " perturb resolved " in done.stdout and " redone 0.0% " in done.stdout, done.stdout
    raw = np.load(npy)
    assert (raw < 0).any() and (raw > 0).any()
    # the probe's pixels and the rest, trained apart, are the frame trained at once, bit for bit
    whole = perturb.train_view(CONDITIONS["tanh"][0], View(DEEP, Decimal("1e-40"), (16, 16))).values
    np.testing.assert_array_equal(raw.ravel(), whole)


@pytest.mark.slow
def test_pyramid_tiles_by_perturbation(tmp_path):
    from zoomreel import plan as plan_
    from zoomreel import scene, work

    toml = tmp_path / "p.toml"
    toml.write_text(DEEP_SCENE.format(precision="perturb", extra='mode = "pyramid"', x=DEEP[0], y=DEEP[1],
                                      span="1e-9"))
    plan = plan_.make_plan(scene.load(toml), out=tmp_path / "o")
    tiles = work.train_tiles(plan, None)
    assert tiles.trained >= 1
    for t in plan.tiles():
        got = tiles.units.fetch(t)
        assert got.record["dtype"] == "perturb" and got.record["decision"]["redone"] is not None
        f64 = work.train_view(plan.scene.model, t.view(), "float64").raw
        assert np.mean((got.raw > 0) == (f64 > 0)) >= 0.99


@pytest.mark.parametrize("model", [Model(kind="mandelbrot", steps=60), small(seed=0)], ids=["mandelbrot", "network"])
def test_a_reference_is_kept_and_read_back_whole(model, tmp_path, monkeypatch):
    """A reference orbit is trained once: the next process (or a resumed
    frame) reads it back with the same bits; a damaged file is trained again
    and replaced, never read."""
    from zoomreel.engine import config, reference

    monkeypatch.setattr(config, "cache_folder", lambda: str(tmp_path))
    point = (Decimal("-0.75"), Decimal("0.1")) if model.kind == "mandelbrot" else (Decimal("1.0"), Decimal("1.65"))
    perturb._orbit.cache_clear()
    first = perturb.orbit(model, *point, 30)
    files = list((tmp_path / "references").glob("*.npz"))
    assert len(files) == 1

    def untrainable(*a, **k):
        raise AssertionError("the kept reference was trained again")

    perturb._orbit.cache_clear()
    monkeypatch.setattr(reference, "mandelbrot_orbit", untrainable)
    monkeypatch.setattr(reference, "network_orbit", untrainable)
    again = perturb.orbit(model, *point, 30)
    for f in dataclasses.fields(first):
        np.testing.assert_array_equal(getattr(again, f.name), getattr(first, f.name))
        assert type(getattr(again, f.name)) is type(getattr(first, f.name)) or isinstance(getattr(first, f.name), np.ndarray)

    files[0].write_bytes(files[0].read_bytes()[:100])  # a torn file
    monkeypatch.undo()
    monkeypatch.setattr(config, "cache_folder", lambda: str(tmp_path))
    perturb._orbit.cache_clear()
    mended = perturb.orbit(model, *point, 30)
    for f in dataclasses.fields(first):
        np.testing.assert_array_equal(getattr(mended, f.name), getattr(first, f.name))
    assert perturb._read_orbit(type(first), str(files[0]), model.steps) is not None  # replaced whole
    other = perturb.orbit(model, point[0], point[1] + Decimal("1e-20"), 30)  # another point: its own file
    assert len(list((tmp_path / "references").glob("*.npz"))) == 2 and other is not mended
    perturb._orbit.cache_clear()


def test_a_pixel_whose_class_quantity_moves_under_the_nudge_is_counted_undetermined(monkeypatch):
    """A pixel that parts from its reference in a chaotic stretch keeps its
    class under the nudge by chance while the quantity its class is read
    from (the mean of its last values of v_t, against 1) moves
    (docs/precision.md, "Parting in a chaotic stretch"): the frame's
    resolved share counts it as undetermined, and the warning says so."""
    from zoomreel import precision

    model = CONDITIONS["tanh"][0]
    view = View(DEEP, Decimal("1e-40"), (16, 16))
    real = perturb.train_view
    moved = np.arange(256) % 4 == 0  # a quarter of the frame: margins moved by 1 % of themselves, classes kept

    def chaotic(model, view, indices=None, nudge=0, on_progress=None, reference_at=None):
        res = real(model, view, indices, nudge, on_progress, reference_at)
        if not nudge:
            return res
        m = res.margin
        return dataclasses.replace(res, margin=np.where(moved[indices], m * 1.01, m))

    res = real(model, view)
    c = res.values < 0
    assert c.any() and (~c).any()
    # converged pixels and the diverged ones that were not capped carry their margin, its sign their class
    assert np.isfinite(res.margin[c]).all() and (res.margin[c] < 0).all()
    assert (res.margin[~c & np.isfinite(res.margin)] >= 0).all()
    honest = precision.decide(model, view)
    assert honest.dtype == "perturb" and honest.resolved == 1.0 and honest.warning is None
    monkeypatch.setattr(perturb, "train_view", chaotic)
    d = precision.decide(model, view)
    carried = np.isfinite(res.margin)
    assert d.resolved == pytest.approx(1 - np.mean(moved & carried)) and d.resolved < 0.9
    assert "undetermined" in d.warning
