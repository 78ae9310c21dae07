"""Rendering through Ray: the same cache and video as a local render, and its faults.

The suite starts its own Ray cluster (``ray start --head``, 2 CPUs, free
ports) and stops it at the end; renders join it with ``--ray ADDRESS``.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "zoomreel"]
RAY = str(Path(sys.executable).with_name("ray"))
# 9 frames of 32x32, 40 steps: tasks of about a second on a 2-core CI machine
SCENE = dict(steps=40, w=32, h=32, fps=4, t1="2.0", span1="0.3")


def run(*args, **kw):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(log: Path, env=None, cpus=2):
    """``ray start --head`` in its own session; returns (process, address)."""
    cmd = [RAY, "start", "--head", "--port", "0", "--num-cpus", str(cpus), "--block", "--disable-usage-stats",
           "--include-dashboard", "false", "--dashboard-port", str(_free_port()),
           "--ray-client-server-port", str(_free_port())]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        m = re.search(r"--address='([^']+)'", log.read_text())
        if m:
            return proc, m.group(1)
        time.sleep(0.2)
    stop_cluster(proc)
    raise RuntimeError("ray start failed:\n" + log.read_text())


def stop_cluster(proc):
    proc.send_signal(signal.SIGTERM)  # ray start --block stops every process of its cluster
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module", autouse=True)
def auth_token():
    """The suite's clusters use Ray's token authentication, with a token of their own (not ~/.ray)."""
    import secrets

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class Cluster(str):
    """The cluster's address; ``session``: the session id of its processes."""

    session: int
    armed: Path  # create it, and the next task to start on the cluster kills its worker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    # a test arms a kill of one worker as its task starts by creating the file <armed>
    env = {**os.environ, "ZOOMREEL_SIGNAL_AT": "KILL task", "ZOOMREEL_SIGNAL_ARMED": str(d / "armed")}
    proc, address = start_cluster(d / "ray-start.log", env)
    c = Cluster(address)
    c.armed = d / "armed"
    c.session = proc.pid  # start_new_session: the cluster's processes share this session
    yield c
    stop_cluster(proc)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The scene, and a local render of it (no Ray)."""
    from conftest import TANH_TOML, ZOOM

    d = tmp_path_factory.mktemp("ray")
    p = d / "s.toml"
    p.write_text(TANH_TOML.format(steps=SCENE["steps"], w=SCENE["w"], h=SCENE["h"], fps=SCENE["fps"], model_extra="",
                                  video_extra="", keyframes=ZOOM.format(t1=SCENE["t1"], span1=SCENE["span1"])))
    out = d / "local"
    r = run("render", p, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return p, out


def frames(out: Path) -> dict:
    return {f.name: np.load(f) for f in sorted((out / "s" / "cache" / "frames").glob("*.npy"))}


def same_render(a: Path, b: Path) -> None:
    fa, fb = frames(a), frames(b)
    assert fa.keys() == fb.keys() and len(fa) == 9
    for k in fa:
        assert fa[k].tobytes() == fb[k].tobytes(), k  # bit for bit
    assert (a / "s" / "s.mp4").read_bytes() == (b / "s" / "s.mp4").read_bytes()


def test_ray_render_equals_local_render(cluster, reference, tmp_path):
    p, local = reference
    out = tmp_path / "ray"
    r = run("render", p, "--out", out, "--quiet", "--ray", cluster)
    assert r.returncode == 0, r.stderr
    assert "rendered 9, reused 0" in r.stdout
    # the summary: tasks, workers, pixel-steps/s per worker
    assert re.search(r"ray: 9 tasks on [12] workers \(1 nodes, 2 CPUs, 0 GPUs; 1 CPU per task\)", r.stderr), r.stderr
    assert re.search(r"^  \S+:\d+: \d+ tasks, [0-9.e+]+ pixel-steps/s$", r.stderr, re.M), r.stderr
    same_render(local, out)
    # nothing cached is sent again
    r = run("render", p, "--out", out, "--quiet", "--ray", cluster)
    assert "rendered 0, reused 9" in r.stdout and "ray: 0 tasks" in r.stderr, r.stdout + r.stderr


def test_killed_worker_task_is_retried(cluster, reference, tmp_path):
    p, local = reference
    out = tmp_path / "ray"
    cluster.armed.write_text("")  # the first task to start kills its worker
    r = run("render", p, "--out", out, "--quiet", "--ray", cluster, timeout=300)
    assert not cluster.armed.exists() and Path(f"{cluster.armed}.fired").exists()  # a worker was killed
    Path(f"{cluster.armed}.fired").unlink()
    stdout = r.stdout
    assert r.returncode == 0, r.stderr
    assert "rendered 9, reused 0" in stdout
    same_render(local, out)


def test_killed_driver_then_resume(cluster, reference, tmp_path):
    p, local = reference
    out = tmp_path / "ray"
    frames_dir = out / "s" / "cache" / "frames"
    killed = run("render", p, "--out", out, "--quiet", "--ray", cluster, timeout=300,
                 env={**os.environ, "ZOOMREEL_SIGNAL_AT": "KILL unit 2"})  # the driver, once it has written 2 frames
    assert killed.returncode == -signal.SIGKILL
    cached = len(list(frames_dir.glob("*.json")))
    assert cached == 2, cached
    r = run("render", p, "--out", out, "--quiet", "--ray", cluster)  # resumes on Ray
    assert r.returncode == 0, r.stderr
    m = re.search(r"rendered (\d+), reused (\d+)", r.stdout)
    assert int(m.group(2)) >= cached and int(m.group(1)) + int(m.group(2)) == 9
    assert f"ray: {m.group(1)} tasks" in r.stderr
    same_render(local, out)


def test_unreachable_cluster_is_one_error_line(reference, tmp_path):
    p, _ = reference
    out = tmp_path / "o"
    port = _free_port()  # nothing listens there
    r = run("render", p, "--out", out, "--quiet", "--ray", f"127.0.0.1:{port}", timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused) (--ray): "
                                "start it with ray start --head on the head node, or check the address and port")
    assert not list(out.glob("s/cache/frames/*"))


def test_error_inside_a_task_reads_as_a_local_run(cluster, write_scene, tmp_path):
    deep = """
