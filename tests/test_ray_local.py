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

import numpy as np
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


MODULE = '''
import jax.numpy as jnp

HYPERS = {"curvature": {"default": 1.0, "scale": "log"}}

def init(seed, hp):
    return {"w": jnp.array([1.0, -2.0, 0.5])}

def loss(params, data, hp):
    w = params["w"]
    return 0.5 * hp["curvature"] * jnp.sum(w ** 2) + 0.1 * jnp.sum(jnp.cos(5.0 * w))
'''

PYTHON_SCENE = '''[model]
kind = "python"
module = "bowl.py"
steps = 20

[plane]
x = "lr"
y = "curvature"

[video]
size = [16, 16]
fps = 2
precision = "float64"

[[keyframe]]
time = 0.0
center = ["0.0", "0.0"]
span = 2

[[keyframe]]
time = 1.0
center = ["0.2", "0.1"]
span = 1
'''


def test_a_python_module_scene_renders_on_local_ray_as_it_does_here(tmp_path):
    """The module's source travels inside the job: Ray's workers, started
    in no folder of the scene's, train its frames to the same bits."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "bowl.py").write_text(MODULE)
    (scenes / "s.toml").write_text(PYTHON_SCENE)
    here = subprocess.run([*CLI, "render", scenes / "s.toml", "--out", tmp_path / "here", "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    mark = uuid.uuid4().hex
    on_ray = subprocess.run([*CLI, "render", scenes / "s.toml", "--out", tmp_path / "ray", "--quiet", "--ray", "local"],
                            capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, ZOOMREEL_TEST_MARK=mark))
    assert on_ray.returncode == 0, on_ray.stderr
    assert "rendered 3, reused 0" in on_ray.stdout and on_ray.stderr.startswith("ray: 3 tasks on "), on_ray.stderr
    a, b = (sorted((tmp_path / d / "s" / "cache" / "frames").glob("*.npy")) for d in ("here", "ray"))
    assert [f.name for f in a] == [f.name for f in b] and len(a) == 3
    for fa, fb in zip(a, b):
        va, vb = np.load(fa), np.load(fb)
        assert va.tobytes() == vb.tobytes(), fa.name  # bit for bit
        assert (va < 0).any() and (va > 0).any()  # both phases in every frame
    assert (tmp_path / "here" / "s" / "s.mp4").read_bytes() == (tmp_path / "ray" / "s" / "s.mp4").read_bytes()
    assert wait_for(lambda: not marked(mark), 90) is True, marked(mark)
