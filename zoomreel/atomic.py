"""The one way zoomreel writes a file: whole or not at all.

Every file zoomreel leaves (cache records and arrays, the models' draws, the
video, a plot) is first written to a hidden temporary file in the same folder,
flushed to disk, and renamed over the destination, so a reader sees the old
file, the new file, or none, even when the writer is killed.

Temporary names carry the host and the process id,
``.<name>.<host>.<pid>.tmp<suffix>``, so writers on several machines sharing
one folder (a cluster's shared filesystem) never collide, and :func:`sweep`
can tell a leftover of a dead local process from a live writer's file.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Callable, Iterator

_HOST = socket.gethostname().replace(".", "_") or "host"


def temp_path(path: Path, suffix: str = "") -> Path:
    """The temporary name this process uses for ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.tmp{suffix}")


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass


@contextlib.contextmanager
def replacing(path: Path, suffix: str = "", on_error: Callable[[OSError, Path], BaseException] | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path``.

    The caller writes the temporary file completely (by name, e.g. through an
    encoder). On leaving the block the file is synced and renamed into place;
    on any exception it is removed. ``suffix`` keeps an extension that a
    writer needs (``.mp4``). ``on_error`` turns an OSError into the error to
    raise (the caller's user-facing message).
    """
    path = Path(path)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        _unlink(tmp)
        if on_error is None:
            raise
        raise on_error(e, path) from None
    except BaseException:
        _unlink(tmp)
        raise


def write_bytes(path: Path, data: bytes, on_error: Callable[[OSError, Path], BaseException] | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`replacing`)."""
    with replacing(path, on_error=on_error) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


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
