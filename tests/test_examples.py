"""The shipped keyframe files: valid, deep, and ending on the boundary."""

from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pytest

from zoomreel import path, report, scene, work
from zoomreel import plan as plan_

KEYFRAMES = Path(__file__).parent.parent / "keyframes"
CONDITIONS = ["tanh", "relu", "identity", "minibatch", "single", "init-lr"]


def test_every_example_parses():
    files = sorted(KEYFRAMES.glob("*.toml"))
    assert {f.stem for f in files} >= set(CONDITIONS) | {"quick"}
    for f in files:
        scene.load(f)


@pytest.mark.parametrize("name", CONDITIONS)
@pytest.mark.slow
def test_condition_zooms_six_decades_onto_the_boundary(name):
    s = scene.load(KEYFRAMES / f"{name}.toml")
    first, last = s.keyframes[0], s.keyframes[-1]
    assert (first.span / last.span).log10() >= 6
    view = path.view_at(s, s.duration, (48, 27))
    raw = work.train_view(s.model, view).raw
    conv = float(np.mean(raw < 0))
    assert 0.10 <= conv <= 0.90, (name, conv)


def test_quick_demo_is_small(tmp_path):
    """The README's first command: at least 320x180 and 3 s, few enough pixel-steps
    for about two minutes on a 2-core CPU (docs/benchmarks.md, "Pyramid")."""
    s = scene.load(KEYFRAMES / "quick.toml")
    plan = plan_.make_plan(s, draft=True, out=tmp_path)
    d = report.info(plan)
    assert plan.size[0] >= 320 and plan.size[1] >= 180 and s.duration >= 3
    assert d["mode"] == "pyramid" and d["pixel_steps"] < 3e7


@pytest.mark.slow
def test_deep_zoom_ends_on_detail_by_perturbation():
    """keyframes/deep.toml ends more than 30 decades down, past float64, on
    detail: auto trains the last frame by perturbation and resolves at least
    95 % of it under its nudge test; both phases hold at least 10 % of it;
    the boundary is more than one straight edge (a row crosses it more than
    once); and the two pixels on either side of a crossing have the classes
    the exact run (the reference's fixed point, 20 digits past the frame's)
    gives them."""
    from zoomreel.engine import draws, perturb, reference
    from zoomreel.engine.network import RETIRE_V

    s = scene.load(KEYFRAMES / "deep.toml")
    assert s.keyframes[-1].span <= Decimal("1e-30")
    view = path.view_at(s, s.duration, (32, 18))
    res = work.train_view(s.model, view)
    d, c = res.decision, res.raw < 0
    assert d.dtype == "perturb" and d.resolved >= 0.95 and d.redone is not None, d
    assert 0.10 <= c.mean() <= 0.90, c.mean()
    crossings = (c[:, 1:] != c[:, :-1]).sum(axis=1)
    assert crossings.max() >= 2, crossings
    r = int(np.argmax(crossings))
    q = int(np.argmax(c[r, 1:] != c[r, :-1]))
    xs, ys = path.axis_coords(view, 200)
    digits = reference.digits_needed(perturb._finest(s.model, view), s.model.steps) + 20
    for col in (q, q + 1):
        with localcontext(prec=250):
            hx, hy = Decimal(10) ** xs[col], Decimal(10) ** ys[r]
        o = reference.network_orbit(s.model, draws(s.model), hx, hy, digits, RETIRE_V)
        assert o.converged == bool(c[r, col]), (r, col)
