"""The box counter on shapes of known dimension, and `zoomreel dimension` end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from zoomreel import dimension as dm

N = 2048  # every shape is drawn so that its finest detail is 1-3 pixels


def koch_curve(level):
    """Vertices of a Koch curve from (0, 0) to (1, 0)."""
    pts = np.array([[0.0, 0.0], [1.0, 0.0]])
    c, s = 0.5, np.sqrt(3) / 2
    rot = np.array([[c, -s], [s, c]])
    for _ in range(level):
        new = [pts[0]]
        for a, b in zip(pts[:-1], pts[1:]):
            d = (b - a) / 3
            new += [a + d, a + d + rot @ d, a + 2 * d, b]
        pts = np.array(new)
    return pts


def koch_snowflake_edge(level):
    """Boundary cells of a filled Koch snowflake, found as the frames' boundary is."""
    tri = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, -np.sqrt(3) / 2], [0.0, 0.0]])
    k = koch_curve(level)
    pts = []
    for a, b in zip(tri[:-1], tri[1:]):
        d = b - a
        normal = np.array([-d[1], d[0]])
        pts.append(a + k[:-1, :1] * d + k[:-1, 1:] * normal)
    pts = np.vstack(pts)
    pts = (pts - pts.min(0)) / (pts.max(0) - pts.min(0)).max() * 0.9 + 0.05
    im = Image.new("1", (N, N), 0)
    ImageDraw.Draw(im).polygon([tuple(p) for p in pts * N], fill=1)
    return dm.boundary(np.where(np.array(im), -1.0, 1.0))


def sierpinski_carpet(level):
    m = np.ones((1, 1), dtype=bool)
    for _ in range(level):
        z = np.zeros_like(m)
        m = np.block([[m, m, m], [m, z, m], [m, m, m]])
    return m


def grid():
    yy, xx = np.mgrid[0:N, 0:N]
    return xx + 0.5, yy + 0.5


def straight_line():
    x, y = grid()
    return dm.boundary(0.7 * x - y + 0.1 * N)


def circle_edge():
    x, y = grid()
    return dm.boundary(np.hypot(x - N / 2, y - N / 2) - 0.4 * N)


def filled_disk():
    x, y = grid()
    return np.hypot(x - N / 2, y - N / 2) < 0.45 * N


@pytest.mark.parametrize(
    "shape,known",
    [
        (straight_line, 1.0),
        (circle_edge, 1.0),
        (lambda: koch_snowflake_edge(6), np.log(4) / np.log(3)),  # 1.2619
        (lambda: sierpinski_carpet(7), np.log(8) / np.log(3)),  # 1.8928, 2187 px
        (filled_disk, 2.0),
    ],
    ids=["line", "circle", "koch", "carpet", "disk"],
)
def test_box_counter_recovers_known_dimensions(shape, known):
    f = dm.fit(shape())
    assert f.sizes == [1, 2, 4, 8, 16, 32, 64, 128, 256][: len(f.sizes)] and len(f.sizes) >= 8
    assert abs(f.dimension - known) < 0.05, (f.dimension, known, f.counts)
    assert f.r2 > 0.99


def test_boundary_marks_cells_whose_corners_hold_both_signs():
    raw = np.array([[-1.0, -1.0, 2.0], [-1.0, -1.0, -1.0], [3.0, -1.0, -1.0]])
    assert dm.boundary(raw).tolist() == [[False, True], [True, False]]


def test_too_little_boundary_is_refused_not_fitted():
    m = np.zeros((256, 256), dtype=bool)
    m[100, 100:140] = True
    with pytest.raises(dm.TooFewBoundaryPixels):
        dm.fit(m)


def test_frame_indices_spread_evenly_and_keep_both_ends():
    assert dm.frame_indices(289, 7) == [0, 48, 96, 144, 192, 240, 288]
    assert dm.frame_indices(5, None) == [0, 1, 2, 3, 4]
    assert dm.frame_indices(5, 50) == [0, 1, 2, 3, 4]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "zoomreel", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_dimension_command_json_plot_and_cache_reuse(write_scene, tmp_path):
    scene = write_scene(steps=40, w=96, h=72, fps=2, t1="1.0", span1="2.0")
    out = tmp_path / "o"
    plot = tmp_path / "dim.png"
    r = _cli("dimension", scene, "--out", out, "--json", "--plot", plot)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["size"] == [96, 72] and d["steps"] == 40 and d["frames_used"] == 3
    assert [f["frame"] for f in d["frames"]] == [0, 1, 2]
    dims = [f["dimension"] for f in d["frames"]]
    assert all(1.0 < x < 2.0 for x in dims)
    assert d["median"] == pytest.approx(float(np.median(dims)))
    assert d["frames"][0]["depth"] == 0 and d["frames"][-1]["depth"] == pytest.approx(np.log10(9 / 2))
    with Image.open(plot) as im:
        assert im.format == "PNG" and im.size[0] > 400
    # the frames are the render's: cached now, so a render trains nothing
    info = json.loads(_cli("info", scene, "--out", out, "--json").stdout)
    assert info["cached"] == 3
    # and the same numbers come back from the cache
    again = json.loads(_cli("dimension", scene, "--out", out, "--json").stdout)
    assert [f["dimension"] for f in again["frames"]] == dims


@pytest.mark.slow
def test_no_boundary_gives_a_clear_error(write_scene, tmp_path):
    # far in the converged corner: every pixel converges, there is no boundary
    kf = '[[keyframe]]\ntime = 0.0\ncenter = [-2.0, -2.0]\nspan = 0.5\n'
    scene = write_scene(steps=20, w=72, h=72, keyframes=kf)
    r = _cli("dimension", scene, "--out", tmp_path / "o")
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: too few boundary pixels to fit a dimension, in the one frame: only 0 boundary pixels")
    assert last.endswith("(s.toml): zoom onto the boundary between the phases (see 'zoomreel locate')")
    assert "Traceback" not in r.stderr


def test_frames_too_small_to_box_count_fail_before_training(write_scene, tmp_path):
    scene = write_scene(steps=20, w=64, h=48)
    r = _cli("dimension", scene, "--out", tmp_path / "o", "--draft")
    assert r.returncode == 2
    assert "too small to box-count" in r.stderr and "drop --draft" in r.stderr
    assert not (tmp_path / "o" / "s" / "cache" / "frames").exists() or not any((tmp_path / "o" / "s" / "cache" / "frames").iterdir())
