"""kind = "mandelbrot": the classic fractal through the same pipeline, checked
against an independent escape-time implementation (tests/reference.py)."""

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

import reference as ref
from zoomreel import engine, path, precision, preflight, scene, training, work
from zoomreel import plan as plan_
from zoomreel.errors import UserError
from zoomreel.model import Model

MODEL = Model(kind="mandelbrot", steps=1000)
SEAHORSE = (Decimal("-0.743643887037158704752191506114774"), Decimal("0.131825904205311970493132056385139"))


def reference_frame(view, steps):
    xs, ys = path.hyper_axes(MODEL, view, engine.FLOAT64)
    esc = np.zeros((len(ys), len(xs)), dtype=bool)
    smooth = np.full(esc.shape, np.nan)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            e, s = ref.mandelbrot(x, y, steps)
            esc[i, j] = e
            if e:
                smooth[i, j] = s
    return esc, smooth


def test_known_points_inside_and_outside():
    inside = [(0.0, 0.0), (-1.0, 0.0), (-0.1, 0.1), (0.2, 0.0), (-1.0, 0.2), (-0.5, 0.5)]
    # main cardioid, period-2 bulb centre and edge region, and a cardioid point;
    # then points that escape (0.26 just past the cusp at 0.25 escapes slowly)
    outside = [(1.0, 0.0), (0.26, 0.0), (-2.1, 0.0), (0.0, 1.1), (0.5, 0.5), (-0.75, 0.2)]
    pts = np.array(inside + outside)
    for dtype in ("float32", "float64"):
        v = engine.train(MODEL, pts[:, 0], pts[:, 1], dtype).values
        assert np.all(v[: len(inside)] < 0), (dtype, v)
        assert np.all(v[len(inside) :] > 0), (dtype, v)
    # escape times: c = 1 escapes after 6 iterations (0, 1, 2, 5, 26, 677, 458330),
    # so smooth time = 6 + 1 - log2(log 458330)
    v = engine.train(MODEL, np.array([1.0]), np.array([0.0]), "float64").values
    assert v[0] == pytest.approx(7 - np.log2(np.log(458330.0)), rel=1e-12)


@pytest.mark.parametrize(
    "center,span",
    [((Decimal("-0.75"), Decimal(0)), Decimal(3)), ((Decimal("-0.7436"), Decimal("0.1318")), Decimal("0.01"))],
)
def test_frames_match_an_independent_escape_time(center, span):
    view = path.View(center, span, (40, 24))
    res = work.train_view(MODEL, view, "float64")
    esc, smooth = reference_frame(view, MODEL.steps)
    ours = res.raw > 0
    assert np.mean(ours == esc) >= 0.999
    # Escape times agree to rounding for points that escape within 100
    # iterations. Slower escapers sit at the boundary, where the map is chaotic:
    # XLA contracts z*z + c into fused multiply-adds, a last-bit difference that
    # hundreds of iterations amplify (measured: 33 of 938 escaped pixels at span
    # 0.01 differ by up to 1.4e-4 relative, all escaping after 300+ iterations;
    # a NumPy loop with the same real arithmetic differs from JAX the same way).
    fast = ours & esc & (smooth < 100)
    assert fast.sum() > 100
    np.testing.assert_allclose(res.raw[fast], smooth[fast], rtol=1e-9)
    slow = ours & esc & ~fast
    np.testing.assert_allclose(res.raw[slow], smooth[slow], rtol=1e-3)


def _scene(precision_mode="auto"):
    return scene.Scene(
        path=Path("m.toml"),
        title="m",
        model=MODEL,
        video=scene.Video(size=(40, 24), fps=4, precision=precision_mode),
        keyframes=(scene.Keyframe(Decimal(0), (Decimal("-0.75"), Decimal(0)), Decimal(3)),),
    )


