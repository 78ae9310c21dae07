"""Pyramid mode: exact tile geometry, bit-identical lattice frames, tile reuse, resume, errors."""

import math
import os
import signal
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from zoomreel.plan import make_plan
from zoomreel.report import info
from zoomreel import color, compose, encode, path, pyramid, render, scene
from zoomreel.view import View
from zoomreel import work
from zoomreel.work import TileReader

CLI = [sys.executable, "-m", "zoomreel"]


def run(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)


def one_view(center, span, extra=""):
    return f"""
[[keyframe]]
time = 0.0
center = ["{center[0]}", "{center[1]}"]
span = "{span}"
{extra}"""


def F(d: Decimal) -> Fraction:
    return Fraction(d)


def test_tiles_and_centres_are_exact_at_depth():
    view = View((Decimal("2.5"), Decimal("2.1298")), Decimal("1e-12"), (64, 36))
    plan = pyramid.frame_plan(view)
    n = plan.fine.level
    p = Fraction(16, 64) / Fraction(2) ** n  # the level's spacing, exactly
    f = Fraction(view.span) / 64
    assert p <= f < 2 * p  # the finest level that is at least as fine as the frame
    assert F(pyramid.spacing(n)) == p
    # the block under the frame, in exact rationals
    u = (Fraction(view.center[0]) - f * 32) / p
    v = (Fraction(view.center[1]) - f * 18) / p
    assert (plan.fine.c0, plan.fine.r0) == (math.floor(u), math.floor(v))
    assert plan.fine.cols == math.ceil(u + 64 * f / p) - math.floor(u)
    assert plan.fine.c0 > 2**47  # lattice indices are exact integers, however deep
    assert plan.coarse.level == n - 1 and 0 < plan.blend < 1
    assert abs(plan.blend - math.log2(f / p)) < 1e-12
    tiles = plan.fine.tiles()
    assert {t.i for t in tiles} == set(range(plan.fine.c0 // 64, (plan.fine.c0 + plan.fine.cols - 1) // 64 + 1))
    for t in (tiles[0], tiles[-1]):
        xs, ys = path.axis_coords(t.view())
        assert [F(x) for x in xs] == [(t.i * 64 + c + Fraction(1, 2)) * p for c in range(64)]
        assert [F(y) for y in ys] == [(t.j * 64 + r + Fraction(1, 2)) * p for r in range(64)]
    # neighbouring tiles share an edge, and the same tile is the same key wherever it is named
    a, b = tiles[0], pyramid.Tile(n, tiles[0].i + 1, tiles[0].j)
    assert F(a.view().center[0]) + p * 64 == F(b.view().center[0])
    assert a.key_fields() == pyramid.Tile(n, a.i, a.j).key_fields() != b.key_fields()
    # the blend reaches the coarse level just before the switch: no pop
    two_p = pyramid.spacing(n) * 2 * 64  # a span at twice the level's spacing
    near = View(view.center, two_p * (1 - Decimal("1e-9")), (64, 36))
    switch = View(view.center, two_p, (64, 36))
    assert pyramid.frame_plan(near).blend > 0.999999 and pyramid.frame_plan(switch).blend == 0.0
    assert pyramid.frame_plan(switch).fine.level == n - 1


def test_box_filter_is_area_weighting():
    idx, w = compose.box_weights(0.25, 1.5, 2, 4)
    dense = np.zeros((2, 4))
    for k in range(2):
        np.add.at(dense[k], idx[k], w[k])
    want = np.array([[0.75, 0.75, 0, 0], [0, 0.25, 1.0, 0.25]]) / 1.5
    assert np.allclose(dense, want, rtol=0, atol=1e-15)


@pytest.mark.slow
def test_a_frame_on_the_lattice_is_the_tiles_pixels_bit_for_bit(tmp_path, write_scene):
    # level 3: spacing 1/32; a 32x16 frame whose edges lie on lattice lines, across four tiles
    p = write_scene(w=32, h=16, steps=20, video_extra='mode = "pyramid"\nprecision = "float32"',
                    keyframes=one_view(("2.0", "2.0"), "1"))
    s = scene.load(p)
    plan = make_plan(s, out=tmp_path / "o")
    fp = plan.frame_plan(0)
    assert fp.coarse is None and fp.fine.level == 3 and (fp.fine.fx, fp.fine.fy, fp.fine.ratio) == (0.0, 0.0, 1.0)
    assert len(fp.fine.tiles()) == 4
    tiles = work.train_tiles(plan, None)
    assert tiles.trained == 4
    reader = TileReader(tiles.units)
    block = reader.blocks(fp)[3]
    direct = work.train_view(s.model, plan.view(0), "float32").raw  # frames mode: the frame's own centres
    assert block.dtype == direct.dtype and np.array_equal(block, direct)
    assert (direct < 0).any() and (direct > 0).any()  # both phases: colours are really compared
    ref = color.summary(direct)
    got = render.pyramid_frame(plan, 0, reader, ref)
    assert np.array_equal(got.rgb, color.colorize(direct, ref, "spectral"))
    assert np.array_equal(got.converged, (direct < 0).astype(np.float64))


@pytest.mark.slow
def test_files_sharing_a_model_share_tiles_and_a_pan_trains_only_new_tiles(tmp_path, write_scene):
    out = tmp_path / "o"
    zoom = one_view(("2.0", "2.0"), "2") + one_view(("2.1", "2.05"), "1", "").replace("time = 0.0", "time = 1.0")
    a = scene.load(write_scene(name="a", w=24, h=16, steps=20, fps=4, video_extra='mode = "pyramid"', keyframes=zoom))
    res = render.render(make_plan(a, out=out))
    tiles_a = set(make_plan(a, out=out).tiles())
    assert res.unit == "tiles" and res.rendered == len(tiles_a) and res.reused == 0
    npy = lambda: sorted((out / "pyramid" / "frames").glob("*.npy"))  # noqa: E731
    assert len(npy()) == len(tiles_a)
    # another file, same model, other fps and palette: every tile it reads is cached
    b = scene.load(write_scene(name="b", w=24, h=16, steps=20, fps=2, keyframes=zoom,
                               video_extra='mode = "pyramid"\npalette = "coolwarm"'))
    pb = make_plan(b, out=out)
    assert info(pb)["cached"] == info(pb)["tiles"] == len(pb.tiles())
    assert render.render(pb).rendered == 0 and (out / "b" / "b.mp4").exists()
    # a pan at the last span: only tiles no earlier render read are trained
    pan = one_view(("2.1", "2.05"), "1") + one_view(("3.6", "2.05"), "1").replace("time = 0.0", "time = 1.0")
    c = scene.load(write_scene(name="c", w=24, h=16, steps=20, fps=4, video_extra='mode = "pyramid"', keyframes=pan))
    pc = make_plan(c, out=out)
    new = set(pc.tiles()) - tiles_a
    assert 0 < len(new) < len(pc.tiles())
    assert info(pc)["cached"] == len(pc.tiles()) - len(new)
    assert render.render(pc).rendered == len(new)
    assert len(npy()) == len(tiles_a | set(pc.tiles()))
    # another model shares nothing
    d = scene.load(write_scene(name="d", w=24, h=16, steps=21, fps=4, video_extra='mode = "pyramid"', keyframes=zoom))
    assert info(make_plan(d, out=out))["cached"] == 0


@pytest.mark.slow
def test_resume_after_kill_in_pyramid_mode(tmp_path, write_scene):
    p = write_scene(steps=20, w=32, h=18, fps=4, t1="1.0", span1="3.0", video_extra='mode = "pyramid"')
    out, ref = tmp_path / "killed", tmp_path / "ref"
    d = info(make_plan(scene.load(p), out=out))
    n = d["tiles"]
    assert d["mode"] == "pyramid" and d["pixel_steps"] == n * 64 * 64 * 20
    tiles_dir = out / "pyramid" / "frames"
    env = {**os.environ, "ZOOMREEL_SIGNAL_AT": "KILL unit 2"}  # killed once it has written 2 tiles
    proc = subprocess.run([*CLI, "render", str(p), "--out", str(out), "--quiet"], capture_output=True, env=env)
    assert proc.returncode == -signal.SIGKILL
    cached = info(make_plan(scene.load(p), out=out))["cached"]
    assert cached == 2 < n, (cached, n)
    r = run("render", p, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"rendered {n - cached}, reused {cached} tiles" in r.stdout
    assert not [f for f in tiles_dir.iterdir() if ".tmp" in f.name]
    render.render(make_plan(scene.load(p), out=ref))  # uninterrupted, in this process
    assert (out / "s" / "s.mp4").read_bytes() == (ref / "s" / "s.mp4").read_bytes()
    assert encode.probe(out / "s" / "s.mp4")["frames"] == 5


@pytest.mark.slow
def test_a_misspelt_mode_is_one_line_and_exit_2(tmp_path, write_scene):
    p = write_scene(video_extra='mode = "pyramids"')
    r = run("info", p, "--json")
    assert r.returncode == 2 and r.stderr == "error: unknown value 'pyramids' (s.toml:video.mode): did you mean 'pyramid'?\n"
    p = write_scene()
    for cmd in ("render", "frame"):  # info and dimension read --mode through the same check
        r = run(cmd, p, "--mode", "pyramd")
        assert r.returncode == 2 and r.stderr == "error: unknown value 'pyramd' (--mode): did you mean 'pyramid'?\n", (cmd, r.stderr)
