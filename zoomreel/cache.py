"""The frame cache: raw measures and precision decisions on disk.

A frame is ``frames/<key>.npy`` plus ``frames/<key>.json``. The key is a hash
of everything that changes the pixels (model, view, size, dtype, engine
version) and nothing else, so palette, fps and encoder changes reuse frames.

Writes are atomic (temporary file in the same folder, fsync, rename), the
array is written before its record, and the record carries a CRC of the array,
so a killed or concurrent writer can never leave something that reads as a
frame. Anything unreadable or inconsistent is reported as missing and retrained.
This module never imports JAX.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import zlib
from pathlib import Path

import numpy as np

from . import atomic
from .errors import UserError
from .model import ENGINE_VERSION, Model


def _digest(obj: dict) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def frame_key(model: Model, view_fields: dict, dtype: str) -> str:
    return _digest({"model": model.key_fields(), "view": view_fields, "dtype": dtype, "engine": ENGINE_VERSION})


def decision_key(model: Model, view_fields: dict, mode: str) -> str:
    return _digest({"model": model.key_fields(), "view": view_fields, "mode": mode, "engine": ENGINE_VERSION, "probe": 1})


def disk_error(e: OSError, where: Path) -> UserError:
    if e.errno == errno.ENOSPC:
        return UserError("the disk is full", str(where), "free some space and run the same command again to resume")
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return UserError("cannot write here", str(where), "choose a writable folder with --out")
    return UserError(f"cannot write: {e.strerror or e}", str(where), "check the folder and run again")


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes so that readers see either the old file, the new file, or none."""
    atomic.write_bytes(path, data, on_error=lambda e, p: disk_error(e, p.parent))


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.frames = self.root / "frames"
        self.decisions = self.root / "decisions"

    def prepare(self) -> None:
        for d in (self.frames, self.decisions):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise disk_error(e, d) from None
            if not os.access(d, os.W_OK):
                raise UserError("cannot write here", str(d), "choose a writable folder with --out")
        self.sweep()

    def sweep(self) -> None:
        """Remove temporary files left by writers that no longer run."""
        for d in (self.frames, self.decisions):
            atomic.sweep(d)

    # -- precision decisions

    def get_decision(self, key: str) -> dict | None:
        try:
            return json.loads((self.decisions / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def put_decision(self, key: str, record: dict) -> None:
        atomic_write(self.decisions / f"{key}.json", json.dumps(record).encode())

    # -- frames

    def has_frame(self, key: str) -> bool:
        return (self.frames / f"{key}.json").exists() and (self.frames / f"{key}.npy").exists()

    def meta(self, key: str) -> dict | None:
        try:
            m = json.loads((self.frames / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return m if isinstance(m, dict) and "crc" in m else None

    def get_frame(self, key: str, shape: tuple[int, int]) -> tuple[np.ndarray, dict] | None:
        """The cached raw measure and its record, or None when missing or corrupt."""
        m = self.meta(key)
        if m is None:
            return None
        try:
            raw = (self.frames / f"{key}.npy").read_bytes()
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if arr.shape != tuple(shape) or arr.dtype != np.float64 or zlib.crc32(arr.tobytes()) != m["crc"]:
            return None
        return arr, m

    def put_frame(self, key: str, raw: np.ndarray, record: dict) -> None:
        raw = np.ascontiguousarray(raw, dtype=np.float64)
        buf = io.BytesIO()
        np.save(buf, raw, allow_pickle=False)
        atomic_write(self.frames / f"{key}.npy", buf.getvalue())
        record = dict(record, crc=zlib.crc32(raw.tobytes()), shape=list(raw.shape))
        atomic_write(self.frames / f"{key}.json", json.dumps(record).encode())
