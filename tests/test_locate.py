"""`zoomreel locate`: finding a boundary point by zooming with the engine itself."""

from decimal import Decimal

import numpy as np
from typer.testing import CliRunner

import reference as ref
from zoomreel import engine, locate, path
from zoomreel.cli import app
from zoomreel.model import Model

MANDELBROT = Model(kind="mandelbrot", steps=200)


def test_pick_takes_the_balanced_boundary_pixel_nearest_the_centre():
    # converged (negative) left of column 10, diverged right of it: every
    # boundary cell lies between columns 9 and 10; the middle row wins the tie
    raw = np.where(np.arange(24)[None, :] < 10, -1.0, 1.0) * np.ones((20, 1))
    i, j = locate.pick(raw)
    assert j == 9 and abs(i - 10) <= 1
    # a frame with one phase only has no boundary
    assert locate.pick(np.ones((20, 24))) is None
    assert locate.pick(-np.ones((20, 24))) is None


def test_pick_prefers_balance_over_nearness():
    # a short boundary near the centre with converged pixels all round it
    # (a small island), against a long straight edge further away
    raw = -np.ones((41, 41))
    raw[:, 30:] = 1.0  # a half-plane edge at column 30
    raw[19:22, 19:22] = 1.0  # a 3x3 island of diverged pixels at the centre
    i, j = locate.pick(raw)
    assert j == 29  # the edge, where the surroundings are half and half


def test_locate_zooms_onto_the_boundary_of_the_mandelbrot_set():
    start = path.View((Decimal("-0.75"), Decimal("0")), Decimal("3"), (16, 16))
    seen = []
    levels = locate.locate(MANDELBROT, start, Decimal("0.003"), factor=10, size=16, on_level=seen.append)
    assert seen == levels
    assert [lv.view.span for lv in levels] == [Decimal("3"), Decimal("0.3"), Decimal("0.03"), Decimal("0.003")]
    for a, b in zip(levels, levels[1:]):
        # each level zooms about a point of the level before
        (x0, x1), (y0, y1) = [(c - a.view.span / 2, c + a.view.span / 2) for c in a.view.center]
        assert x0 <= b.view.center[0] <= x1 and y0 <= b.view.center[1] <= y1
    for lv in levels:
        assert 0.0 < lv.converged < 1.0
    # independently of the engine: the last view holds points that escape and points that do not
    xs, ys = path.hyper_axes(MANDELBROT, levels[-1].view, engine.FLOAT64)
    escaped = {ref.mandelbrot(x, y, MANDELBROT.steps)[0] for x in xs[::3] for y in ys[::3]}
    assert escaped == {True, False}


def test_locate_command_prints_each_level_and_a_centre_to_paste(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[model]\nkind = "mandelbrot"\nsteps = 100\n[[keyframe]]\ntime = 0.0\ncenter = [-0.75, 0]\nspan = 3\n')
    r = CliRunner().invoke(app, ["locate", str(p), "--depth", "0.03", "--size", "16", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [ln.split()[1] for ln in lines[:-1]] == ["3", "0.3", "0.03"]
    assert lines[-1].startswith("center = [")
    cx, cy = (Decimal(v) for v in lines[-1].split("[", 1)[1].rstrip("]").replace('"', "").split(","))
    assert abs(cx + Decimal("0.75")) < Decimal("1.5") and abs(cy) < Decimal("1.5")  # inside the first view


def test_locate_command_refuses_a_bad_depth_in_one_line(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[model]\nkind = "mandelbrot"\nsteps = 100\n[[keyframe]]\ntime = 0.0\ncenter = [-0.75, 0]\nspan = 3\n')
    r = CliRunner().invoke(app, ["locate", str(p), "--depth", "-1"])
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: bad depth '-1' (--depth): give a positive span, e.g. 1e-6"


def test_locate_refuses_a_depth_past_the_paths_decimals_before_training(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[model]\nkind = "mandelbrot"\nsteps = 100\n[[keyframe]]\ntime = 0.0\ncenter = [-0.75, 0]\nspan = 3\n')
    r = CliRunner().invoke(app, ["locate", str(p), "--depth", "1e-400", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and r.stdout == ""  # no level was trained
    assert r.stderr.startswith("error: span 1e-400 is too deep: neighbouring pixels are equal in 60-digit decimals (--depth)")
