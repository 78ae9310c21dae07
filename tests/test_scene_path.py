"""Keyframe format, bad input, and the exact zoom path."""

import subprocess
import sys
from decimal import Decimal, localcontext

import pytest

from zoomreel import path, scene
from zoomreel.errors import UserError

GOOD = """
[model]
steps = 20
[video]
size = [32, 16]
[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0
"""

KF2 = """
[[keyframe]]
time = 1.0
center = [2.5, 2.0]
span = 1.0
"""

BAD = {
    "malformed": ("[model\nsteps = 20", "line 1"),
    "unknown_top": ('titel = "x"\n' + GOOD, "did you mean 'title'"),
    "unknown_model_key": (GOOD.replace("steps = 20", "step = 20"), "did you mean 'steps'"),
    "unknown_video_key": (GOOD.replace("[video]", "[video]\nfsp = 30"), "did you mean 'fps'"),
    "unknown_keyframe_key": (GOOD.replace("span = 9.0", "span = 9.0\nzoom = 2"), "keyframe[0].zoom"),
    "steps_type": (GOOD.replace("steps = 20", 'steps = "many"'), "model.steps"),
    "steps_float": (GOOD.replace("steps = 20", "steps = 20.5"), "model.steps"),
    "steps_small": (GOOD.replace("steps = 20", "steps = 3"), "model.steps"),
    "steps_large": (GOOD.replace("steps = 20", "steps = 10000000"), "model.steps"),
    "size_small": (GOOD.replace("[32, 16]", "[4, 16]"), "video.size"),
    "size_shape": (GOOD.replace("[32, 16]", "[32]"), "video.size"),
    "nan_center": (GOOD.replace("[1.5, 1.5]", "[nan, 1.5]"), "keyframe[0].center"),
    "inf_span": (GOOD.replace("span = 9.0", "span = inf"), "keyframe[0].span"),
    "zero_span": (GOOD.replace("span = 9.0", "span = 0.0"), "keyframe[0].span"),
    "negative_span": (GOOD.replace("span = 9.0", "span = -1.0"), "keyframe[0].span"),
    "times_not_increasing": (GOOD + KF2.replace("time = 1.0", "time = 0.0"), "keyframe[1].time"),
    "first_not_zero": (GOOD.replace("time = 0.0", "time = 1.0"), "keyframe[0].time"),
    "no_keyframes": (GOOD.split("[[keyframe]]")[0], "keyframe"),
    "empty_keyframes": (GOOD.split("[[keyframe]]")[0] + "keyframe = []\n", "keyframe"),
    "bad_nonlinearity": (GOOD.replace("steps = 20", 'steps = 20\nnonlinearity = "tahn"'), "did you mean 'tanh'"),
    "bad_plane": (GOOD.replace("steps = 20", 'steps = 20\nplane = "lr-init"'), "model.plane"),
    "bad_precision": (GOOD.replace("[video]", '[video]\nprecision = "float16"'), "video.precision"),
    "center_string_garbage": (GOOD.replace("[1.5, 1.5]", '["1.5x", 1.5]'), "keyframe[0].center"),
    "missing_span": (GOOD.replace("span = 9.0", ""), "keyframe[0].span"),
    "bad_batch": (GOOD.replace("steps = 20", 'steps = 20\nbatch = "half"'), "model.batch"),
    "bad_fps": (GOOD.replace("[video]", "[video]\nfps = 0"), "video.fps"),
    "overlay_type": (GOOD.replace("[video]", '[video]\noverlay = "yes"'), "video.overlay"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_clear_error(tmp_path, name):
    text, hint = BAD[name]
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        scene.load(p)
    line = e.value.line()
    assert line.startswith("error: ") and f"({p.name}:" in line and "\n" not in line
    assert hint in line, line


@pytest.mark.slow
def test_cli_prints_one_line_and_exits_2(tmp_path):
    """Through the real console entry point: no traceback, exit 2."""
    cases = {"steps_small": BAD["steps_small"][0], "malformed": BAD["malformed"][0]}
    for name, text in cases.items():
        p = tmp_path / f"{name}.toml"
        p.write_text(text)
        r = subprocess.run([sys.executable, "-m", "zoomreel", "frame", str(p)], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: ")
        assert "Traceback" not in r.stderr
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    for args in (["--time", "5"], ["--time", "abc"], ["--size", "10x10"], ["--precision", "half"]):
        r = subprocess.run([sys.executable, "-m", "zoomreel", "frame", str(good), *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, (args, r.stderr)
    r = subprocess.run([sys.executable, "-m", "zoomreel", "frame", str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert r.returncode == 2 and "file not found" in r.stderr


def test_defaults_and_exact_digits(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text(GOOD.replace("[1.5, 1.5]", '["2.12982527591884718", 1.5]'))
    s = scene.load(p)
    assert s.model.width == 16 and s.model.nonlinearity == "tanh" and s.model.plane == "lr-lr"
    assert s.video.fps == 30 and s.video.precision == "auto"
    assert s.keyframes[0].center[0] == Decimal("2.12982527591884718")


def _two(tmp_path, c1, s1, c2, s2, t2="2.0"):
    p = tmp_path / "z.toml"
    p.write_text(
        "[[keyframe]]\ntime = 0.0\ncenter = [%s, %s]\nspan = %s\n[[keyframe]]\ntime = %s\ncenter = [%s, %s]\nspan = %s\n"
        % (c1[0], c1[1], s1, t2, c2[0], c2[1], s2)
    )
    return scene.load(p)


def test_every_precision_is_accepted_and_dd_hypers_keep_34_digits(tmp_path):
    for name in ("auto", "float32", "float64", "dd"):
        p = tmp_path / f"{name}.toml"
        p.write_text(GOOD.replace("[video]", f'[video]\nprecision = "{name}"'))
        assert scene.load(p).video.precision == name
    # a dd hyperparameter is its decimal value to the last of its ~32 digits
    from zoomreel import engine

    coord = Decimal("2.1298252759188471859431234567891234")
    hi, lo = engine.DD.hypers([coord], True)[0]
    with localcontext(prec=60):
        exact = Decimal(10) ** coord
        assert abs(Decimal(hi) + Decimal(lo) - exact) <= exact * Decimal(2) ** -105
        assert abs(Decimal(float(exact)) - exact) > exact * Decimal(2) ** -60  # float64 alone is far coarser


def test_path_is_a_pure_zoom(tmp_path):
    s = _two(tmp_path, (1.5, 1.5), 9.0, ('"2.5"', '"2.1298"'), "1e-6")
    with localcontext(prec=60):
        r = Decimal("1e-6") / Decimal(9)
        star = [(Decimal(c2) - r * Decimal(c1)) / (1 - r) for c1, c2 in (("1.5", "2.5"), ("1.5", "2.1298"))]
    prev = None
    for t in ("0", "0.5", "1", "1.5", "2"):
        v = path.view_at(s, Decimal(t), (64, 64))
        # the shared point sits at the same fraction of the screen at every time
        with localcontext(prec=60):
            frac = [(star[i] - v.center[i]) / v.span for i in range(2)]
        if prev is not None:
            assert all(abs(a - b) < Decimal("1e-40") for a, b in zip(frac, prev))
        prev = frac
    # log(span) linear in time: half-way is the geometric mean
    mid = path.view_at(s, Decimal("1"), (64, 64))
    with localcontext(prec=60):
        assert abs(mid.span - (Decimal(9) * Decimal("1e-6")).sqrt()) < Decimal("1e-40")
    end = path.view_at(s, Decimal("2"), (64, 64))
    assert end.center == (Decimal("2.5"), Decimal("2.1298")) and end.span == Decimal("1e-6")


def test_equal_spans_pan_linearly(tmp_path):
    s = _two(tmp_path, (0, 0), 1.0, (2, 4), 1.0)
    v = path.view_at(s, Decimal("0.5"), (16, 16))
    assert v.center == (Decimal("0.5"), Decimal("1.0")) and v.span == 1


def test_pixel_sampling_and_frame_count(tmp_path):
    s = _two(tmp_path, (0, 0), 4.0, (0, 0), 1.0, t2="2.5")
    v = path.view_at(s, Decimal(0), (4, 2))
    xs, ys = path.axis_coords(v)
    assert xs == [Decimal("-1.5"), Decimal("-0.5"), Decimal("0.5"), Decimal("1.5")]
    assert ys == [Decimal("-0.5"), Decimal("0.5")]  # row 0 is the lowest y
    assert path.frame_count(s, 30) == 76 and path.frame_count(s, 4) == 11
    with pytest.raises(UserError):
        path.view_at(s, Decimal("2.6"))
