"""The shipped keyframe files: valid, deep, and ending on the boundary."""

from decimal import Decimal
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
def test_deep_zoom_ends_on_the_boundary_by_perturbation():
    """keyframes/deep.toml ends 29 decades down, past float64: auto trains the
    last frame by perturbation, resolves at least 95 % of it under its nudge
    test, gives every pixel dd's class, and the boundary runs through it."""
    s = scene.load(KEYFRAMES / "deep.toml")
    assert s.keyframes[-1].span == Decimal("1e-28")
    view = path.view_at(s, s.duration, (16, 9))
    res = work.train_view(s.model, view)
    d, raw = res.decision, res.raw
    assert d.dtype == "perturb" and d.resolved >= 0.95 and d.redone is not None, d
    dd = work.train_view(s.model, view, "dd").raw
    np.testing.assert_array_equal(raw < 0, dd < 0)
    conv = float(np.mean(raw < 0))
    assert 0.10 <= conv <= 0.90, conv
    c = raw < 0  # at this depth a class's values are equal in float64: the picture is its classes
    assert (c[:, 1:] != c[:, :-1]).sum() >= 3 and (c[1:, :] != c[:-1, :]).sum() >= 3  # neighbours differ both ways
