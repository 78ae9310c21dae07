"""Whole videos: MP4s, cache, resume after a kill, colour stability."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from zoomreel.plan import make_plan
from zoomreel import color, encode, render, scene
from zoomreel.cache import frame_key
from zoomreel.work import FrameUnits

CLI = [sys.executable, "-m", "zoomreel"]


def run(*args, **kw):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kw)


def info(p, out, draft=False):
    r = run("info", p, "--out", out, "--json", *(["--draft"] if draft else []))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_draft_and_final_mp4_match_the_contract(tmp_path, write_scene):
    p = write_scene(steps=20, w=66, h=34, fps=4, t1="1.0", span1="3.0")
    out = tmp_path / "out"
    r = run("render", p, "--draft", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "rendered 5, reused 0" in r.stdout
    d = encode.probe(out / "s" / "s-draft.mp4")
    # 66/4 -> 16 (even, >= 16), 34/4 -> 16
    assert d["frames"] == 5 and d["size"] == (16, 16) and d["fps"] == 4
    r = run("render", p, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    d = encode.probe(out / "s" / "s.mp4")
    assert d["frames"] == 5 and d["size"] == (66, 34) and d["fps"] == 4
    # the file is H.264 in yuv420p with the index up front (browser-playable)
    head = (out / "s" / "s.mp4").read_bytes()
    assert head.find(b"moov") < head.find(b"mdat")
    assert b"avc1" in head
    # drafts are cached separately
    assert info(p, out, draft=True)["cached"] == 5 and info(p, out)["cached"] == 5


@pytest.mark.slow
def test_odd_sizes_are_padded(tmp_path, write_scene):
    p = write_scene(steps=20, w=17, h=19, fps=2, t1="0.5")
    out = tmp_path / "o"
    assert run("render", p, "--out", out, "--quiet").returncode == 0
    assert encode.probe(out / "s" / "s.mp4")["size"] == (18, 20)


@pytest.mark.slow
def test_second_run_trains_nothing(tmp_path, write_scene):
    p = write_scene(steps=20, w=16, h=16, fps=4)
    out = tmp_path / "o"
    assert run("render", p, "--out", out, "--quiet").returncode == 0
    first = (out / "s" / "s.mp4").read_bytes()
    r = run("render", p, "--out", out, "--quiet")
    assert "rendered 0, reused 5" in r.stdout
    assert (out / "s" / "s.mp4").read_bytes() == first
    r = run("render", p, "--out", out, "--quiet", "--force")
    assert "rendered 5, reused 0" in r.stdout


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_video(tmp_path, write_scene):
    p = write_scene(steps=40, w=32, h=32, fps=8, t1="2.0", span1="0.3")
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    assert run("render", p, "--out", ref_out, "--quiet").returncode == 0
    want = (ref_out / "s" / "s.mp4").read_bytes()
    n = info(p, ref_out)["frames"]
    frames_dir = out / "s" / "cache" / "frames"
    cached_before = []
    for new in (2, 4):  # killed twice, each time once it has written `new` more frames
        env = {**os.environ, "ZOOMREEL_SIGNAL_AT": f"KILL unit {new}"}
        proc = subprocess.run([*CLI, "render", str(p), "--out", str(out), "--quiet"], capture_output=True, env=env)
        assert proc.returncode == -signal.SIGKILL
        cached_before.append(info(p, out)["cached"])
    assert cached_before == [2, 6] and len(list(frames_dir.glob("*.npy"))) == 6
    r = run("render", p, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"rendered {n - cached_before[-1]}, reused {cached_before[-1]}" in r.stdout
    assert (out / "s" / "s.mp4").read_bytes() == want
    leftovers = [f for f in (out / "s" / "cache" / "frames").iterdir() if f.name.endswith(".tmp")]
    assert not leftovers


def test_cache_key_covers_pixels_and_nothing_else(tmp_path, write_scene):
    base = scene.load(write_scene(steps=20, w=64, h=64))
    plan = make_plan(base)
    v = plan.view(3).key_fields()
    k = frame_key(base.model, v, "float64")
    from dataclasses import replace

    for change in (dict(steps=21), dict(seed=1), dict(nonlinearity="relu"), dict(width=8), dict(batch=16), dict(plane="init-lr"), dict(dataset=0.5)):
        assert frame_key(replace(base.model, **change), v, "float64") != k, change
    assert frame_key(base.model, v, "float32") != k
    assert frame_key(base.model, plan.view(2).key_fields(), "float64") != k
    # palette, fps, quality and overlay do not change the frame key of the same view
    other = base.with_video(palette="coolwarm", fps=8, quality=30, overlay=True)
    plan2 = make_plan(other)
    assert frame_key(other.model, plan2.view(6).key_fields(), "float64") == k  # t = 0.75 s either way
    # a different size is a different frame
    assert frame_key(base.model, make_plan(base, draft=True).view(3).key_fields(), "float64") != k


@pytest.mark.slow
def test_palette_and_fps_changes_retrain_nothing(tmp_path, write_scene):
    out = tmp_path / "o"
    p = write_scene(name="s", steps=20, fps=4)
    assert run("render", p, "--out", out, "--quiet").returncode == 0
    p2 = write_scene(name="s", steps=20, fps=2, video_extra='palette = "coolwarm"\noverlay = true\nquality = 28')
    r = run("render", p2, "--out", out, "--quiet")
    assert r.returncode == 0 and "rendered 0, reused 3" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_corrupt_cache_file_is_retrained(tmp_path, write_scene):
    p = write_scene(steps=20, fps=2)
    out = tmp_path / "o"
    assert run("render", p, "--out", out, "--quiet").returncode == 0
    frames = sorted((out / "s" / "cache" / "frames").glob("*.npy"))
    frames[0].write_bytes(frames[0].read_bytes()[:100])  # truncated
    data = bytearray(frames[1].read_bytes())
    data[-8:] = b"\x00" * 8  # silently corrupted pixels
    frames[1].write_bytes(bytes(data))
    r = run("render", p, "--out", out, "--quiet")
    assert r.returncode == 0 and "rendered 2, reused 1" in r.stdout, r.stdout + r.stderr


def test_unwritable_output_is_one_clear_error(tmp_path, write_scene):
    p = write_scene(steps=20, fps=2)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run("render", p, "--out", blocker / "sub", "--quiet")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        r = run("render", p, "--out", ro, "--quiet")
        assert r.returncode == 2 and r.stderr.startswith("error: ")


@pytest.mark.slow
def test_info_answers_without_training(tmp_path, write_scene):
    p = write_scene(steps=30, w=32, h=32, fps=4)
    d = info(p, tmp_path / "o")
    assert not list((tmp_path / "o").rglob("*.npy"))  # nothing was trained or cached
    assert d["frames"] == 5 and d["cached"] == 0 and d["duration"] == 1.0 and d["size"] == [32, 32]
    assert d["pixel_steps"] == 5 * 32 * 32 * 30 and d["precision"] == {"float32": 0, "float64": 0, "dd": 0, "perturb": 0}
    assert run("render", p, "--out", tmp_path / "o", "--quiet").returncode == 0
    d = info(p, tmp_path / "o")
    assert d["cached"] == 5 and sum(d["precision"].values()) == 5


@pytest.mark.slow
def test_colours_are_stable_between_frames(tmp_path, write_scene):
    """Blended rank references: consecutive frames change colour smoothly."""
    p = write_scene(steps=30, w=32, h=32, fps=8, t1="1.0", span1="0.5")
    s = scene.load(p)
    plan = make_plan(s, out=tmp_path / "o")
    render.render(plan)
    cache = plan.cache
    raws, sums = [], []
    for k in range(plan.n_frames):
        st = FrameUnits(plan).lookup(k)
        raws.append(cache.get_frame(st.key, (32, 32))[0])
        sums.append(st.record["summary"])
    radius = round(render.BLEND_SECONDS * plan.fps)
    jumps_blend, jumps_own = [], []
    for k in range(plan.n_frames - 1):
        # the colour mapping itself (not the content) between neighbours: map frame k with both references
        ks, ws = color.window_weights(k, plan.n_frames, radius)
        ks2, ws2 = color.window_weights(k + 1, plan.n_frames, radius)
        a = color.positions(raws[k], color.blend([sums[i] for i in ks], ws))
        b = color.positions(raws[k], color.blend([sums[i] for i in ks2], ws2))
        jumps_blend.append(np.abs(a - b).mean())
        a = color.positions(raws[k], sums[k])
        b = color.positions(raws[k], sums[k + 1])
        jumps_own.append(np.abs(a - b).mean())
    assert np.mean(jumps_blend) < 0.5 * np.mean(jumps_own)
    assert max(jumps_blend) < 0.05


def test_palettes_keep_phases_apart():
    raw = np.concatenate([-np.logspace(0, 3, 50), np.logspace(-4, 2, 50)]).reshape(10, 10)
    for name in color.PALETTE_NAMES:
        img = color.colorize(raw, None, name)[::-1].reshape(-1, 3).astype(int)
        conv, div = img[:50], img[50:]
        assert (conv[:, 2] > conv[:, 0]).mean() > 0.8, name  # converged is cool
        assert (div[:, 0] > div[:, 2]).mean() > 0.8, name  # diverged is warm
    assert not np.array_equal(color.lut("spectral"), color.lut("coolwarm"))