[[keyframe]]
time = 0.0
center = ["2.5", "2.1298"]
span = 1e-9

[[keyframe]]
time = 0.5
center = ["2.5", "2.1298"]
span = 1e-9
"""
    p = write_scene(steps=20, w=16, h=16, fps=4, video_extra='precision = "float32"', keyframes=deep)
    local = run("render", p, "--out", tmp_path / "a", "--quiet")
    on_ray = run("render", p, "--out", tmp_path / "b", "--quiet", "--ray", cluster)
    assert local.returncode == on_ray.returncode == 2
    assert local.stderr.startswith("error: float32 cannot tell neighbouring pixels apart"), local.stderr
    assert on_ray.stderr.strip() == local.stderr.strip()


def test_workers_that_cannot_import_zoomreel(reference, tmp_path):
    p, _ = reference
    fake = tmp_path / "fake" / "zoomreel"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("no zoomreel on this node")\n')
    env = dict(os.environ, PYTHONPATH=str(fake.parent))
    proc, address = start_cluster(tmp_path / "ray-start.log", env, cpus=1)
    try:
        out = tmp_path / "o"
        r = run("render", p, "--out", out, "--quiet", "--ray", address, cwd=tmp_path, timeout=240)
    finally:
        stop_cluster(proc)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().startswith("error: Ray workers cannot import zoomreel: "), r.stderr
    assert r.stderr.strip().endswith(f"(--ray {address}): install the same zoomreel, with its dependencies, on every node "
                                     "of the cluster (see README, On a cluster)"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_without_ray_installed_ray_is_one_error_line(reference, tmp_path):
    p, _ = reference
    code = "import sys; sys.modules['ray'] = None; from zoomreel.cli import main; sys.argv[0] = 'zoomreel'; main()"
    r = subprocess.run([sys.executable, "-c", code, "render", str(p), "--out", str(tmp_path), "--ray", "local"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: Ray is not installed (--ray): install it with pip install 'zoomreel[ray]' "
                                "(in a clone: pip install -e '.[ray]')")


def test_ray_takes_local_or_an_address(monkeypatch, tmp_path):
    """--ray local asks for a local runtime; an address, that cluster; no --ray, this process."""
    from typer.testing import CliRunner

    from zoomreel.cli import app
    from zoomreel.cli import commands

    asked = []

    def executor(ray):
        asked.append(ray)
        raise SystemExit(3)  # what was asked is all this test needs

    monkeypatch.setattr(commands, "_executor", executor)
    p = tmp_path / "p.toml"
    p.write_text('[[keyframe]]\ntime = 0\ncenter = [1.5, 1.5]\nspan = 9\n')
    for args, want in ((["--ray", "local", "--quiet"], "local"), (["--ray", "auto"], "auto"),
                       (["--ray", "ray://h:10001"], "ray://h:10001"), ([], None)):
        CliRunner().invoke(app, ["render", str(p), "--out", str(tmp_path / "o"), *args])
        assert asked.pop() == want, args
