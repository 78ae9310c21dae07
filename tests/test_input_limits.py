"""Every valid keyframe file renders; every bad one is one line, quickly;
names and text from the user are data, never structure."""

import json
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoomreel.plan import make_plan
from zoomreel import encode, path, render, scene
from zoomreel.cli import app
from zoomreel.errors import UserError

KEYFRAMES = """
[[keyframe]]
time = 0.0
center = [{c0}, 1.5]
span = 9.0

[[keyframe]]
time = {t1}
center = [{c1x}, {c1y}]
span = {span1}
"""


def write(tmp_path, name="s", *, t1="1.0", fps=4, c0="1.5", c1x='"2.5"', c1y='"2.1298"', span1="1.0",
          size="[16, 16]", kind="", title="", text=None, encoding="utf-8"):
    body = text if text is not None else (
        (f"title = {title}\n" if title else "")
        + f"[model]\nsteps = 20\n{kind}\n[video]\nsize = {size}\nfps = {fps}\n"
        + KEYFRAMES.format(c0=c0, t1=t1, c1x=c1x, c1y=c1y, span1=span1)
    )
    p = tmp_path / f"{name}.toml"
    p.write_bytes(body.encode(encoding))
    return p


def cli(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


# -- every valid keyframe file renders


@pytest.mark.parametrize("fps,t1", [(4, "1.9"), (3, "1"), (7, "0.99"), (240, "0.0042"), (30, "2.0333"), (12, "2.5"),
                                    (1, "0.5"), (24, "3.14159265358979323846264338327950288419716939937510582097494459")])
def test_every_frame_lies_on_the_path(tmp_path, fps, t1):
    s = scene.load(write(tmp_path, t1=t1, fps=fps))
    n = path.frame_count(s)
    T = Fraction(t1)
    assert n == int(T * fps) + 1  # floor(T * fps) + 1, computed independently
    plan = make_plan(s, out=tmp_path / "o")
    assert plan.n_frames == n
    for k in (0, n - 1):  # the first and the last frame have a view
        assert plan.view(k).span > 0
    assert path.frame_time(n - 1, fps) <= s.duration < path.frame_time(n, fps)


def test_a_last_time_that_k_over_fps_rounds_past_still_renders(tmp_path):
    """2/3 s rounded to 60 digits is just above a last time written with 70 digits."""
    t1 = "0." + "6" * 69 + "7"
    s = scene.load(write(tmp_path, t1=t1, fps=3))
    n = path.frame_count(s)
    assert n == 2 and path.view_at(s, path.frame_time(n - 1, 3)).span > 0


def test_an_off_grid_end_renders_its_frames(tmp_path):
    p = write(tmp_path, t1="0.9", fps=4)  # frames at 0, 0.25, 0.5, 0.75
    res = render.render(make_plan(scene.load(p), out=tmp_path / "o"))
    assert res.rendered == 4 and encode.probe(res.video)["frames"] == 4


# -- every bad file is one line


@pytest.mark.parametrize("t1", ["1e5", "3601", "1e308", '"1e999999999"', "1e400"])
def test_huge_times_are_refused_at_once(tmp_path, t1):
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, t1=t1))
    assert e.value.where == "s.toml:keyframe[1].time" and "maximum 3600" in e.value.what


def test_too_many_frames_are_refused_at_once(tmp_path):
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, t1="1000", fps=240))
    assert "240001 frames" in e.value.what and "100000" in e.value.what
    assert make_plan(scene.load(write(tmp_path, t1="3333.3", fps=30))).n_frames == 100_000


RANGE = "reaches hyperparameters that float64 cannot hold"


@pytest.mark.parametrize("field,value", [
    ("c0", "1e6"), ("c0", "-1e6"), ("c0", "1e308"), ("c0", '"1e999999999"'), ("c0", '"-1e999999999"'),
    ("c1x", "309"), ("c1y", "-400"), ("c1x", "307.9"), ("span1", "1e308"), ("span1", '"1e999999999"'),
])
def test_coordinates_outside_the_plane_are_refused_in_the_scene(tmp_path, field, value):
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, **{"span1": "1.0", field: value}))
    assert RANGE in e.value.what and "between about -300 and 300" in e.value.fix


def test_the_plane_boundary_is_float64s(tmp_path):
    # 10**307.9 is a float64, 10**308.3 is not; both ends of each view are checked
    scene.load(write(tmp_path, c1x="307.4", span1="1.0"))
    scene.load(write(tmp_path, c1x="-322.5", span1="1.0"))
    with pytest.raises(UserError):
        scene.load(write(tmp_path, c1x="307.9", span1="1.0"))
    with pytest.raises(UserError):
        scene.load(write(tmp_path, c1x="-323.5", span1="1.0"))
    # a taller --size reaches further along y than the file's own size
    s = scene.load(write(tmp_path, c1y="308.1", c1x="2", span1="0.1", size="[64, 16]"))
    with pytest.raises(UserError) as e:
        s.with_video(size=(16, 64))
    assert RANGE in e.value.what


def test_mandelbrot_plane_is_float64s_range(tmp_path):
    m = 'kind = "mandelbrot"'
    scene.load(write(tmp_path, kind=m, c0="1e300", c1x="0", c1y="0"))
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, kind=m, c0="1.8e308", c1x="0", c1y="0"))
    assert RANGE in e.value.what and "1e308" in e.value.fix


def test_a_span_below_float64s_reach_is_refused(tmp_path):
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, span1='"1e-999999999"'))
    assert "too deep" in e.value.what and e.value.where == "s.toml:keyframe[1].span"


