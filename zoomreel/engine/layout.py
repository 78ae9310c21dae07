"""The row layout of a device's pixels.

A device holds its pixels' state as one pytree whose arrays all have one row
per pixel, ``cap`` rows in all. Rows [0, k) are the device's k live pixels in
order; rows past them are copies of a pixel of the last chunk (padding:
trained, never read), so every chunk of B rows holds real values. The
segment function is compiled for each ``cap``, so capacities are few: whole
chunks rounded up to a power of two, at least :data:`MIN_ROWS` (the unused
rows cost memory only: 18 MB in float64).
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

MIN_ROWS = 8192


def capacity(n: int, B: int) -> int:
    """Rows of a device's state for n pixels in chunks of B."""
    return max(MIN_ROWS, 1 << (-(-n // B) * B - 1).bit_length())


def chunk_size(B0: int, n: int) -> int:
    """The chunk for n pixels left: B0, or the power of two (at least 8) that holds them."""
    return min(B0, max(8, 1 << (int(n) - 1).bit_length()))


def padded_rows(rows: np.ndarray, B: int, cap: int) -> np.ndarray:
    """``rows``, then copies of the first row of the last chunk, up to ``cap``."""
    last = rows[(rows.size - 1) // B * B]
    return np.concatenate([rows, np.full(cap - rows.size, last)]).astype(np.int32)


def take(tree, rows):
    """Rows ``rows`` of every host array of a pytree."""
    return jax.tree_util.tree_map(lambda h: h[rows], tree)


def rows_of(tree) -> int:
    return jax.tree_util.tree_leaves(tree)[0].shape[0]


def slice_rows(tree, c0, B: int):
    """Rows [c0, c0 + B) of every array (traced ``c0``)."""
    return jax.tree_util.tree_map(lambda s: lax.dynamic_slice_in_dim(s, c0, B), tree)


def update_rows(tree, part, c0):
    """``tree`` with rows [c0, ...) replaced by ``part``'s."""
    return jax.tree_util.tree_map(lambda s, v: lax.dynamic_update_slice_in_dim(s, v, c0, 0), tree, part)


@jax.jit
def keep_rows(tree, rows):
    """Rows ``rows`` of every array of a device's state, in that order."""
    return jax.tree_util.tree_map(lambda s: s.at[rows].get(mode="promise_in_bounds"), tree)
