"""``--ray`` alone: a local Ray runtime that stays out of the terminal and out of JAX's way.

The real CLI's stderr is checked (pytest's own warning filters do not reach
a subprocess): no "os.fork() was called" warning from JAX, no Ray log line,
only zoomreel's summary; and the runtime's processes end with the render,
or with the driver when it is killed.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import scene_text

pytest.importorskip("ray")

CLI = [sys.executable, "-m", "zoomreel"]


def marked(mark: str) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose environment carries ``mark``."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if f"ZOOMREEL_TEST_MARK={mark}".encode() in (d / "environ").read_bytes().split(b"\0"):
                found.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            pass
    return found


def wait_for(cond, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    return cond()


def start(tmp_path, fps, *extra):
    (tmp_path / "s.toml").write_text(scene_text(steps=20, fps=fps))
    mark = uuid.uuid4().hex
    env = dict(os.environ, ZOOMREEL_TEST_MARK=mark)
    p = subprocess.Popen([*CLI, "render", tmp_path / "s.toml", "--out", tmp_path / "o", "--quiet", "--ray", *(extra or ["local"])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return p, mark


def test_a_local_ray_render_prints_only_zoomreel_lines_and_leaves_no_process(tmp_path):
    p, mark = start(tmp_path, 2)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "rendered 3, reused 0" in out
    lines = err.splitlines()
    assert lines[0].startswith("ray: 3 tasks on ") and all(ln.startswith("  ") and " tasks, " in ln for ln in lines[1:]), err
    assert "fork" not in err and "\x1b" not in err
    assert wait_for(lambda: not marked(mark), 90) is True, marked(mark)


def test_a_killed_driver_takes_its_local_runtime_with_it(tmp_path):
    p, mark = start(tmp_path, 30)  # 31 frames
    up = wait_for(lambda: any("raylet" in cmd for _, cmd in marked(mark)) or p.poll() is not None)
    assert up and p.poll() is None, "the local runtime did not start while the render ran"
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    assert wait_for(lambda: not marked(mark), 120) is True, marked(mark)
