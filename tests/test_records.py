"""Cache records that cannot be read are damaged: counted, retrained, rewritten.

Whatever bytes a record holds (JSON null, nesting deeper than any parser
goes, a number past Python's integer-conversion limit, a valid record of the
wrong shape sealed again), in frames mode and in pyramid mode, for frame
records and precision decisions alike: ``info`` and ``render`` agree on what
is cached, neither prints a traceback, and the next render reuses it all.
"""

import json
import shutil
import zlib

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import scene_text
from zoomreel import render, scene
from zoomreel.plan import make_plan
from zoomreel.cache import seal
from zoomreel.cli import app

FRAMES = scene_text(steps=20, fps=2)  # 3 frames of 16x16

# a 32x16 view on pyramid level 3's lattice: four tiles of 64x64
PYRAMID = """
title = "records"
[model]
steps = 20
[video]
size = [32, 16]
fps = 2
mode = "pyramid"
precision = "float32"
[[keyframe]]
time = 0.0
center = ["2.0", "2.0"]
span = 1
"""

UNITS = {"frames": 3, "pyramid": 4}

BROKEN = {
    "nested 100000 deep": b"[" * 100000,
    "nested and closed": b"[" * 100000 + b"]" * 100000,
    "null": b"null",
    "an integer of 5000 digits": b"1" * 5000,
    "a string": b'"record"',
}


@pytest.fixture(scope="module")
def masters(tmp_path_factory):
    """Each mode's scene, rendered once, copied fresh into each test."""
    out = {}
    for mode, text in (("frames", FRAMES), ("pyramid", PYRAMID)):
        root = tmp_path_factory.mktemp(mode)
        (root / "s.toml").write_text(text)
        res = render.render(make_plan(scene.load(root / "s.toml"), out=root / "o"))
        assert res.rendered == UNITS[mode]
        out[mode] = root
    return out


def fresh(masters, mode, tmp_path):
    shutil.copytree(masters[mode], tmp_path / "w")
    return tmp_path / "w"


def records(work, kind):
    """The cache's record files of one kind (frames: the trained units' records; decisions)."""
    found = sorted(work.glob(f"o/**/{kind}/*.json"))
    assert found
    return found


def info(work) -> dict:
    r = CliRunner().invoke(app, ["info", str(work / "s.toml"), "--out", str(work / "o"), "--json"])
    assert r.exit_code == 0 and r.stderr == "", r.output
    return json.loads(r.stdout)


def rerender(work):
    return render.render(make_plan(scene.load(work / "s.toml"), out=work / "o"))


def agree_then_heal(work, mode, damaged=1):
    n = UNITS[mode]
    before = info(work)
    assert (before["cached"], before["damaged"]) == (n - 1, damaged)
    res = rerender(work)
    assert (res.rendered, res.reused, res.damaged) == (1, n - 1, damaged)
    after = info(work)
    assert (after["cached"], after["damaged"]) == (n, 0)
    assert rerender(work).rendered == 0


@pytest.mark.parametrize("mode", UNITS)
@pytest.mark.parametrize("kind", ["frames", "decisions"])
@pytest.mark.parametrize("content", BROKEN)
def test_an_unreadable_record_is_damaged_counted_and_retrained(masters, tmp_path, mode, kind, content):
    work = fresh(masters, mode, tmp_path)
    records(work, kind)[0].write_bytes(BROKEN[content])
    agree_then_heal(work, mode)


def test_the_cli_render_says_how_many_were_damaged_without_a_traceback(masters, tmp_path):
    work = fresh(masters, "pyramid", tmp_path)
    records(work, "frames")[0].write_bytes(b"[" * 100000)
    records(work, "frames")[1].write_bytes(b"null")
    r = CliRunner().invoke(app, ["render", str(work / "s.toml"), "--out", str(work / "o"), "--quiet"])
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert "rendered 2, reused 2 tiles, 2 cache records failed verification and were redone" in r.stdout


@pytest.mark.parametrize("mode", UNITS)
def test_a_resealed_record_of_the_wrong_shape_is_damaged_for_info_and_render_alike(masters, tmp_path, mode):
    work = fresh(masters, mode, tmp_path)
    p = records(work, "frames")[0]
    stored = json.loads(p.read_text())
    key = stored["key"]
    arr = np.zeros((8, 8))  # a consistent record and array, but not of the size this unit has
    body = {k: v for k, v in stored.items() if k not in ("key", "check")}
    body.update(shape=[8, 8], crc=zlib.crc32(arr.tobytes()))
    p.write_text(json.dumps(seal(key, body)))
    np.save(p.with_suffix(".npy"), arr)
    agree_then_heal(work, mode)
