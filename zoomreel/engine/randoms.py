"""The reference experiment's random draws: weights, inputs, labels, minibatches.

Drawn with JAX's default PRNG in float64, in the reference's order (see
:func:`draws`). Drawing takes JAX about 0.3 s per process (tracing and loading
the random program), a noticeable share of a small `zoomreel frame`; the draws
are a few kB, so they are kept in the compiled-program folder's ``draws/`` and
read back (same bits; a file that cannot be read is drawn again and replaced).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass

import numpy as np

import jax
import jax.numpy as jnp

from .. import atomic
from ..model import Model
from . import config


@dataclass(frozen=True)
class Draws:
    w0: np.ndarray  # (n, n)
    w1: np.ndarray  # (n, 1)
    x: np.ndarray  # (points, n)
    y: np.ndarray  # (points, 1)
    idx: np.ndarray | None  # (steps, batch) minibatch indices, or None


def draws(model: Model) -> Draws:
    """The reference experiment's float64 draws for this model and seed.

    Order as in the reference: split, split into (k0, k1) for W0 and W1, then
    one split each for X and Y. Minibatch indices (zoomreel's own addition)
    come from one further split, uniform with replacement.
    """
    parts = _cached(model.width, model.n_points, model.seed, model.steps, model.minibatch)
    return Draws(*(None if a is None else a.copy() for a in parts))


@functools.lru_cache(maxsize=16)
def _cached(width: int, points: int, seed: int, steps: int, batch: int | None):
    config.ensure()
    # Pinned to JAX's current default threefry mode so that a future change of
    # default cannot silently change every frame.
    with jax.threefry_partitionable(True):
        return load_or_draw(width, points, seed, steps, batch)


def load_or_draw(width, points, seed, steps, batch):
    """The draws from the folder when they are there and whole, else drawn (and kept)."""
    where = _file(width, points, seed, steps, batch)
    if where is not None:
        try:
            with np.load(where, allow_pickle=False) as f:
                got = tuple(f[k] for k in ("w0", "w1", "x", "y"))
                idx = f["idx"] if batch is not None else None
            if (got[0].shape, got[2].shape, None if idx is None else idx.shape) == (
                (width, width), (points, width), None if batch is None else (steps, batch)
            ):
                return got + (idx,)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # drawn again below, and the file replaced
    arrays = draw(width, points, steps, batch, seed)
    out = tuple(np.asarray(a) for a in arrays[:4])
    idx = None if batch is None else np.asarray(arrays[4], dtype=np.int32)
    if where is not None:
        _save(where, out, idx)
    return out + (idx,)


def _file(width, points, seed, steps, batch) -> str | None:
    cache = config.cache_folder()
    if not cache:
        return None
    # The JAX version is part of the name: JAX does not promise the same random
    # numbers across versions, and these must be what this JAX draws.
    key = f"draws {width} {points} {seed} {steps} {batch} threefry-partitionable jax {jax.__version__}"
    return os.path.join(cache, "draws", hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def _save(where: str, out, idx) -> None:
    arrays = dict(zip(("w0", "w1", "x", "y"), out))
    if idx is not None:
        arrays["idx"] = idx
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        os.makedirs(os.path.dirname(where), exist_ok=True)
        atomic.write_bytes(where, buf.getvalue(), owned=True)  # our own folder: replace whatever sits at the name
    except OSError:  # a folder that cannot be written is skipped
        pass


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def draw(width, points, steps, batch, seed):
    """The draws, made by JAX (see :func:`draws` for the order)."""
    key = jax.random.PRNGKey(seed)
    key, sub = jax.random.split(key)
    k0, k1 = jax.random.split(sub, 2)
    w0 = jax.random.normal(k0, (width, width), dtype=jnp.float64)
    w1 = jax.random.normal(k1, (width, 1), dtype=jnp.float64)
    key, sub = jax.random.split(key)
    x = jax.random.normal(sub, (points, width), dtype=jnp.float64)
    key, sub = jax.random.split(key)
    y = jax.random.normal(sub, (points, 1), dtype=jnp.float64)
    if batch is None:
        return w0, w1, x, y
    key, sub = jax.random.split(key)
    return w0, w1, x, y, jax.random.randint(sub, (steps, batch), 0, points)
