"""The one way zoomreel writes a file: whole or not at all.

Every file zoomreel leaves (cache records and arrays, the models' draws, the
video, a plot, a saved keyframe file) is first written to a hidden temporary
file in the same folder, flushed to disk, and renamed over the destination,
so a reader sees the old file, the new file, or none, even when the writer is
killed or the disk fills up.

What a destination name may be (:func:`destination`):

- a regular file, or a name not taken yet: replaced (created) as above;
- a symbolic link: followed. The file it points to is replaced, in that
  file's folder; the link itself stays as it is;
- a device, a pipe or a socket, or the name of an open descriptor (such as
  ``/dev/stdout``, a link to ``/proc/self/fd/1``): written into where it is,
  never replaced, and never taken for a place a temporary file could go.

A writer of names it owns (the cache: every entry is a regular file it made)
says ``owned=True``: then whatever is at the name (a link, a pipe, a device
node) is replaced by the new regular file; nothing is followed or written
into, so nothing outside the writer's folder changes.

Temporary names carry the host and the process id,
``.<name>.<host>.<pid>.tmp<suffix>``, so writers on several machines sharing
one folder (a cluster's shared filesystem) never collide, and :func:`sweep`
can tell a leftover of a dead local process from a live writer's file.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
from pathlib import Path
from typing import Callable, Iterator

from .errors import UserError

_HOST = socket.gethostname().replace(".", "_") or "host"

OnError = Callable[[OSError, Path], BaseException]


def temp_path(path: Path, suffix: str = "") -> Path:
    """The temporary name this process uses for ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.tmp{suffix}")


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass


_DESCRIPTOR = re.compile(r"/proc/[^/]+/(task/[^/]+/)?fd/[^/]+")


def _names_a_descriptor(path: Path) -> bool:
    """Whether ``path``, or a link on the way to its file, is the name of an
    open descriptor (/dev/stdout -> /proc/self/fd/1)."""
    p = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        head, name = os.path.split(p)
        p = os.path.join(os.path.realpath(head), name)
        if _DESCRIPTOR.fullmatch(p):
            return True
        try:
            link = os.readlink(p)
        except OSError:
            return False
        p = os.path.join(os.path.dirname(p), link)
    return False


def is_special(path: Path) -> bool:
    """Whether ``path`` names something written into in place: a device, a
    pipe, a socket (after following links), or an open descriptor's name."""
    path = Path(path)
    if _names_a_descriptor(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:  # not there yet (or a dangling or looping link): nothing special to write into
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def destination(path: Path) -> Path:
    """The file a write of ``path`` replaces: ``path`` itself, or, for a
    symbolic link, the file it points to (resolved, dangling or not)."""
    path = Path(path)
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def can_write(path: Path) -> bool:
    """Whether a write of ``path`` can start: a device or pipe this process
    may open for writing, or a destination (:func:`destination`) that is not
    a folder, in a folder that exists and is writable."""
    path = Path(path)
    if is_special(path):
        return os.access(path, os.W_OK)
    target = destination(path)
    return os.access(target.parent, os.W_OK) and not target.is_dir()


def special_error(e: OSError, path: Path) -> UserError:
    """The user's message for a failed write into a device, pipe or socket."""
    return UserError(f"cannot write into this device or pipe: {e.strerror or e}", str(path),
                     "write to a regular file, or to a device or pipe that takes the data")


@contextlib.contextmanager
def replacing(path: Path, suffix: str = "", on_error: OnError | None = None, owned: bool = False) -> Iterator[Path]:
    """Yield a path to write; on success its content becomes ``path``'s.

    The caller writes the yielded file completely (by name, e.g. through an
    encoder). For a regular destination (a symbolic link followed, see
    :func:`destination`) that is a temporary file in the destination's
    folder: on leaving the block it is synced and renamed into place, and on
    any exception removed, so the old file stays whole. ``suffix`` keeps an
    extension that a writer needs (``.mp4``). ``on_error`` turns an OSError
    into the error to raise (the caller's user-facing message), and is given
    the destination.

    For a device, pipe or socket (:func:`is_special`) the yielded path is
    ``path`` itself, written into in place; a failure is one
    :func:`special_error`. With ``owned=True`` the name itself is replaced,
    whatever it is.
    """
    path = Path(path)
    if not owned and is_special(path):
        try:
            yield path
        except OSError as e:
            raise special_error(e, path) from None
        return
    target = path if owned else destination(path)
    tmp = temp_path(target, suffix)
    try:
        yield tmp
        if not tmp.is_file() or tmp.is_symlink():
            raise OSError(f"the writer left no file at {tmp}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as e:
        _unlink(tmp)
        if on_error is None:
            raise
        raise on_error(e, target) from None
    except BaseException:
        _unlink(tmp)
        raise


def write_bytes(path: Path, data: bytes, on_error: OnError | None = None, owned: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`replacing`); into a
    device, pipe or descriptor name it is appended, as a shell's ``>>`` would,
    so what the same descriptor got before stays."""
    with replacing(path, on_error=on_error, owned=owned) as tmp:
        with open(tmp, "ab" if tmp == Path(path) else "wb") as f:
            f.write(data)


def is_stdout(path: Path) -> bool:
    """Whether writing ``path`` writes to this process's standard output (the
    same pipe, terminal or file), so that nothing else should be printed there."""
    try:
        a, b = os.stat(path), os.fstat(1)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file ``path`` (a link followed). Anything
    else (a pipe that would block, a device, a folder) raises OSError, so a
    reader treats it as unreadable instead of waiting on it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file: {path}")
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: Path) -> int:
    """Remove temporary files in ``folder`` left by dead processes of this host.

    Files of other hosts, and of processes still running, are left alone.
    Returns how many were removed.
    """
    removed = 0
    try:
        entries = list(Path(folder).glob(".*.tmp*"))
    except OSError:
        return 0
    for p in entries:
        parts = p.name.split(".")
        # "", name..., host, pid, "tmp" [, suffix]
        ends = [i for i in range(3, len(parts)) if parts[i] == "tmp"]
        try:
            host, pid = parts[ends[-1] - 2], int(parts[ends[-1] - 1])
        except (ValueError, IndexError):
            continue
        if host == _HOST and not _pid_alive(pid):
            _unlink(p)
            removed += 1
    return removed
