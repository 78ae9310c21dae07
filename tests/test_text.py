"""Text from a file or a cache record reaches the terminal literally.

Rich markup (``[/bold]``) prints as written, and control characters (ANSI
escapes, OSC 8 links, C1 controls), bidi overrides (U+202E) and undecodable
bytes never reach the terminal, in the progress display, ``info``, ``frame``
and error lines alike.
"""

import json
import subprocess
import sys

from typer.testing import CliRunner

from conftest import scene_text
from zoomreel import render, scene, work
from zoomreel.plan import make_plan
from zoomreel.cache import seal
from zoomreel.cli import app
from zoomreel.errors import literal, printable

CLI = [sys.executable, "-m", "zoomreel"]
HOSTILE = "[/bold][red]x\x1b[31m\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ \u202eevil\u2066 \x9b2J"
SHOWN = "[/bold][red]x[31m]8;;http://evil.example\\link]8;;\\ evil 2J"  # HOSTILE as printed


def titled(title: str) -> str:
    """3 frames of 16x16 under ``title`` (TOML)."""
    return f"title = {title}\n" + scene_text(steps=20, fps=2)


def toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string with \\u escapes is a valid TOML basic string


def clean(text: str) -> None:
    """Nothing in ``text`` a terminal would act on."""
    for bad in ("\x1b", "\x9b", "\u202e", "\u2066"):
        assert bad not in text, repr(text)


def test_the_helpers_print_hostile_text_as_written():
    assert printable(HOSTILE) == SHOWN
    assert literal("[/bold] a\x1b[0m") == "\\[/bold] a[0m"
    assert printable("name\udcff.toml") == "name\ufffd.toml"


def test_a_decision_warning_with_markup_and_escapes_prints_literally_in_the_progress_display(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(titled('"t"'))
    out = tmp_path / "o"
    plan = make_plan(scene.load(toml), out=out)
    assert render.render(plan).rendered == 3
    # frame 1 is trained again with its cached decision, which now carries a hostile warning
    units = work.FrameUnits(plan)
    st, dk = units.lookup(1), units.decision_key(1)
    p = plan.cache.decisions / f"{dk}.json"
    body = {k: v for k, v in json.loads(p.read_text()).items() if k not in ("key", "check")}
    p.write_text(json.dumps(seal(dk, dict(body, warning=HOSTILE))))
    for suffix in (".json", ".npy"):
        (plan.cache.frames / f"{st.key}{suffix}").unlink()
    r = subprocess.run([*CLI, "render", toml, "--out", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"warning: frame 1: {SHOWN}" in r.stderr
    clean(r.stderr)
    assert "rendered 1, reused 2" in r.stdout


def test_info_prints_a_hostile_title_literally(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(titled(toml_string(HOSTILE)))
    r = CliRunner().invoke(app, ["info", str(toml), "--out", str(tmp_path / "o")], color=True)
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0]
    assert SHOWN in first
    clean(first.replace("\x1b[1m", "").replace("\x1b[0m", ""))  # rich's own bold is the only escape


def test_an_error_quoting_the_file_is_one_clean_line(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(titled('"t"').replace("[video]", f"[video]\n{toml_string(HOSTILE)} = 1"))
    r = subprocess.run([*CLI, "info", toml], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: unknown key '{SHOWN}'"), r.stderr
    clean(r.stderr)


def test_a_file_name_with_an_undecodable_byte_is_printed(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(titled('"t"').replace("span = 1.0", "span = 1.0\ncolour = 1"))
    odd = tmp_path / "b\udcff.toml"  # the byte 0xff, as Python names it
    toml.rename(odd)
    r = subprocess.run([*CLI, "info", odd], capture_output=True, text=True, errors="replace")
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown key 'colour' (b\ufffd.toml:keyframe[1].colour)"), r.stderr
