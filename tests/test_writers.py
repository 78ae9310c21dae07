"""Every file zoomreel writes: whole or not at all, on a full disk too, and
never in place of a device, a pipe or a symbolic link.

A full disk is a real one where this process may mount a small tmpfs (root,
as in CI); the same failure of the encoder without mount privileges comes
from a file-size limit (RLIMIT_FSIZE), which makes the kernel refuse
ffmpeg's writes just as a full disk does. /dev/full is a real device that
answers every write with "no space left".
"""

import io
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import scene_text
from zoomreel import atomic
from zoomreel.cache import Cache
from zoomreel.errors import UserError

CLI = [sys.executable, "-m", "zoomreel"]
SCENE = scene_text(steps=20, fps=2)  # 3 frames of 16x16


def cli(*args, cwd=None, preexec_fn=None, stdout=subprocess.PIPE):
    return subprocess.run([*CLI, *map(str, args)], stdout=stdout, stderr=subprocess.PIPE, text=stdout is subprocess.PIPE,
                          cwd=cwd, preexec_fn=preexec_fn)


def one_error(stderr: str, starts: str = "error: ") -> str:
    """The one error line, last on stderr (a progress bar's final state may stand before it)."""
    lines = stderr.splitlines()
    assert lines and lines[-1].startswith(starts), stderr
    assert sum(line.startswith("error") or "Traceback" in line for line in lines) == 1, stderr
    return lines[-1]


def leftovers(folder):
    return sorted(p.name for p in folder.glob(".*.tmp*"))


@pytest.fixture
def toml(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SCENE)
    return p


@pytest.fixture
def dim_toml(tmp_path):
    """A scene large enough to box-count (the shorter side at least 65 px)."""
    p = tmp_path / "d.toml"
    p.write_text(scene_text(steps=40, w=96, h=72, fps=2))
    return p


@pytest.fixture
def small_disk(tmp_path):
    """A 512 kB filesystem of its own (a tmpfs), unmounted after the test."""
    d = tmp_path / "disk"
    d.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; test_a_file_size_limit_* covers the same path without it")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=True)


