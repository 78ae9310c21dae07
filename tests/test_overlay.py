"""The overlay: axis labels at the frame's edges and the zoom depth, drawn on the frame."""

from decimal import Decimal

import mpmath
import numpy as np

from zoomreel import overlay, path
from zoomreel.model import Model

TANH = Model()
MANDELBROT = Model(kind="mandelbrot", steps=100)


def parse(label: str) -> tuple[str, Decimal, Decimal]:
    name, rng = label.split(": ")
    lo, hi = rng.split(" .. ")
    return name, Decimal(lo), Decimal(hi)


def test_standard_view_labels_its_learning_rates_at_the_edges():
    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (160, 90))
    lab = overlay.labels(TANH, view, Decimal(9))
    # x spans 1.5 +- 4.5 decades; y the same pixel pitch over 90 rows: 1.5 +- 2.53125
    assert lab["x"] == "input-layer lr: 1.00e-3 .. 1.00e+6"
    name, lo, hi = parse(lab["y"])
    assert name == "output-layer lr"
    assert float(lo) == float(f"{10 ** -1.03125:.2e}") and float(hi) == float(f"{10 ** 4.03125:.2e}")
    assert lab["depth"].startswith("zoom 10^0.00")


def test_deep_labels_tell_the_edges_apart_and_are_correctly_rounded():
    # 1e-10 decades wide: the two edges differ in the 11th significant digit
    view = path.View((Decimal("2.5"), Decimal("2.1298")), Decimal("1e-10"), (64, 64))
    lab = overlay.labels(TANH, view, Decimal(9))
    mpmath.mp.dps = 50
    for key, c in (("x", view.center[0]), ("y", view.center[1])):
        _, lo, hi = parse(lab[key])
        assert lo < hi  # printed with enough digits to differ
        digits = len(str(lo).split("e")[0].replace(".", "").lstrip("-"))
        for printed, edge in ((lo, c - view.span / 2), (hi, c + view.span / 2)):
            exact = mpmath.power(10, mpmath.mpf(str(edge)))  # independent of zoomreel's Decimal maths
            half_unit = mpmath.mpf(10) ** (mpmath.floor(mpmath.log10(exact)) - digits + 1) / 2
            assert abs(mpmath.mpf(str(printed)) - exact) <= half_unit
    # 10^10 times deeper than the first keyframe's span of 1: depth 10.00
    assert overlay.labels(TANH, view, Decimal(1))["depth"].startswith("zoom 10^10.00")


def test_mandelbrot_labels_are_the_plane_itself():
    view = path.View((Decimal("-0.75"), Decimal("0")), Decimal("3"), (300, 200))
    lab = overlay.labels(MANDELBROT, view, Decimal(3))
    name, lo, hi = parse(lab["x"])
    assert name == "Re c" and (lo, hi) == (Decimal("-2.25"), Decimal("0.75"))
    name, lo, hi = parse(lab["y"])
    assert name == "Im c" and (lo, hi) == (Decimal("-1"), Decimal("1"))


def test_draw_writes_the_labels_in_the_corners_and_leaves_the_middle():
    img = np.full((180, 320, 3), 128, dtype=np.uint8)
    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (320, 180))
    out = overlay.draw(img.copy(), TANH, view, Decimal(9))
    assert out.shape == img.shape and out.dtype == np.uint8
    changed = np.any(out != img, axis=2)
    assert changed[:20, :80].any()  # y label, top left
    assert changed[-20:, :80].any()  # x label, bottom left
    assert changed[20:45, -80:].any()  # depth, top right, below the first line
    assert not changed[70:110, 100:220].any()  # the middle of the frame stays the data
    # light text with a dark outline (anti-aliased), readable on any colour
    drawn = out[changed].astype(int)
    assert (drawn.min(axis=1) > 200).any() and (drawn.max(axis=1) < 30).any()


def test_a_frame_too_small_to_read_is_left_clean():
    img = np.full((24, 32, 3), 77, dtype=np.uint8)
    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (32, 24))
    out = overlay.draw(img.copy(), TANH, view, Decimal(9))
    assert np.array_equal(out, img)
