"""The frame cache: raw measures and precision decisions on disk.

A frame is ``frames/<key>.npy`` plus ``frames/<key>.json``; a precision
decision is ``decisions/<key>.json``. The key is a hash of everything that
changes the pixels (model, view, size, dtype, engine version) and nothing
else, so palette, fps and encoder changes reuse frames.

Writes are atomic (temporary file in the same folder, fsync, rename), and the
array is written before its record, so a killed or concurrent writer can never
leave something that reads as a frame.

Every record is verified as a whole before it is trusted (:func:`verified`):
it carries its own key and a SHA-256 checksum over every field (a frame's
record includes the CRC and shape of its array, the colour summary, the
dtype and the decision), and each field must have the shape and range the
format allows. A record that is missing is simply not cached; one that exists
but cannot be read or parsed (whatever its bytes: JSON ``null``, nesting
deeper than a parser goes, a pipe or a device in its place) or fails any check
is *damaged*: it is treated as missing (so the frame is trained again and the
record rewritten), and its name is kept in :attr:`Cache.damaged` so the
caller can say how many there were. A cached frame is valid by one rule,
:meth:`Cache.get_frame`, for render, info and the explorer alike.
This module never imports JAX.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import zlib
from pathlib import Path

import numpy as np

from . import atomic, kinds
from .color import Q
from .precision_names import DTYPES
from .errors import UserError
from .model import ARITHMETIC_VERSIONS, ENGINE_VERSION, Model

DECISION_FIELDS = ("dtype", "resolved", "reason", "f32_agreement", "f64_agreement", "probe_pixels", "warning", "dd_agreement")
# Fields a decision has only where perturbation was probed or trained (records
# without them, every one written before, keep their exact form and checksum).
DECISION_OPTIONAL = ("perturb_agreement", "redone")
FRAME_FIELDS = ("time", "view", "dtype", "resolved", "decision", "seconds", "pixel_steps", "summary", "crc", "shape")


def _digest(obj: dict) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _kernel(tag: str) -> dict:
    """An implementation's cache tag (empty for the XLA step, whose keys it leaves as they were)."""
    return {"kernel": tag} if tag else {}


def frame_key(model: Model, view_fields: dict, dtype: str, kernel: str = "") -> str:
    arith = {"arithmetic": ARITHMETIC_VERSIONS[dtype]} if dtype in ARITHMETIC_VERSIONS else {}
    return _digest({"model": kinds.key_fields(model), "view": view_fields, "dtype": dtype, "engine": ENGINE_VERSION,
                    **arith, **_kernel(kernel)})


def decision_key(model: Model, view_fields: dict, mode: str, kernel: str = "") -> str:
    return _digest({"model": kinds.key_fields(model), "view": view_fields, "mode": mode, "engine": ENGINE_VERSION, "probe": 1, **_kernel(kernel)})


# -- verification: one function per record kind, shared by render and info


def _checksum(body: dict) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(key: str, record: dict) -> dict:
    """``record`` as stored: with its key and a checksum over everything."""
    body = dict(record, key=key)
    return dict(body, check=_checksum(body))


def _unsealed(key: str, stored) -> dict | None:
    """The record's fields if its key and checksum hold, else None."""
    if not isinstance(stored, dict) or not {"key", "check"} <= set(stored):
        return None
    body = {k: v for k, v in stored.items() if k != "check"}
    if body.get("key") != key or stored.get("check") != _parsed(lambda: _checksum(body)):
        return None
    del body["key"]
    return body


def _number(v, lo: float = -math.inf, hi: float = math.inf) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def valid_decision(d) -> bool:
    """A precision decision's fields (zoomreel.precision.Decision) have the right shape and range."""
    return (
        isinstance(d, dict)
        and set(DECISION_FIELDS) <= set(d) <= set(DECISION_FIELDS) | set(DECISION_OPTIONAL)
        and d["dtype"] in DTYPES
        and _number(d["resolved"], 0, 1)
        and isinstance(d["reason"], str)
        and all(d.get(f) is None or _number(d[f], 0, 1) for f in ("f32_agreement", "f64_agreement", "dd_agreement")
                + DECISION_OPTIONAL)
        and _count(d["probe_pixels"])
        and (d["warning"] is None or isinstance(d["warning"], str))
    )


def valid_summary(s) -> bool:
    """A colour summary (zoomreel.color.summary): per phase None or Q non-decreasing finite quantiles."""
    if not isinstance(s, dict) or set(s) != {"conv", "div"}:
        return False
    for q in s.values():
        if q is None:
            continue
        if not isinstance(q, list) or len(q) != Q or not all(_number(v) for v in q):
            return False
        if any(b < a for a, b in zip(q, q[1:])):
            return False
    return True


def valid_frame_record(m) -> bool:
    """A frame's record (without key and checksum) has the right shape and range."""
    return (
        isinstance(m, dict)
        and set(FRAME_FIELDS) <= set(m) <= set(FRAME_FIELDS) | {"tile"}
        and ("tile" not in m or (isinstance(m["tile"], list) and len(m["tile"]) == 3 and all(type(v) is int for v in m["tile"])))
        and isinstance(m["time"], str)
        and isinstance(m["view"], dict)
        and m["dtype"] in DTYPES
        and _number(m["resolved"], 0, 1)
        and valid_decision(m["decision"])
        and m["decision"]["dtype"] == m["dtype"]
        and _number(m["seconds"], 0)
        and _count(m["pixel_steps"])
        and valid_summary(m["summary"])
        and _count(m["crc"])
        and isinstance(m["shape"], list)
        and len(m["shape"]) == 2
        and all(_count(n) and n > 0 for n in m["shape"])
    )


