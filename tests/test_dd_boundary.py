"""Double-double puts the boundary where it is, far below float64.

Past float64 a pixel's class can hang on the measure itself: the run
converges when the mean of its last 20 values of v_t = L_t / L_0 is below 1,
and next to the boundary that mean is 1 within 1e-16. Taken from losses
rounded to float64, the class there was decided by rounding, and dd frames
drew the boundary thousands of pixel spacings from where mpmath puts it.
These tests compare dd frames (and perturbation's, which auto picks there
now) and a dd bisection with mpmath at 40 digits,
and the measure with an exact one on records built to sit on the threshold.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from decimal import Decimal, localcontext

import mpmath
import numpy as np
import pytest

import reference_mp
from zoomreel import engine, path
from zoomreel.engine import LAST, V_CAP, draws, mandelbrot_measure, network_measure
from zoomreel.model import Model
from zoomreel.view import View

# A small network, so that mpmath trains a pixel in about a second: tanh,
# width 8 (72 points), 40 steps, seed 0. Along x = 1.0 its boundary lies
# near y = 1.6516728947948236266450..., where the class is set by the mean
# of the last 20 values of v_t crossing 1 (found by the bisection below).
MODEL = Model(nonlinearity="tanh", width=8, steps=40, seed=0)
X = Decimal("1.0")
BRACKET = (Decimal("1.651672"), Decimal("1.651673"))  # converged below, diverged above
DIGITS = 40


@functools.lru_cache(maxsize=None)  # the dd and the auto frame share their pixels: mpmath trains each once
def mp_class(x: Decimal, y: Decimal, model: Model = MODEL) -> bool:
    """True where mpmath (DIGITS digits, the network written out directly) says diverged."""
    with localcontext(prec=60):
        hx, hy = str(Decimal(10) ** x), str(Decimal(10) ** y)
    if model.plane == "init-lr":  # x: the offset of the input-layer weights, y: both layers' rate
        losses = reference_mp.losses(model, draws(model), hy, hy, model.steps, dps=DIGITS, offset=hx)
    else:
        losses = reference_mp.losses(model, draws(model), hx, hy, model.steps, dps=DIGITS)
    with mpmath.workdps(DIGITS):
        cap = mpmath.mpf(V_CAP)
        v = [min(loss / losses[0], cap) if mpmath.isfinite(loss) else cap for loss in losses]
        return not sum(v[-LAST:]) / LAST < 1


def dd_classes(model: Model, x: Decimal, ys: list[Decimal]) -> np.ndarray:
    A = engine.arithmetic("dd")
    hx, hy = A.hypers([x] * len(ys), True), A.hypers(ys, True)
    return engine.train(model, hx, hy, A).values > 0


def small(**kw) -> Model:
    return Model(width=8, steps=40, **kw)


# Every condition of the paper on a small network: a line x = const and a
# bracket on it, 1e-6 wide, with converged below and diverged above (read
# off float64 frames; the bisection below narrows it 18 decades in dd).
CONDITIONS = {
    "tanh": (MODEL, X, BRACKET),
    "relu": (small(nonlinearity="relu", seed=1), Decimal("0.5"), (Decimal("1.428103"), Decimal("1.428104"))),
    "identity": (small(nonlinearity="identity"), Decimal("0.5"), (Decimal("1.509153"), Decimal("1.509154"))),
    "single": (small(dataset="single"), Decimal("0.5"), (Decimal("1.431536"), Decimal("1.431537"))),
    "minibatch": (small(batch=16), Decimal("0.5"), (Decimal("1.438010"), Decimal("1.438011"))),
    "init-lr": (small(plane="init-lr"), Decimal("0.5"), (Decimal("1.391954"), Decimal("1.391955"))),
}


@pytest.mark.slow
@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_dd_bisection_finds_the_boundary_where_mpmath_has_it(condition):
    model, x, (lo, hi) = CONDITIONS[condition]
    with localcontext(prec=60):
        while hi - lo > Decimal("1e-24"):  # 16 parts a round, ends included: one chunk of pixels
            ys = [lo + (hi - lo) * k / 16 for k in range(17)]
            got = dd_classes(model, x, ys)
            assert not got[0] and got[-1], got
            k = int(np.argmax(got)) - 1  # the part that ends at the first diverged point
            lo, hi = ys[k], ys[k + 1]
        # a 32-pixel frame at span 1e-20 has pixels 3.1e-22 apart: mpmath's
        # boundary lies within three of them of dd's
        step = Decimal("1e-20") / 32
        below, above = lo - 3 * step, hi + 3 * step
    assert (mp_class(x, below, model), mp_class(x, above, model)) == (False, True)


def frame_column(tmp_path, span: str, center_y: str, size=(16, 16), precision: str = "dd",
                 trained_by: str = "dd") -> tuple[np.ndarray, Decimal, list[Decimal]]:
    """One frame through the CLI in ``precision`` (the frame's readout must
    name ``trained_by``): its middle column's measure, that column's x and
    its rows' y coordinates (row 0 lowest)."""
    toml = tmp_path / "deep.toml"
    toml.write_text(f"""
[model]
nonlinearity = "tanh"
width = {MODEL.width}
steps = {MODEL.steps}
seed = {MODEL.seed}
[video]
size = [{size[0]}, {size[1]}]
precision = "{precision}"
[[keyframe]]
time = 0.0
center = ["{X}", "{center_y}"]
span = {span}
""")
    npy = tmp_path / "deep.npy"
    done = subprocess.run([sys.executable, "-m", "zoomreel", "frame", str(toml), "--time", "0", "--npy", str(npy)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f" {trained_by} " in done.stdout, done.stdout
    col = size[0] // 2
    xs, ys = path.axis_coords(View((X, Decimal(center_y)), Decimal(span), size))  # the frame's pixel centres
    return np.load(npy)[:, col], xs[col], ys


@pytest.mark.slow
@pytest.mark.parametrize("span", ["1e-20", "1e-23"])
@pytest.mark.parametrize("precision, trained_by", [("dd", "dd"), ("auto", "perturb")])
def test_dd_frame_on_the_boundary_matches_mpmath_pixel_by_pixel(tmp_path, span, precision, trained_by):
    """dd, and perturbation (which auto picks past float64), put the boundary
    where mpmath does, pixel by pixel."""
    raw, x, ys = frame_column(tmp_path, span, "1.6516728947948236266450604", precision=precision, trained_by=trained_by)
    dd = raw > 0
    assert dd.any() and not dd.all(), dd  # both classes, next to each other
    assert [mp_class(x, y) for y in ys] == list(dd)


def _on_threshold(offset: float) -> np.ndarray:
    """A (steps, 1, 2) double-double loss record whose last 20 v_t have mean
    exactly 1 + offset (|offset| far below float64's resolution of 1)."""
    steps = 30
    hi = np.ones((steps, 1))
    lo = np.zeros((steps, 1))
    lo[-1, 0] = LAST * offset  # L_t = 1 except the last, 1 + 20 offset exactly
    return np.stack([hi, lo], axis=-1)


@pytest.mark.parametrize("offset, diverged", [(-1e-20, False), (1e-20, True), (-1e-30, False), (1e-30, True)])
def test_dd_measure_decides_the_class_on_the_exact_mean(offset, diverged):
    rec = _on_threshold(offset)
    assert float(np.sum(rec[-LAST:, 0, 0] + rec[-LAST:, 0, 1]) / LAST) == 1.0  # float64 cannot tell
    assert (network_measure(rec)[0] > 0) == diverged
    # and the record's hi alone (float64 losses) gives the same class for both signs
    assert network_measure(rec[..., 0])[0] > 0


def test_dd_measure_equals_mpmath_on_a_random_record():
    rng = np.random.default_rng(3)
    steps, n = 40, 5
    hi = np.exp(rng.normal(0, 1, (steps, n)))
    lo = hi * rng.uniform(-2**-53, 2**-53, (steps, n))
    hi[35:, 4] = np.inf  # one run that blows up: capped
    got = network_measure(np.stack([hi, lo], axis=-1))
    with mpmath.workdps(50):
        for k in range(n):
            L = [mpmath.mpf(hi[t, k]) + mpmath.mpf(lo[t, k]) for t in range(steps)]
            v = [min(x / L[0], mpmath.mpf(V_CAP)) if mpmath.isfinite(x) else mpmath.mpf(V_CAP) for x in L]
            conv = sum(v[-LAST:]) / LAST < 1
            want = -sum(v) if conv else sum(1 / x for x in v)
            assert got[k] == pytest.approx(float(want), rel=1e-15)


def test_dd_mandelbrot_escape_is_decided_on_hi_plus_lo():
    # |z|^2 = 1e6 + 2^-40 at the last step: escaped, though its float64 rounding is not past 1e6
    rec = np.zeros((5, 2, 2))
    rec[-1, :, 0] = 1e6
    rec[-1, 0, 1] = 2.0**-40
    rec[-1, 1, 1] = -(2.0**-40)
    got = mandelbrot_measure(rec)
    assert got[0] > 0 and got[1] < 0
