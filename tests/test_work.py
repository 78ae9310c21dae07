"""The work layer: one way to train a view, stopped on request, and a render
that reads each cached record once and holds one blending window of frames."""

from decimal import Decimal

import numpy as np
import pytest
from typer.testing import CliRunner

from zoomreel import engine, render, scene, work
from zoomreel.cache import Cache
from zoomreel.cancel import Cancelled
from zoomreel.cli import app
from zoomreel.model import Model
from zoomreel.plan import make_plan
from zoomreel.view import View

BOUNDARY = (Decimal("2.5"), Decimal("2.1298"))


def test_cancel_stops_the_precision_probe_and_writes_nothing(tmp_path, monkeypatch):
    """A superseded view stops inside its probe, before any pixel of the frame trains."""
    trained = []
    real = engine.train
    monkeypatch.setattr(engine, "train", lambda m, hx, hy, A, **kw: trained.append(hx.shape[0]) or real(m, hx, hy, A, **kw))
    cache = Cache(tmp_path / "c")
    with pytest.raises(Cancelled):  # superseded as soon as the probe has started
        work.train_view(Model(steps=40), View(BOUNDARY, Decimal("1"), (32, 32)), cache=cache,
                        cancel=lambda: len(trained) > 0)
    probe = 256  # the probe of a 32x32 view
    assert trained and set(trained) == {probe}  # stopped in the probe: the frame's pixels never trained
    assert not list((tmp_path / "c" / "frames").glob("*")) and not list((tmp_path / "c" / "decisions").glob("*"))


def test_cancel_stops_the_pixels_between_segments():
    done = []
    probe = 256 * 500  # the probe's pixels are reported first, as already trained
    with pytest.raises(Cancelled):
        work.train_view(Model(steps=500), View(BOUNDARY, Decimal("1"), (48, 48)), "float64",
                        on_progress=done.append, cancel=lambda: sum(done) > probe)
    assert probe < sum(done) < 48 * 48 * 500  # some segments of the frame ran, not all of them


def test_a_view_through_the_cache_is_trained_once(tmp_path):
    cache = Cache(tmp_path / "c")
    view, model = View(BOUNDARY, Decimal("1"), (16, 16)), Model(steps=30)
    first = work.train_view(model, view, cache=cache)
    again = work.train_view(model, view, cache=cache)
    assert not first.cached and again.cached
    assert np.array_equal(first.raw, again.raw) and again.decision == first.decision
    assert np.array_equal(work.train_view(model, view).raw, first.raw)  # the same bits without a cache


def _video(write_scene, tmp_path, frames=9):
    p = write_scene(steps=20, w=16, h=16, fps=4, t1=str((frames - 1) / 4))
    return make_plan(scene.load(p), out=tmp_path / "o")


def test_a_cached_render_reads_each_record_once(tmp_path, write_scene, monkeypatch):
    plan = _video(write_scene, tmp_path)
    render.render(plan)
    reads = {"frames": [], "decisions": []}
    get_frame, get_decision = Cache.get_frame, Cache.get_decision
    monkeypatch.setattr(Cache, "get_frame", lambda self, key, shape: reads["frames"].append(key) or get_frame(self, key, shape))
    monkeypatch.setattr(Cache, "get_decision", lambda self, key: reads["decisions"].append(key) or get_decision(self, key))
    res = render.render(_video(write_scene, tmp_path))
    assert (res.rendered, res.reused) == (0, 9)
    assert len(reads["frames"]) == len(set(reads["frames"])) == 9
    assert len(reads["decisions"]) == len(set(reads["decisions"])) == 9


def test_the_video_walk_holds_one_blending_window(tmp_path, write_scene):
    """Frames are read as the encoder needs them: one window ahead, never the whole video."""
    plan = _video(write_scene, tmp_path, frames=17)
    radius = round(render.BLEND_SECONDS * plan.fps)
    read = []

    def pictures():
        for k in range(plan.n_frames):
            read.append(k)
            yield render.Picture({"conv": None, "div": None}, lambda ref: np.zeros((16, 16, 3), np.uint8))

    walk = render.video_frames(plan, pictures(), work.Reporter())
    for k in range(plan.n_frames):
        next(walk)
        assert len(read) == min(plan.n_frames, k + radius + 1)


def test_frame_help_keeps_square_brackets():
    r = CliRunner().invoke(app, ["frame", "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0
    assert "overrides [video] mode" in r.stdout and "WxH, overrides [video] size" in r.stdout


def test_frame_draft_is_a_quarter_per_axis(tmp_path, write_scene):
    p = write_scene(steps=20, w=64, h=32)
    npy = tmp_path / "f.npy"
    r = CliRunner().invoke(app, ["frame", str(p), "--draft", "--quiet", "--npy", str(npy)])
    assert r.exit_code == 0, r.stderr
    assert np.load(npy).shape == (16, 16) and "size 16x16" in r.stdout  # 64x32 / 4, at least 16 px


def test_frame_shows_its_progress(tmp_path, write_scene, monkeypatch):
    from rich.console import Console

    from zoomreel.cli import progress

    monkeypatch.setattr(progress, "err", Console(stderr=True, force_terminal=True))  # as on a terminal
    p = write_scene(steps=20, w=16, h=16)
    r = CliRunner().invoke(app, ["frame", str(p)])
    assert r.exit_code == 0, r.stderr
    assert "px-steps" in r.stderr and f"{16 * 16 * 20:.3g}/{16 * 16 * 20:.3g}" in r.stderr  # the whole view, done
    r = CliRunner().invoke(app, ["frame", str(p), "--mode", "pyramid", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.stderr
    assert "tiles" in r.stderr


def test_overrides_are_checked_as_the_file_is(tmp_path, write_scene):
    """--size, --precision and --mode: the file's checks and messages, naming the option."""
    runner = CliRunner()
    for option, value, toml, file_where in (("--size", "10x16", "size = [10, 16]", "video.size"),
                                            ("--precision", "float16", 'precision = "float16"', "video.precision"),
                                            ("--mode", "pyramd", 'mode = "pyramd"', "video.mode")):
        r = runner.invoke(app, ["frame", str(write_scene()), option, value])
        bad = write_scene(name="bad", video_extra=toml) if option != "--size" else None
        if bad is None:
            bad = tmp_path / "bad.toml"
            bad.write_text(write_scene().read_text().replace("size = [16, 16]", toml))
        f = runner.invoke(app, ["frame", str(bad)])
        assert r.exit_code == f.exit_code == 2
        assert r.stderr.replace(f"({option})", "(X)") == f.stderr.replace(f"(bad.toml:{file_where})", "(X)"), (r.stderr, f.stderr)
