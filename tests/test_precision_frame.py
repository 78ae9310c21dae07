"""Measured precision, and `zoomreel frame` end to end."""

import os
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest

from zoomreel import engine, path, precision, preflight
from zoomreel.errors import UserError
from zoomreel.model import Model

BOUNDARY = (Decimal("2.5"), Decimal("2.1298"))


def whole_frame(model, view, nudged=False):
    """Every pixel of the view in each arithmetic (and in float64 nudged as the probe nudges)."""
    out = {}
    for A in (engine.FLOAT32, engine.FLOAT64):
        hx, hy = path.pixel_hypers(model, view, A)
        out[A.name] = engine.train(model, hx, hy, A).values
    n = precision.NUDGE_ULP
    if nudged:
        out["nudged"] = engine.train(model, engine.FLOAT64.nudge(hx, n), engine.FLOAT64.nudge(hy, n), engine.FLOAT64).values
    return out


@pytest.mark.slow
def test_auto_picks_float32_on_a_shallow_view():
    model = Model(steps=60)
    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (32, 32))
    d = precision.decide(model, view)
    assert d.dtype == "float32"
    # the probe was right: over the whole frame float32 and float64 agree as well as required
    v = whole_frame(model, view)
    whole = precision.agreement(v["float32"], v["float64"])
    assert whole >= precision.MIN_AGREEMENT
    assert abs(d.resolved - whole) < 0.02


@pytest.mark.slow
def test_auto_picks_float64_on_a_deep_view():
    # the boundary point is the paper's for 100 steps
    model = Model(steps=100)
    view = path.View(BOUNDARY, Decimal("1e-4"), (32, 32))
    d = precision.decide(model, view)
    assert d.dtype == "float64"
    # the probe was right: over the whole frame float32 really disagrees with
    # float64, and the probe's two measures are close to the whole frame's
    v = whole_frame(model, view, nudged=True)
    f32 = precision.agreement(v["float32"], v["float64"])
    assert f32 < precision.MIN_AGREEMENT
    assert abs(d.agreements["float32"] - f32) < 0.1
    # a float64 frame's resolved % is its agreement with itself nudged
    assert abs(d.resolved - precision.agreement(v["nudged"], v["float64"])) < 0.05


def test_past_double_double_auto_perturbs_and_a_forced_dd_names_the_deepest_span():
    model = Model(steps=20)
    view = path.View(BOUNDARY, Decimal("1e-32"), (32, 32))
    assert precision.decide(model, view).dtype == "perturb"
    with pytest.raises(UserError) as e:
        precision.decide(model, view, "dd")
    line = e.value.line()
    assert "deepest span" in line and "equal in dd" in line
    deep = preflight.deepest_span(model, view)
    assert 1e-32 < deep < 1e-29 and f"{deep:.2g}" in line
    # and the span it names really works, in dd and not in float64
    ok = path.View(BOUNDARY, Decimal(repr(deep)), (32, 32))
    preflight.check_view(model, ok, "x", engine.DD)
    with pytest.raises(UserError):
        preflight.check_view(model, ok, "x", engine.FLOAT64)
    # a forced float64 past its depth names the arithmetic that can
    with pytest.raises(UserError) as e:
        precision.decide(model, path.View(BOUNDARY, Decimal("1e-16"), (32, 32)), "float64")
    assert '"dd"' in e.value.line()


def test_forced_precision_is_honoured(monkeypatch):
    from zoomreel import engine

    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (16, 16))
    dtypes = []
    real_train = engine.train
    monkeypatch.setattr(engine, "train", lambda m, hx, hy, d, **kw: dtypes.append(engine.arithmetic(d).name) or real_train(m, hx, hy, d, **kw))
    assert precision.decide(Model(steps=30), view, "float64").dtype == "float64"
    assert dtypes == ["float64", "float64"]  # the probe and its nudged copy; no float32 run for a forced float64
    deep = path.View(BOUNDARY, Decimal("1e-9"), (16, 16))
    dtypes.clear()
    with pytest.raises(UserError):  # float32 cannot separate these pixels
        precision.decide(Model(steps=30), deep, "float32")
    assert dtypes == []  # refused before training anything


@pytest.mark.parametrize("size", [(16, 16), (48, 48), (64, 64), (128, 128), (256, 256), (480, 270), (1920, 1080)])
def test_probe_is_never_smaller_than_calibrated_and_a_small_share_of_big_frames(size):
    idx = precision.probe_indices(size)
    npix = size[0] * size[1]
    # distinct pixels of this frame, the same ones every time (a resumed frame
    # probes what its first run probed)
    assert np.unique(idx).size == idx.size and idx.min() >= 0 and idx.max() < npix
    assert np.array_equal(idx, precision.probe_indices(size))
    # at least the 256 pixels every calibration frame had (or the whole frame),
    # at most 1024, and at most 1/64 of any frame from 128x128 up
    assert min(256, npix) <= idx.size <= 1024
    if npix >= 128 * 128:
        assert idx.size <= npix / 64
    if 128 * 128 <= npix <= 256 * 256:
        assert idx.size == npix // 64  # docs/precision.md: exactly 1/64 there


