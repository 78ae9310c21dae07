"""Encode: stream RGB frames into an MP4 a browser plays.

H.264 (libx264), yuv420p, faststart, constant quality (CRF). imageio-ffmpeg
ships its own ffmpeg binary, so nothing has to be installed by hand. Frames
are streamed to ffmpeg one at a time. yuv420p needs even sides, so an odd
width or height is padded by repeating the last column or row. The video is
written to a temporary file and renamed into place only when ffmpeg has
finished it without error, so a full disk leaves the old video whole.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from . import atomic
from .cache import entry_error
from .errors import UserError


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    return (size[0] + size[0] % 2, size[1] + size[1] % 2)


def pad_even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return img
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def prepare(path: Path) -> None:
    """Make sure the video can be written to ``path`` (its folder exists and
    is writable, the name is not a folder) and remove the hidden temporary
    videos of encoders killed earlier. Render calls it before any training."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise entry_error(e, path.parent) from None
    if atomic.is_special(path):  # a pipe or device: written into as it is
        if not os.access(path, os.W_OK):
            raise UserError("cannot write into this device or pipe", str(path), "choose another video name with --out")
        return
    target = atomic.destination(path)  # a symbolic link: the file it points to
    if not os.access(target.parent, os.W_OK):
        raise UserError("cannot write here", str(target.parent), "choose a writable folder with --out")
    if target.is_dir():
        raise UserError("a folder is in the way of a file zoomreel writes", str(target), "remove or rename that folder and run again")
    atomic.sweep(target.parent)  # leftovers of an encoder killed earlier


def write_mp4(path: Path, frames: Iterable[np.ndarray], size: tuple[int, int], fps: int, crf: int = 18) -> int:
    """Encode frames (H, W, 3 uint8 each) to ``path``; returns the frame count.

    ffmpeg writes a temporary file next to ``path``; only when it exits
    cleanly, having written a non-empty file, does that file replace
    ``path``. Otherwise (a full disk, a killed encoder) the old video stays
    as it was and the failure is one UserError.
    """
    path = Path(path)
    prepare(path)
    W, H = even_size(size)
    n = 0
    with atomic.replacing(path, ".mp4", on_error=entry_error) as tmp:
        enc = _Ffmpeg(tmp, (W, H), fps, crf)
        try:
            for img in frames:
                enc.send(pad_even(np.ascontiguousarray(img, dtype=np.uint8)))
                n += 1
        except BaseException:
            enc.kill()
            raise
        enc.finish(path)
    return n


class _Ffmpeg:
    """One ffmpeg process encoding raw RGB frames from its stdin into ``dest``.

    Started with ``process_group=0`` (so a Ctrl-C reaches zoomreel, which
    stops ffmpeg itself) and without a Python ``preexec_fn``: a plain
    fork+exec that runs no Python in the child, so JAX's threads are never
    forked (and JAX has nothing to warn about). Its stderr is kept to say
    why it failed.
    """

    def __init__(self, dest: Path, size: tuple[int, int], fps: int, crf: int):
        import imageio_ffmpeg

        W, H = size
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y",
            "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{W}x{H}", "-pix_fmt", "rgb24", "-r", str(int(fps)),
            "-i", "-", "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p",
            "-v", "error", "-crf", str(int(crf)), "-preset", "medium", "-movflags", "+faststart",
            "-f", "mp4", str(dest),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     process_group=0)
        self.errors: list[bytes] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.errors.append(line)
            del self.errors[:-20]  # the last lines say why

    def send(self, img: np.ndarray) -> None:
        try:
            self.proc.stdin.write(img.tobytes())
        except (BrokenPipeError, ValueError):  # ffmpeg gave up (say, the disk is full): finish() says why
            pass

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        self.reader.join()

    def finish(self, path: Path) -> None:
        """Wait for ffmpeg; raise the user's error unless it wrote a whole video."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        code = self.proc.wait()
        self.reader.join()
        said = b"".join(self.errors).decode("utf-8", "replace")
        if code != 0:
            raise _failure(said, code, path)
        dest = Path(self.proc.args[-1])
        if not atomic.is_special(dest) and (not dest.is_file() or dest.stat().st_size == 0):
            raise UserError("ffmpeg left no video", str(path), "check the folder and the disk, then run again")


def _failure(said: str, code: int, path: Path) -> UserError:
    """ffmpeg's failure as the user's one line (a full disk as every writer says it)."""
    os_error = atomic.special_error if atomic.is_special(path) else entry_error
    for errno_, text in ((errno.ENOSPC, "No space left on device"), (errno.EDQUOT, "Disk quota exceeded"),
                         (errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system")):
        if text in said:
            return os_error(OSError(errno_, text), path)
    lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
    why = lines[-1] if lines else (f"killed by {_signal_name(-code)}" if code < 0 else f"exit status {code}")
    return UserError(f"ffmpeg could not write the video: {why}", str(path), "check the folder and the disk, then run again")


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def probe(path: Path) -> dict:
    """Decoded properties of a video: frames, size, fps, codec (for tests and info)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = gen.__next__()
    n = sum(1 for _ in gen)
    return {"frames": n, "size": tuple(meta["size"]), "fps": meta["fps"], "codec": meta.get("codec", "")}