# -- errors


def disk_error(e: OSError, where: Path) -> UserError:
    """The user's message for a failed write into folder ``where``."""
    if e.errno == errno.ENOSPC:
        return UserError("the disk is full", str(where), "free some space and run the same command again to resume")
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return UserError("cannot write here", str(where), "choose a writable folder with --out")
    return UserError(f"cannot write: {e.strerror or e}", str(where), "check the folder and run again")


def entry_error(e: OSError, path: Path) -> UserError:
    """The user's message for a failed write of the file ``path``: a folder in
    the way names the entry itself, anything else its folder."""
    if isinstance(e, (IsADirectoryError, NotADirectoryError)) or e.errno in (errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY):
        return UserError("a folder is in the way of a file zoomreel writes", str(path), "remove or rename that folder and run again")
    return disk_error(e, path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes so that readers see either the old file, the new file, or
    none. The name is the cache's own: a link, pipe or device found there is
    replaced, never followed or written into."""
    atomic.write_bytes(path, data, on_error=entry_error, owned=True)


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.frames = self.root / "frames"
        self.decisions = self.root / "decisions"
        self.damaged: set[str] = set()  # names of records found damaged (treated as missing)

    def prepare(self) -> None:
        """Make the folders (if missing) and remove dead writers' leftovers.

        Needs no write access when the folders exist: a fully cached render
        reads only. :meth:`require_writable` is the check before training.
        """
        for d in (self.frames, self.decisions):
            if not d.is_dir():
                try:
                    d.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise entry_error(e, d) from None
        self.sweep()

    def require_writable(self) -> None:
        """Fail before any training when new frames could not be stored."""
        for d in (self.frames, self.decisions):
            if not os.access(d, os.W_OK):
                raise UserError("cannot write here", str(d), "choose a writable folder with --out")

    def sweep(self) -> None:
        """Remove temporary files left by writers that no longer run."""
        for d in (self.frames, self.decisions):
            atomic.sweep(d)

    def _read_json(self, p: Path):
        """The parsed file; ``_MISSING`` when it does not exist; ``_BAD`` when
        it exists but cannot be read or parsed (then it is counted as damaged)."""
        try:
            data = atomic.read_regular(p)
        except FileNotFoundError:
            return _MISSING
        except OSError:
            return _BAD
        return _parsed(lambda: json.loads(data))

    def _damaged(self, p: Path) -> None:
        self.damaged.add(f"{p.parent.name}/{p.name}")

    # -- precision decisions

    def get_decision(self, key: str) -> dict | None:
        """The verified decision's fields (for Decision.from_json), or None."""
        p = self.decisions / f"{key}.json"
        stored = self._read_json(p)
        if stored is _MISSING:
            return None
        d = _unsealed(key, stored)
        if d is None or not valid_decision(d):
            self._damaged(p)
            return None
        return d

    def put_decision(self, key: str, record: dict) -> None:
        atomic_write(self.decisions / f"{key}.json", json.dumps(seal(key, record)).encode())

    # -- frames

    def has_frame(self, key: str) -> bool:
        return (self.frames / f"{key}.json").exists() or (self.frames / f"{key}.npy").exists()

    def meta(self, key: str, shape: tuple[int, int]) -> dict | None:
        """The record of the frame render would reuse (:meth:`get_frame`), or None."""
        got = self.get_frame(key, shape)
        return None if got is None else got[1]

    def get_frame(self, key: str, shape: tuple[int, int]) -> tuple[np.ndarray, dict] | None:
        """The cached raw measure and its record, or None when missing or damaged.

        The one check of a cached frame, for render and info alike: the
        record's key, checksum and schema, the shape the caller needs (H, W),
        then the array's shape, dtype and CRC."""
        shape = tuple(shape)
        p = self.frames / f"{key}.json"
        stored = self._read_json(p)
        if stored is _MISSING:  # not cached (an array alone is what a writer killed before its record leaves)
            return None
        m = _unsealed(key, stored)
        if m is None or not valid_frame_record(m) or tuple(m["shape"]) != shape:
            self._damaged(p)
            return None
        a = self.frames / f"{key}.npy"
        try:
            data = atomic.read_regular(a)
        except OSError:
            data = None
        arr = None if data is None else _parsed(lambda: np.load(io.BytesIO(data), allow_pickle=False))
        if not isinstance(arr, np.ndarray):
            self._damaged(a)
            return None
        if arr.shape != shape or arr.dtype != np.float64 or zlib.crc32(np.ascontiguousarray(arr).tobytes()) != m["crc"]:
            self._damaged(a)
            return None
        return arr, m

    def put_frame(self, key: str, raw: np.ndarray, record: dict) -> None:
        raw = np.ascontiguousarray(raw, dtype=np.float64)
        buf = io.BytesIO()
        np.save(buf, raw, allow_pickle=False)
        atomic_write(self.frames / f"{key}.npy", buf.getvalue())
        record = dict(record, crc=zlib.crc32(raw.tobytes()), shape=list(raw.shape))
        atomic_write(self.frames / f"{key}.json", json.dumps(seal(key, record)).encode())


_BAD = object()  # a file that is there but cannot be read
_MISSING = object()  # no file


def _parsed(parse):
    """What ``parse()`` makes of bytes read from the cache, or ``_BAD`` when
    it cannot make anything of them: whatever error the bytes provoke in a
    parser (bad syntax, nesting deeper than its recursion goes, a number past
    the integer-conversion limit, a header too large) means a damaged record."""
    try:
        return parse()
    except Exception:  # RecursionError and MemoryError included
        return _BAD
