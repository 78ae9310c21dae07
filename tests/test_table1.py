"""Table 1 rows measured the paper's way (zoomreel/table1.py, scripts/table1.py),
and the block-by-block dimension map (scripts/boundary_map.py)."""

import dataclasses
import importlib.util
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from zoomreel import dimension as dm
from zoomreel import path, scene, table1
from zoomreel.errors import UserError
from zoomreel.training import Job, train_job

ROOT = Path(__file__).parent.parent


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_each_shipped_file_is_its_table_1_condition():
    for name in ("identity", "relu", "single", "minibatch", "tanh", "init-lr"):
        m = scene.load(ROOT / "keyframes" / f"{name}.toml").model
        assert table1.condition(m) == name
        assert table1.PAPER[name] == {"identity": 1.17, "relu": 1.20, "single": 1.41, "minibatch": 1.55,
                                      "tanh": 1.66, "init-lr": 1.98}[name]
    assert table1.condition(scene.load(ROOT / "keyframes" / "mandelbrot.toml").model) is None
    tanh = scene.load(ROOT / "keyframes" / "tanh.toml").model
    assert table1.condition(dataclasses.replace(tanh, batch=8)) is None  # not a condition of the paper
    assert table1.condition(dataclasses.replace(tanh, dataset=2.0)) is None


@pytest.mark.slow
def test_a_row_is_each_seeds_own_target_and_the_paper_estimator_over_its_levels(tmp_path):
    s = scene.load(ROOT / "keyframes" / "identity.toml")
    final = Decimal("0.5625")  # levels of span 9, 4.5, ... 0.5625
    row = table1.measure(s, [0, 1], steps=50, size=72, final=final, locate_size=32, out=tmp_path, precision="float64")
    assert row.condition == "identity" and row.paper_value == 1.17 and row.precision == "float64"
    assert [r.seed for r in row.seeds] == [0, 1]
    assert row.seeds[0].target != row.seeds[1].target  # the boundary moves with the seed
    for r in row.seeds:
        assert r.levels == 5 and r.spans == (9.0, 0.5625)
        # the same sequence trained here, view by view, with the seed's own model
        model = dataclasses.replace(s.model, seed=r.seed, steps=50)
        center = tuple(Decimal(c) for c in r.target)
        raws = [train_job(Job(0, model, v, "float64", "test")).raw
                for v in path.levels(center, final, (72, 72))]
        edges = [dm.boundary(raw) for raw in raws]
        assert edges[-1][30:42, 30:42].any()  # the target is on the boundary of the final view
        assert r.paper == dm.paper_dimension([dm.paper(e) for e in edges])
        assert r.per_level_paper == [dm.paper(e).dimension for e in edges]
        assert r.per_level_slopes == [dm.paper(e).slopes for e in edges]
        fits = [dm.fit(e).dimension for e in edges if e.sum() >= dm.MIN_BOUNDARY]
        assert r.fit == float(np.median(fits)) and r.fitted == len(fits)
    d = row.to_json()
    assert d["paper_estimator"]["min"] == min(r.paper for r in row.seeds)
    assert d["paper_estimator"]["max"] == max(r.paper for r in row.seeds)
    assert d["difference"] == d["paper_estimator"]["median"] - 1.17


def test_the_script_reads_seed_lists_and_refuses_bad_ones(capsys):
    t1 = _script("table1")
    assert t1.seeds("0-4") == [0, 1, 2, 3, 4]
    assert t1.seeds("0-2,7") == [0, 1, 2, 7]
    assert t1.main([str(ROOT / "keyframes" / "identity.toml"), "--seeds", "a-b"]) == 2
    assert capsys.readouterr().err.startswith("error: bad seeds 'a-b' (--seeds):")
    assert t1.main([str(ROOT / "keyframes" / "identity.toml"), "--final", "-1"]) == 2
    assert "(--final)" in capsys.readouterr().err
    assert t1.main([str(ROOT / "keyframes" / "identity.toml"), "--precision", "half"]) == 2
    assert "(--precision)" in capsys.readouterr().err
    assert t1.main([str(ROOT / "keyframes" / "identity.toml"), "--size", "64"]) == 2  # refused before training
    assert capsys.readouterr().err.startswith("error: 64 px images are too small for both estimators (--size): use 65 px")


def test_a_row_needs_a_seed_and_images_both_estimators_can_read():
    s = scene.load(ROOT / "keyframes" / "identity.toml")
    for seeds, size, where in (([], 72, "--seeds"), ([0], 64, "--size")):
        try:
            table1.measure(s, seeds, steps=50, size=size, final=Decimal("0.5625"))
        except UserError as e:
            assert e.where == where
        else:
            raise AssertionError(f"measured {seeds} at {size} px")


def test_the_script_prints_a_row_and_its_json(tmp_path, capsys):
    t1 = _script("table1")
    args = [str(ROOT / "keyframes" / "identity.toml"), "--size", "72", "--steps", "50", "--seeds", "0",
            "--final", "0.5625", "--locate-size", "32", "--out", str(tmp_path)]
    assert t1.main(args + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["condition"] == "identity" and d["precision"] == "float64" and d["rule"] == "busiest"
    assert [s["seed"] for s in d["seeds"]] == [0] and d["seeds"][0]["levels"] == 5
    assert t1.main(args) == 0  # the same row again, read from the cache
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("seed 0: paper ")
    assert out[-1].startswith(f"identity: paper's value 1.17; paper's estimator median {d['paper_estimator']['median']:.3f}")


def test_tile_dimensions_tell_a_smooth_block_from_a_rough_one():
    edge = np.zeros((256, 256), dtype=bool)
    edge[60, :128] = True  # a straight line across the first block
    rng = np.random.default_rng(0)
    edge[128:, 128:] = rng.random((128, 128)) < 0.5  # rough: far from a curve's 1
    d = dm.tile_dimensions(edge, 128, "fit")
    assert abs(d[0, 0] - 1.0) < 0.05
    assert d[1, 1] > 1.5  # a half-filled random block reads 1.79 over boxes of 1 to 16 px
    assert np.isnan(d[0, 1]) and np.isnan(d[1, 0])  # no boundary there
    p = dm.tile_dimensions(edge, 128, "paper")
    assert abs(p[0, 0] - 1.0) < 0.1 and np.isnan(p[0, 1])


def test_boundary_map_places_each_block_at_its_plane_coordinates():
    bm = _script("boundary_map")
    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (256, 256))
    raw = -np.ones((256, 256))
    raw[:128, 200:] = 1.0  # a boundary between columns 199 and 200, in the lower half only
    found = bm.blocks(raw, view, 128, "fit")
    assert len(found) == 1
    b = found[0]
    assert (b["row"], b["col"]) == (0, 1) and abs(b["dimension"] - 1.0) < 0.05
    xs, ys = path.axis_coords(view)
    assert b["x"] == float(xs[192]) and b["y"] == float(ys[64])