def test_precision_policy_against_a_float64_reference():
    # shallow: float32 is enough, and auto takes it
    shallow = path.View((Decimal("-0.75"), Decimal(0)), Decimal(3), (48, 32))
    d = precision.decide(MODEL, shallow)
    assert d.dtype == "float32"
    esc, _ = reference_frame(shallow, MODEL.steps)
    assert np.mean((training.train_pixels(MODEL, shallow, "float32") > 0) == esc) >= 0.99

    # deep (span 1e-5 near Seahorse Valley): pixels are ~3.5 float32 ulps
    # apart; float32 visibly fails there, auto must go to float64
    deep = path.View(SEAHORSE, Decimal("1e-5"), (48, 32))
    esc, _ = reference_frame(deep, MODEL.steps)
    f32 = training.train_pixels(MODEL, deep, "float32") > 0
    assert np.mean(f32 == esc) < 0.99  # the failure auto has to avoid
    d = precision.decide(MODEL, deep)
    assert d.dtype == "float64"
    assert np.mean((training.train_pixels(MODEL, deep, d.dtype) > 0) == esc) >= 0.995

    # past double-double a forced dd is a clear error naming the deepest span (auto perturbs there)
    with pytest.raises(UserError) as e:
        precision.decide(MODEL, path.View(SEAHORSE, Decimal("1e-35"), (48, 32)), "dd")
    assert "deepest span" in e.value.line() and "equal in dd" in e.value.line()


def test_mandelbrot_takes_only_steps(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[model]\nkind = "mandelbrot"\nnonlinearity = "relu"\n[[keyframe]]\ntime = 0.0\ncenter = [0, 0]\nspan = 3\n')
    r = subprocess.run([sys.executable, "-m", "zoomreel", "info", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: 'nonlinearity' does not apply to the Mandelbrot set (m.toml:model.nonlinearity)")
    assert "Traceback" not in r.stderr


def test_shipped_mandelbrot_file_zooms_ten_decades_within_float64(tmp_path):
    s = scene.load(Path(__file__).parent.parent / "keyframes" / "mandelbrot.toml")
    assert s.model.kind == "mandelbrot"
    plan = plan_.make_plan(s, draft=True, out=tmp_path)
    first, last = plan.view(0), plan.view(plan.n_frames - 1)
    assert float((first.span / last.span).log10()) >= 10
    # the deepest frame still resolves in float64 at full size
    full = plan_.make_plan(s, draft=False, out=tmp_path).view(plan.n_frames - 1)
    assert preflight.deepest_span(s.model, full, engine.FLOAT64) < float(full.span)



@pytest.mark.parametrize("impl", [f.impl for f in engine.implementations("mandelbrot")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_early_exit_changes_no_mandelbrot_value(dtype, impl):
    """Escaped points retire at a segment's end; every value stays bit-for-bit equal."""
    model = Model(kind="mandelbrot", steps=120)
    view = path.View((Decimal("-0.75"), Decimal("0.1")), Decimal("2.6"), (24, 16))
    hx, hy = path.pixel_hypers(model, view, engine.arithmetic(dtype))
    res = engine.train(model, hx, hy, dtype, early_exit=True, impl=impl)
    full = engine.train(model, hx, hy, dtype, early_exit=False, impl=impl)
    assert full.computed == hx.size * model.steps
    # most points escape within the first segment, so early exit must skip work
    assert res.computed < full.computed / 2
    assert (full.values > 0).sum() > hx.size / 2 and (full.values < 0).sum() > 20
    np.testing.assert_array_equal(res.values, full.values)


def test_past_float64_dd_trains_and_matches_mpmath():
    """At a span of 1e-20 around the Misiurewicz point c = i (on the boundary
    at every scale), float64 cannot tell the pixels apart; dd (where auto
    would perturb) resolves the probe, every pixel escapes with its own
    smooth escape time, and those agree with an escape-time iteration in
    mpmath at 40 digits."""
    import reference_mp

    model = Model(kind="mandelbrot", steps=200)
    view = path.View((Decimal(0), Decimal(1)), Decimal("1e-20"), (8, 6))
    with pytest.raises(UserError):
        precision.decide(model, view, "float64")
    assert precision.decide(model, view).dtype == "perturb"
    res = work.train_view(model, view, "dd")
    d, raw = res.decision, res.raw
    assert d.dtype == "dd" and d.resolved >= 0.95
    assert np.all(raw > 0)  # all escape
    assert np.all(np.diff(raw, axis=1) != 0) and np.all(np.diff(raw, axis=0) != 0)  # neighbours differ
    xs, ys = path.axis_coords(view)
    for i in (0, 3, 5):
        for j in (0, 4, 7):
            smooth = reference_mp.mandelbrot_smooth(xs[j], ys[i], model.steps, 40)
            assert raw[i, j] == pytest.approx(smooth, rel=1e-9), (i, j)