@pytest.mark.parametrize("cmd", [["info"], ["frame", "--time", "0.5"], ["render", "--quiet"], ["locate"], ["dimension", "--quiet"]])
def test_out_of_range_files_are_one_line_in_every_command(tmp_path, cmd):
    p = write(tmp_path, c0='"1e999999999"')
    args = [cmd[0], p, *cmd[1:]] + (["--out", tmp_path / "o"] if cmd[0] in ("info", "render", "dimension") else [])
    rc, out, err = cli(*args)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: the view centre (1e+999999999") and RANGE in err


def test_info_warns_about_a_span_render_refuses_and_render_refuses_before_training(tmp_path):
    # neighbours 1.6e-61 apart in log10: equal in dd, and in the path's 60-digit decimals that perturbation needs
    p = write(tmp_path, span1="1e-59", size="[64, 64]")
    rc, out, err = cli("info", p, "--out", tmp_path / "o", "--json")
    d = json.loads(out)
    assert rc == 0 and len(d["warnings"]) == 1 and "too deep" in d["warnings"][0] and "frame 4" in d["warnings"][0]
    rc, out, err = cli("info", p, "--out", tmp_path / "o")
    assert rc == 0 and err.startswith("warning: render would stop: span 1e-59 is too deep")
    rc, out, err = cli("render", p, "--out", tmp_path / "o", "--quiet")
    assert rc == 2 and "too deep" in err
    assert not list((tmp_path / "o").rglob("*.npy")) and not list((tmp_path / "o").rglob("*.json"))


def test_messages_show_what_the_user_wrote(tmp_path):
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, text="[[keyframe]]\ntime = -1.0\ncenter = [1.5, 1.5]\nspan = 9.0\n"))
    assert e.value.fix == "use a value from 0 to 3600" and "None" not in e.value.line()
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, text='[[keyframe]]\ntime = 0.0\ncenter = [1.5, 2, "3"]\nspan = 9.0\n'))
    assert "got [1.5, 2, '3']" in e.value.what and "Decimal" not in e.value.line()
    with pytest.raises(UserError) as e:
        scene.load(write(tmp_path, text="[video]\nsize = [1.5, 2.5, 3.5]\n[[keyframe]]\ntime = 0.0\ncenter = [1.5, 1.5]\nspan = 9.0\n"))
    assert "Decimal" not in e.value.line()


def test_a_byte_order_mark_is_accepted(tmp_path):
    s = scene.load(write(tmp_path, encoding="utf-8-sig", title='"with a BOM"'))
    assert s.title == "with a BOM" and len(s.keyframes) == 2


def test_frame_into_an_unwritable_place_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for opt in ("--png", "--npy"):
        rc, out, err = cli("frame", write(tmp_path), opt, blocker / "f.out")
        assert rc == 2 and err.startswith("error: cannot write this file") and f"give {opt} a file path" in err
        assert out == ""  # no frame summary: nothing was trained


# -- paths and text from the user are data, never structure

NAMES = ["...", "..", ".", "", "....", " ", ". .", "-", "~", "a\x1b[31mb", "\u202e.evil", "back\\..\\slash", "name:colon", "\n"]


@pytest.mark.parametrize("stem", NAMES)
def test_output_names_stay_inside_the_output_folder(tmp_path, stem):
    (tmp_path / "in").mkdir()
    p = write(tmp_path / "in", name=stem)
    out = (tmp_path / "out").resolve()
    plan = make_plan(scene.load(p), out=out)
    for q in (plan.video_path, plan.cache.root):
        r = q.resolve()
        assert r.is_relative_to(out)
        assert r.relative_to(out).parts[0] == plan.scene.stem
    assert plan.scene.stem not in ("", ".", "..") and "/" not in plan.scene.stem and "\x1b" not in plan.scene.stem


def test_a_file_named_dot_dot_renders_inside_out(tmp_path):
    p = write(tmp_path, name="..")  # "...toml"
    rc, out, err = cli("render", p, "--out", tmp_path / "o", "--quiet")
    assert rc == 0, err
    made = {q.relative_to(tmp_path) for q in tmp_path.rglob("*.mp4")}
    assert made == {Path("o/scene/scene.mp4")}


TITLES = ['"[/]"', '"[/bold] tail"', '"[red]x[/red] [b]"', '"escape \\u001b[31mred\\u001b[0m"', '"back\\\\"', '"tab\\there"',
          '"\\u202eright-to-left"', '"[link=file:///etc/passwd]x[/link]"']


@pytest.mark.parametrize("title", TITLES)
def test_titles_are_printed_literally(tmp_path, title):
    p = write(tmp_path, title=title)
    want = scene.load(p).title
    rc, out, err = cli("info", p, "--out", tmp_path / "o")
    assert rc == 0, err
    first = out.splitlines()[0]
    literal = "".join(c for c in want.replace("\t", " ") if c not in "\x1b\u202e")
    assert first.startswith(literal + "  ") and "\x1b" not in out and "\u202e" not in out


def test_control_characters_never_reach_the_terminal_in_errors(tmp_path):
    p = write(tmp_path, name="x\x1b[2Jy", text='[model]\n"\\u001b[2Jsteps" = 3\n[[keyframe]]\ntime = 0.0\ncenter = [1.5, 1.5]\nspan = 9.0\n')
    rc, out, err = cli("info", p)
    assert rc == 2 and err.startswith("error: unknown key '[2Jsteps'") and "\x1b" not in err
