"""Training data past the paper's Gaussian draws: scikit-learn's digits, and a user's .npz.

Plain NumPy (no JAX): a network pixel's data is fixed, shared by every pixel,
and part of the model (an .npz file's bytes travel with it, and their hash is
in the cache key). What a set gives is ``(X, y, classes)``: inputs (points,
features) float64, targets (points, outputs) float64 or class labels
(points,) int, and the number of classes (0 for regression targets).

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no
  download). They are shuffled once with a fixed seed (NumPy's
  ``default_rng(0)``); the first :data:`DIGITS_POINTS` are the training set
  every pixel trains on and is measured on (the rest are not used). Each of
  the 64 features is standardised to mean 0 and variance 1 over those points
  (a feature constant there becomes 0). Labels 0-9.
- an ``.npz`` file with arrays ``X`` (points, features) and ``y``: (points,)
  integers for class labels, or (points,) / (points, outputs) floats for
  regression targets. Everything finite, at least one point.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zipfile

import numpy as np

from .errors import UserError

DIGITS_POINTS = 256
DIGITS_SEED = 0
MAX_POINTS = 100_000


@functools.lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray, int]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("data = \"digits\" needs scikit-learn", "model.data",
                        "install it: pip install 'zoomreel[digits]' (or pip install scikit-learn)") from None
    d = load_digits()
    order = np.random.default_rng(DIGITS_SEED).permutation(len(d.target))[:DIGITS_POINTS]
    x = np.asarray(d.data, dtype=np.float64)[order]
    y = np.asarray(d.target, dtype=np.int64)[order]
    return standardise(x), y, 10


def standardise(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def read_npz(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray, int]:
    """An .npz file's ``(X, y, classes)``, checked; every problem is one :class:`UserError` at ``where``."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as f:
            names = set(f.files)
            missing = [k for k in ("X", "y") if k not in names]
            if missing:
                raise UserError(f"the .npz file has no array {missing[0]!r} (it has: {', '.join(sorted(names)) or 'none'})",
                                where, "save it with np.savez(path, X=inputs, y=targets)")
            x, y = f["X"], f["y"]
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read the .npz file ({e})", where, "save it with np.savez(path, X=inputs, y=targets)") from None
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number) or x.shape[0] < 1 or x.shape[1] < 1:
        raise UserError(f"X must be a 2-D numeric array (points, features), got shape {x.shape} {x.dtype}", where,
                        "save X as a (points, features) float array")
    if x.shape[0] > MAX_POINTS:
        raise UserError(f"X has {x.shape[0]} points, more than {MAX_POINTS}", where, "use a subset")
    if y.shape[:1] != x.shape[:1] or y.ndim not in (1, 2) or not np.issubdtype(y.dtype, np.number):
        raise UserError(f"y must be numeric with one row per point of X ({x.shape[0]}), got shape {y.shape} {y.dtype}",
                        where, "save y as (points,) class labels or (points,) / (points, outputs) targets")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y.astype(np.float64))):
        raise UserError("X or y holds a non-finite value", where, "remove or replace NaN and infinite values")
    if np.issubdtype(y.dtype, np.integer):
        if y.ndim != 1 or y.min() < 0:
            raise UserError("integer y must be (points,) class labels from 0", where, "save labels 0, 1, ... as a 1-D int array")
        return x, y.astype(np.int64), int(y.max()) + 1
    y = y.astype(np.float64)
    return x, y.reshape(y.shape[0], -1), 0
