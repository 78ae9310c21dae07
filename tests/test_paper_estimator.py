"""The paper's box-counting estimator, its zoom sequences, and locate's "busiest" rule."""

import json
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest

from test_dimension import circle_edge, koch_snowflake_edge, sierpinski_carpet, straight_line
from zoomreel import dimension as dm
from zoomreel import locate, path


def test_sizes_are_ten_log_spaced_integers_from_10_px_to_the_shorter_side():
    assert dm.paper_sizes((2047, 3000)) == [10, 18, 32, 58, 106, 192, 347, 627, 1133, 2047]
    assert dm.paper_sizes((12, 40)) == [10, 11, 12]  # duplicates dropped
    assert dm.paper_sizes((9, 40)) == []


def test_boxes_start_at_the_first_pixel_and_partial_ones_count():
    edge = np.zeros((25, 25), dtype=bool)
    edge[:, 22] = True  # a line inside the last, partial column of boxes
    # 10 px boxes: rows 0-9, 10-19, 20-24 each hold edge and non-edge pixels in the last column
    assert dm.paper_counts(edge, [10]).tolist() == [3]
    full = np.ones((25, 25), dtype=bool)
    full[0, 0] = False  # only the first box holds a non-edge pixel
    assert dm.paper_counts(full, [10]).tolist() == [1]


def test_local_slopes_of_a_power_law_are_its_exponent():
    s = np.array([10, 18, 32, 58, 106])
    slopes = dm.local_slopes(s, 1e6 * s**-1.5)
    np.testing.assert_allclose(slopes, 1.5, rtol=1e-12)
    # central differences inside, one-sided at the ends
    n = np.array([1000.0, 300.0, 200.0])
    x, y = np.log([10, 20, 40]), np.log(n)
    want = -np.array([(y[1] - y[0]) / (x[1] - x[0]), (y[2] - y[0]) / (x[2] - x[0]), (y[2] - y[1]) / (x[2] - x[1])])
    np.testing.assert_allclose(dm.local_slopes([10, 20, 40], n), want, rtol=1e-12)


@pytest.mark.parametrize(
    "shape,known,tol",
    [(straight_line, 1.0, 0.05), (circle_edge, 1.0, 0.05), (lambda: sierpinski_carpet(7), np.log(8) / np.log(3), 0.05)],
    ids=["line", "circle", "carpet"],
)
def test_paper_estimator_on_known_shapes(shape, known, tol):
    p = dm.paper(shape())
    assert abs(p.dimension - known) < tol, (p.dimension, p.slopes)


def test_paper_estimator_reads_koch_high_at_its_largest_boxes():
    """On one image the largest boxes (a few, mostly partial) push the median up:
    the small-box slopes hold the Koch curve's dimension, the median does not."""
    p = dm.paper(koch_snowflake_edge(6))
    koch = np.log(4) / np.log(3)
    assert abs(np.median(p.slopes[:5]) - koch) < 0.05, p.slopes
    assert p.dimension > koch + 0.05, p.dimension
    assert dm.fit(koch_snowflake_edge(6)).dimension == pytest.approx(koch, abs=0.05)


def test_a_sequence_pools_every_slope():
    a = dm.PaperSlopes([10, 20, 40], [1, 1, 1], [1.0, 1.1, 1.2])
    b = dm.PaperSlopes([10, 20, 40], [1, 1, 1], [1.6, 1.7, 1.8])
    assert dm.paper_dimension([a, b]) == pytest.approx(1.4)  # median of six, not of the two images' medians


def test_levels_are_2x_apart_centred_on_the_target_from_span_6_down():
    c = (Decimal("2.5"), Decimal("2.1298"))
    v = path.levels(c, Decimal("0.3"), (32, 32))
    assert [float(x.span) for x in v] == [9.6, 4.8, 2.4, 1.2, 0.6, 0.3]
    assert all(x.center == c for x in v)
    assert [float(x.span) for x in path.levels(c, Decimal(7), (32, 32))] == [7.0]


def _noisy_and_smooth():
    rng = np.random.default_rng(3)
    raw = np.ones((48, 48))
    raw[:, :10] = -1.0  # a straight boundary at column 10: smooth, balanced
    raw[30:44, 30:44] = np.where(rng.random((14, 14)) < 0.2, -1.0, 1.0)  # a busy patch, mostly diverged
    return raw


def test_busiest_rule_picks_the_detailed_region_balanced_the_smooth_one():
    raw = _noisy_and_smooth()
    i, j = locate.pick(raw, rule="busiest")
    assert 30 <= i < 44 and 30 <= j < 44
    i, j = locate.pick(raw, rule="balanced")
    assert j == 9  # on the straight boundary


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "zoomreel", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_dimension_levels_with_the_paper_estimator(write_scene, tmp_path):
    scene = write_scene(steps=20, w=40, h=40, t1="1.0", span1="1.0")
    r = _cli("dimension", scene, "--out", tmp_path / "o", "--levels", "--estimator", "paper", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["estimator"] == "paper"
    spans = [f["span"] for f in d["frames"] if "span" in f]
    assert spans == [8.0, 4.0, 2.0, 1.0]
    fitted = [f for f in d["frames"] if f.get("slopes")]
    assert fitted and all(len(f["slopes"]) >= 2 for f in fitted)
    pooled = np.median(np.concatenate([f["slopes"] for f in fitted]))
    assert d["dimension"] == pytest.approx(pooled)
    bad = _cli("dimension", scene, "--out", tmp_path / "o", "--estimator", "papr")
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown estimator 'papr' (--estimator)")
