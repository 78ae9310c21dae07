"""The reference experiment's random draws: weights, inputs, labels, minibatches.

Drawn with JAX's default PRNG in float64, in the reference's order (see
:func:`draws`). Drawing takes JAX about 0.3 s per process (tracing and loading
the random program), a noticeable share of a small `zoomreel frame`; the draws
are a few kB, so they are kept in the compiled-program folder's ``draws/`` and
read back (same bits; a file that cannot be read is drawn again and replaced).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

import jax
import jax.numpy as jnp

from ..model import Model
from . import config, keep


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
    names = ("w0", "w1", "x", "y") + (("idx",) if batch is not None else ())
    got = keep.load(where, names)
    if got is not None and (got["w0"].shape, got["x"].shape, got["idx"].shape if batch is not None else None) == (
        (width, width), (points, width), None if batch is None else (steps, batch)
    ):
        return tuple(got[k] for k in ("w0", "w1", "x", "y")) + (got.get("idx"),)
    arrays = draw(width, points, steps, batch, seed)
    out = tuple(np.asarray(a) for a in arrays[:4])
    idx = None if batch is None else np.asarray(arrays[4], dtype=np.int32)
    keep.save(where, dict(zip(("w0", "w1", "x", "y"), out), **({} if idx is None else {"idx": idx})))
    return out + (idx,)


def _file(width, points, seed, steps, batch) -> str | None:
    # The JAX version is part of the name: JAX does not promise the same random
    # numbers across versions, and these must be what this JAX draws.
    return keep.file("draws", f"draws {width} {points} {seed} {steps} {batch} threefry-partitionable jax {jax.__version__}")


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