@pytest.mark.parametrize("span, dtype", [("3", "float32"), ("1e-4", "float64")])
@pytest.mark.slow
def test_probe_pixels_are_trained_once_and_the_frame_keeps_its_bits(span, dtype, write_scene, monkeypatch):
    from zoomreel import engine, scene, training, work

    s = scene.load(write_scene(steps=100, w=32, h=32))
    view = path.View(BOUNDARY, Decimal(span), (32, 32))
    trained = []
    real_train = engine.train
    monkeypatch.setattr(engine, "train", lambda m, hx, hy, d, **kw: trained.append((hx.shape[0], engine.arithmetic(d).name)) or real_train(m, hx, hy, d, **kw))
    done = []
    res = work.train_view(s.model, view, "auto", on_progress=done.append)
    assert res.decision.dtype == dtype
    k = res.decision.probe_pixels
    # the frame trains only the pixels the probe has not trained in its dtype
    assert trained[-1] == (32 * 32 - k, dtype)
    assert sum(done) == 32 * 32 * 100  # progress still counts every pixel
    # and every pixel has the bits it gets when the whole view is trained at once
    whole = training.train_pixels(s.model, view, dtype)
    assert np.array_equal(res.raw, whole)


@pytest.mark.slow
def test_frame_command_writes_png_npy_and_summary(tmp_path, write_scene):
    p = write_scene(steps=40, w=32, h=24)
    png, npy = tmp_path / "f.png", tmp_path / "f.npy"
    r = subprocess.run(
        [sys.executable, "-m", "zoomreel", "frame", str(p), "--time", "0", "--size", "24x16", "--png", str(png), "--npy", str(npy)],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert "float32" in line or "float64" in line
    assert "resolved" in line and "pixel-steps/s" in line and "24x16" in line
    raw = np.load(npy)
    assert raw.shape == (16, 24) and raw.dtype == np.float64
    # row 0 is the lowest output learning rate: converged; the top row diverged
    assert (raw[0] < 0).mean() > 0.9 and (raw[-1] > 0).mean() > 0.9
    from PIL import Image

    img = np.asarray(Image.open(png))
    assert img.shape == (16, 24, 3)
    # drawn as a plot: converged (cool, blue > red) at the bottom, diverged (warm) at the top
    assert img[-1, :, 2].mean() > img[-1, :, 0].mean()
    assert img[0, :, 0].mean() > img[0, :, 2].mean()


def test_the_precision_names_are_the_engines_arithmetics():
    from zoomreel import precision_names, scene

    # one source: what a keyframe file may ask for is what the engine can train, cheapest first
    assert precision_names.ARITHMETICS == engine.arith.names()
    assert scene.PRECISIONS == ("auto",) + engine.arith.names() + ("perturb",)
    # the ladder's order is the arithmetics' stated ranks, and a rank is taken once
    assert [A.rank for A in engine.LADDER] == [0, 1, 2]
    with pytest.raises(ValueError):
        engine.arith.register(engine.arith.FloatArithmetic("float16", np.float16, rank=1))
    assert engine.arith.names() == precision_names.ARITHMETICS


@pytest.mark.slow
def test_compiled_programs_are_kept_between_runs_and_give_the_same_bits(tmp_path, write_scene):
    p = write_scene(steps=30, w=24, h=16)

    def frame(npy, **env):
        r = subprocess.run(
            [sys.executable, "-m", "zoomreel", "frame", str(p), "--time", "0.5", "--size", "24x16", "--npy", str(npy)],
            capture_output=True, text=True, env={**os.environ, **env},
        )
        assert r.returncode == 0, r.stderr
        return npy.read_bytes()

    cache = tmp_path / "jax"
    first = frame(tmp_path / "a.npy", ZOOMREEL_JAX_CACHE=str(cache))
    kept = sorted(cache.iterdir())
    assert kept, "the first run kept no compiled program"
    assert len(list((cache / "draws").iterdir())) == 1  # and the model's draws, read by the next run
    second = frame(tmp_path / "b.npy", ZOOMREEL_JAX_CACHE=str(cache))
    assert second == first  # programs loaded from the cache compute the same bits
    assert sorted(cache.iterdir()) == kept  # the second run compiled nothing new
    # off: nothing is written, not even to the default place
    frame(tmp_path / "c.npy", ZOOMREEL_JAX_CACHE="off", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert not (tmp_path / "xdg").exists()
    assert (tmp_path / "c.npy").read_bytes() == first
