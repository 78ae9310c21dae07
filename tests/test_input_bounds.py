"""Numbers no drawing needs are refused at the file (or option) with one line.

An integer longer than Python converts (4300 digits) names its key and the
key's range; a decimal smaller than 1e-1000 (a time of 1e-2000000) is
refused when the file is read, before the path's exact arithmetic meets it,
and one of a huge exponent is off the plane; ``locate --depth`` deeper than the
path's decimals separate is refused before the first level trains.
"""

import pytest
from typer.testing import CliRunner

from zoomreel import work
from zoomreel.cli import app

SCENE = """
[model]
steps = 20
seed = {seed}
{model_extra}
[video]
size = [{w}, 16]
fps = {fps}
[[keyframe]]
time = {t0}
center = [1.5, 1.5]
span = 9.0
[[keyframe]]
time = {t1}
center = [{cx}, "2.1298"]
span = {span}
"""
DEFAULT = dict(seed="0", model_extra="", w="16", fps="2", t0="0.0", t1="1.0", cx="2.5", span="1.0")
LONG = "7" * 5000


def write(tmp_path, **changes):
    p = tmp_path / "s.toml"
    p.write_text(SCENE.format(**dict(DEFAULT, **changes)))
    return p


def one_error(args) -> str:
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and r.stdout == "", r.output
    return lines[0]


@pytest.mark.parametrize("change, line", [
    (dict(seed=LONG), "error: an integer of 5000 digits is outside the range (s.toml:model.seed): use a value from 0 to 2147483647"),
    (dict(seed="-" + LONG), "error: an integer of 5000 digits is outside the range (s.toml:model.seed): use a value from 0 to 2147483647"),
    (dict(seed="1_" + "0" * 4400), "error: an integer of 4401 digits is outside the range (s.toml:model.seed): use a value from 0 to 2147483647"),
    (dict(model_extra="steps_ = 1"), None),  # a short number is not this error
    (dict(fps=LONG), "error: an integer of 5000 digits is outside the range (s.toml:video.fps): use a value from 1 to 240"),
    (dict(w=LONG), "error: an integer of 5000 digits is outside the range (s.toml:video.size): use a value from 16 to 8192"),
    (dict(t1=LONG), "error: an integer of 5000 digits is outside the range (s.toml:keyframe[1].time): use a value from 0 to 3600"),
    (dict(cx=LONG), "error: an integer of 5000 digits is too large (s.toml:keyframe[1].center): write it with at most 4300 digits (centres and spans: keep within about 1e300)"),
    (dict(span=LONG), "error: an integer of 5000 digits is too large (s.toml:keyframe[1].span): write it with at most 4300 digits (centres and spans: keep within about 1e300)"),
])
def test_an_integer_too_long_for_python_names_its_key_and_range(tmp_path, change, line):
    got = one_error(["info", write(tmp_path, **change)])
    if line is None:
        assert "digits" not in got and "steps_" in got  # the ordinary unknown-key error
    else:
        assert got == line


@pytest.mark.parametrize("change, where", [
    (dict(t1="1e-2000000"), "keyframe[1].time"),
    (dict(t1='"1e-2000000"'), "keyframe[1].time"),
    (dict(t1="1e-1001"), "keyframe[1].time"),
    (dict(cx="1e-2000000"), "keyframe[1].center"),
])
def test_a_decimal_too_small_for_exact_arithmetic_is_refused_when_the_file_is_read(tmp_path, change, where):
    line = one_error(["frame", write(tmp_path, **change), "--time", "0.5"])
    assert line.endswith(f"is too small a magnitude (s.toml:{where}): use 0 or a magnitude of at least 1e-1000"), line


@pytest.mark.parametrize("change", [dict(cx='"1e999999"'), dict(cx='"-1e999999999"'), dict(span="1e999999")])
def test_a_decimal_of_a_huge_exponent_is_off_the_plane(tmp_path, change):
    line = one_error(["frame", write(tmp_path, **change), "--time", "0.5"])
    assert "reaches hyperparameters that float64 cannot hold" in line, line


def test_a_span_of_a_tiny_exponent_is_too_deep(tmp_path):
    line = one_error(["frame", write(tmp_path, span="1e-2000000"), "--time", "0.5"])
    assert line.startswith("error: span 1E-2000000 is too deep: neighbouring pixels are equal in float64 (s.toml:keyframe[1].span)"), line


def test_a_zero_with_any_exponent_is_zero(tmp_path):
    r = CliRunner().invoke(app, ["info", str(write(tmp_path, t0="0e-2000000", cx="0e-999999")), "--json"])
    assert r.exit_code == 0, r.output


def test_a_long_decimal_in_an_error_is_shown_in_short(tmp_path):
    line = one_error(["info", write(tmp_path, t1="1" * 300 + ".5")])
    assert line == "error: 1.111111e+299 is above the maximum 3600 (s.toml:keyframe[1].time): use a value from 0 to 3600"


@pytest.mark.parametrize("depth, shown", [("1e-400", "1e-400"), ("1e-58", "1e-58"), ("1e-2000000", "1e-2000000")])
def test_locate_refuses_a_depth_no_arithmetic_trains_before_training(tmp_path, monkeypatch, depth, shown):
    def trained(*a, **k):
        raise AssertionError("locate trained a level before refusing the depth")

    monkeypatch.setattr(work, "train_view", trained)
    line = one_error(["locate", write(tmp_path), "--depth", depth])
    # perturbation trains any depth whose pixels the path's 60-digit decimals tell apart
    assert line.startswith(f"error: span {shown} is too deep: neighbouring pixels are equal in 60-digit decimals "
                           "(--depth): the deepest span this size supports here is about 9.6e-58"), line
