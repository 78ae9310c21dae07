"""Measured precision, and `zoomreel frame` end to end."""

import os
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest

from zoomreel import engine, path, precision
from zoomreel.errors import UserError
from zoomreel.model import Model

BOUNDARY = (Decimal("2.5"), Decimal("2.1298"))


def test_auto_picks_float32_on_a_shallow_view():
    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (32, 32))
    d = precision.decide(Model(steps=60), view)
    assert d.dtype == "float32" and d.resolved >= precision.MIN_AGREEMENT


def test_auto_picks_float64_on_a_deep_view():
    # the boundary point is the paper's for 100 steps
    view = path.View(BOUNDARY, Decimal("1e-4"), (32, 32))
    d = precision.decide(Model(steps=100), view)
    assert d.dtype == "float64"
    assert d.f32_agreement is None or d.f32_agreement < precision.MIN_AGREEMENT
    assert 0.5 <= d.resolved <= 1.0


def test_past_double_double_is_an_error_naming_the_deepest_span():
    model = Model(steps=20)
    view = path.View(BOUNDARY, Decimal("1e-32"), (32, 32))
    with pytest.raises(UserError) as e:
        precision.decide(model, view)
    line = e.value.line()
    assert "deepest span" in line and "equal in dd" in line
    deep = precision.deepest_span(model, view)
    assert 1e-32 < deep < 1e-29 and f"{deep:.2g}" in line
    # and the span it names really works, in dd and not in float64
    ok = path.View(BOUNDARY, Decimal(repr(deep)), (32, 32))
    hx, hy = path.hyper_axes(model, ok, engine.DD)
    precision.check_representable(model, ok, hx, hy, "x")
    fx, fy = path.hyper_axes(model, ok, engine.FLOAT64)
    with pytest.raises(UserError):
        precision.check_representable(model, ok, fx, fy, "x", engine.FLOAT64)
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


@pytest.mark.parametrize("size, k", [((16, 16), 256), ((48, 48), 256), ((64, 64), 256), ((128, 128), 256),
                                     ((256, 256), 1024), ((480, 270), 1024), ((1920, 1080), 1024)])
def test_probe_is_never_smaller_than_calibrated_and_a_small_share_of_big_frames(size, k):
    idx = precision.probe_indices(size)
    npix = size[0] * size[1]
    # at least the 256 pixels every calibration frame had (or the whole frame),
    # distinct pixels of this frame, and at most 1/64 of any frame from 128x128 up
    assert idx.size == k
    assert np.unique(idx).size == k and idx.min() >= 0 and idx.max() < npix
    if npix >= 128 * 128:
        assert k <= npix / 64


@pytest.mark.parametrize("span, dtype", [("3", "float32"), ("1e-4", "float64")])
def test_probe_pixels_are_trained_once_and_the_frame_keeps_its_bits(span, dtype, write_scene, monkeypatch):
    from zoomreel import engine, render, scene

    s = scene.load(write_scene(steps=100, w=32, h=32))
    view = path.View(BOUNDARY, Decimal(span), (32, 32))
    trained = []
    real_train = engine.train
    monkeypatch.setattr(engine, "train", lambda m, hx, hy, d, **kw: trained.append((hx.shape[0], engine.arithmetic(d).name)) or real_train(m, hx, hy, d, **kw))
    done = []
    res = render.compute_frame(s, view, "auto", on_progress=done.append)
    assert res.decision.dtype == dtype
    k = res.decision.probe_pixels
    # the frame trains only the pixels the probe has not trained in its dtype
    assert trained[-1] == (32 * 32 - k, dtype)
    assert sum(done) == 32 * 32 * 100  # progress still counts every pixel
    # and every pixel has the bits it gets when the whole view is trained at once
    whole = render.train_view(s.model, view, dtype)
    assert np.array_equal(res.raw, whole)


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