def fill(disk):
    """Fill the filesystem to its last byte; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as e:
                assert e.errno == 28  # ENOSPC
    finally:
        os.close(fd)
    return filler


def _file_size_limit(n):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))

    return pre


# -- a full disk


def test_a_full_disk_keeps_the_old_video_and_the_cache_and_says_so(toml, small_disk):
    out = small_disk
    assert cli("render", toml, "--out", out, "--quiet").returncode == 0
    video = out / "s" / "s.mp4"
    before = video.read_bytes()
    filler = fill(small_disk)

    r = cli("render", toml, "--out", out, "--quiet")  # every frame cached: only the encoder writes
    assert r.returncode == 2
    assert one_error(r.stderr).startswith("error: the disk is full (")
    assert video.read_bytes() == before and leftovers(video.parent) == []

    r = cli("render", toml, "--out", out, "--quiet", "--force")  # the cache's writes fail first
    assert r.returncode == 2 and "the disk is full" in one_error(r.stderr)
    assert video.read_bytes() == before
    assert leftovers(out / "s" / "cache" / "frames") == leftovers(out / "s" / "cache" / "decisions") == []

    filler.unlink()
    r = cli("render", toml, "--out", out, "--quiet")
    assert r.returncode == 0 and r.stderr == "" and "rendered 0, reused 3" in r.stdout, r.stdout + r.stderr


def test_a_file_size_limit_fails_the_encoder_like_a_full_disk_and_keeps_the_old_video(toml, tmp_path):
    out = tmp_path / "o"
    assert cli("render", toml, "--out", out, "--quiet").returncode == 0
    video = out / "s" / "s.mp4"
    before = video.read_bytes()
    assert len(before) > 1000
    r = cli("render", toml, "--out", out, "--quiet", preexec_fn=_file_size_limit(1000))
    assert r.returncode == 2
    # ffmpeg starts with the default action for SIGXFSZ, so the kernel stops it at the limit
    assert one_error(r.stderr) == (f"error: ffmpeg could not write the video: killed by SIGXFSZ ({video}): "
                                   "check the folder and the disk, then run again")
    assert video.read_bytes() == before and leftovers(video.parent) == []


def test_every_writer_on_a_full_disk_keeps_the_old_file(toml, dim_toml, tmp_path, small_disk):
    from typer.testing import CliRunner

    from zoomreel.cli import app

    png, npy, plot, saved = (small_disk / n for n in ("f.png", "f.npy", "dim.png", "saved.toml"))
    for p in (png, npy, plot, saved):
        p.write_bytes(b"old " + p.name.encode())
    # the cache's records: one frame cached on the small disk
    cache = Cache(small_disk / "cache")
    cache.prepare()
    cache.put_frame("k", np.zeros((2, 2)), _record())
    # the plot's frames come from a cache elsewhere
    dim = CliRunner().invoke(app, ["dimension", str(dim_toml), "--out", str(tmp_path / "o"), "--quiet"])
    assert dim.exit_code == 0, dim.output
    fill(small_disk)

    runner = CliRunner()
    for args in (["frame", str(toml), "--png", str(png)], ["frame", str(toml), "--npy", str(npy)],
                 ["dimension", str(dim_toml), "--out", str(tmp_path / "o"), "--quiet", "--plot", str(plot)]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        assert one_error(r.stderr).startswith("error: the disk is full ("), args
    with pytest.raises(UserError, match="the disk is full"):
        cache.put_frame("k", np.ones((2, 2)), _record())
    with pytest.raises(UserError, match="the disk is full"):  # how the explorer saves a keyframe file
        from zoomreel.cache import disk_error

        atomic.write_bytes(saved, b"new", on_error=lambda e, p: disk_error(e, p.parent))
    for p in (png, npy, plot, saved):
        assert p.read_bytes() == b"old " + p.name.encode()
    got = cache.get_frame("k", (2, 2))
    assert got is not None and not got[0].any() and not cache.damaged
    assert leftovers(small_disk) == leftovers(cache.frames) == []


def _record():
    from zoomreel.color import Q

    decision = {"dtype": "float64", "resolved": 1.0, "reason": "test", "f32_agreement": None, "f64_agreement": None,
                "probe_pixels": 0, "warning": None, "dd_agreement": None}
    return {"time": "0", "view": {}, "dtype": "float64", "resolved": 1.0, "decision": decision, "seconds": 0.0,
            "pixel_steps": 0, "summary": {"conv": [0.0] * Q, "div": None}}


# -- devices, pipes, symbolic links


def test_a_device_is_written_into_never_replaced(toml, tmp_path):
    for opt in ("--png", "--npy"):
        r = cli("frame", toml, opt, "/dev/full")
        assert r.returncode == 2
        assert one_error(r.stderr) == ("error: cannot write into this device or pipe: No space left on device (/dev/full): "
                                       "write to a regular file, or to a device or pipe that takes the data")
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    r = cli("frame", toml, "--png", "/dev/null")
    assert r.returncode == 0 and r.stderr == ""
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert leftovers(tmp_path) == []


def test_dev_stdout_is_the_open_descriptor_whatever_it_is(toml, tmp_path):
    # a pipe: the array comes through it, and the summary line goes to stderr instead
    r = subprocess.run([*CLI, "frame", toml, "--npy", "/dev/stdout"], capture_output=True)
    assert r.returncode == 0, r.stderr
    stream = io.BytesIO(r.stdout)
    assert np.load(stream, allow_pickle=False).shape == (16, 16) and stream.read() == b""
    assert r.stderr.decode().splitlines()[-1].startswith("t=0s ")
    # a regular file the shell opened (as >> does): appended through that descriptor, the file not replaced
    target = tmp_path / "out.bin"
    target.write_bytes(b"before\n")
    with open(target, "ab") as f:
        inode = os.fstat(f.fileno()).st_ino
        r = cli("frame", toml, "--png", "/dev/stdout", stdout=f)
    assert r.returncode == 0, r.stderr
    assert os.stat(target).st_ino == inode
    data = target.read_bytes()
    assert data.startswith(b"before\n\x89PNG") and Image.open(io.BytesIO(data[7:])).size == (16, 16)


def test_a_pipe_gets_the_file_and_stays_a_pipe(toml, tmp_path):
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    r = cli("frame", toml, "--png", fifo)
    reader.join(timeout=120)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert Image.open(io.BytesIO(got[0])).size == (16, 16)


def test_a_symbolic_link_is_followed_and_stays_a_link(toml, tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "f.png").write_bytes(b"old")
    link = tmp_path / "f.png"
    link.symlink_to(real / "f.png")
    dangling = tmp_path / "g.npy"
    dangling.symlink_to(real / "g.npy")
    r = cli("frame", toml, "--png", link, "--npy", dangling)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real / "f.png")
    assert Image.open(real / "f.png").size == (16, 16)
    assert dangling.is_symlink() and np.load(real / "g.npy").shape == (16, 16)
    assert leftovers(tmp_path) == leftovers(real) == []


def test_a_linked_video_is_replaced_where_the_link_points(toml, tmp_path):
    out = tmp_path / "o"
    (out / "s").mkdir(parents=True)
    keep = tmp_path / "videos"
    keep.mkdir()
    (keep / "s.mp4").write_bytes(b"old")
    (out / "s" / "s.mp4").symlink_to(keep / "s.mp4")
    r = cli("render", toml, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "s" / "s.mp4").is_symlink()
    assert (keep / "s.mp4").read_bytes()[4:8] == b"ftyp"


def test_the_cache_replaces_a_link_or_pipe_at_its_own_names_and_writes_nothing_outside(tmp_path):
    outside = tmp_path / "precious"
    outside.write_bytes(b"precious")
    cache = Cache(tmp_path / "cache")
    cache.prepare()
    (cache.frames / "k.npy").symlink_to(outside)
    os.mkfifo(cache.frames / "k.json")
    assert cache.get_frame("k", (2, 2)) is None and cache.damaged == {"frames/k.json"}  # read without waiting on the pipe
    cache.put_frame("k", np.ones((2, 2)), _record())
    assert outside.read_bytes() == b"precious"
    for name in ("k.npy", "k.json"):
        assert stat.S_ISREG(os.lstat(cache.frames / name).st_mode)
    assert cache.get_frame("k", (2, 2))[0].sum() == 4


def test_a_plot_into_a_device_is_one_line(dim_toml, tmp_path):
    from typer.testing import CliRunner

    from zoomreel.cli import app

    r = CliRunner().invoke(app, ["dimension", str(dim_toml), "--out", str(tmp_path / "o"), "--quiet", "--plot", "/dev/full"])
    assert r.exit_code == 2
    assert one_error(r.stderr).startswith("error: cannot write into this device or pipe: No space left on device (/dev/full)")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_plot_to_stdout_is_the_png_alone_and_the_json_goes_to_stderr(dim_toml, tmp_path):
    r = subprocess.run([*CLI, "dimension", dim_toml, "--out", tmp_path / "o", "--json", "--plot", "/dev/stdout"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"\x89PNG\r\n\x1a\n") and r.stdout.endswith(b"IEND\xaeB`\x82")  # one whole PNG, nothing after
    assert "dimension" in json.loads(r.stderr.decode().splitlines()[-1])
