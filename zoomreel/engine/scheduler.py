"""The scheduler: groups, devices, chunks, segments and retirement.

Training runs in segments of a few steps (:class:`~.devices.Policy`). Between
segments a pixel is retired when its formulation says so: its state can no
longer change the measure (``dead``: NaN parameters are absorbing, every later
loss is NaN and the measure maps NaN to the cap), or its formulation's
``retire`` rule holds. A retired pixel's remaining steps count as the cap, as
its NaN record would. The measure is summed as each chunk's values arrive,
step after step, in the same order whether or not pixels were retired.

Devices. The pixels of a group are dealt to the devices (one per CPU core, or
the GPU) in chunk-sized blocks, and each pixel's state stays on its device
from the first step to the last: the host sends nothing per segment and reads
back only each chunk's losses. Retired pixels are packed out of a device's
state on the device (:mod:`~.layout`).
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable, NamedTuple

import numpy as np

import jax

from . import layout
from .devices import Policy


class Rows(NamedTuple):
    """A device's pixels: the model state and each pixel's fixed inputs."""

    state: object  # the formulation's state pytree
    a: object  # (cap,) first hyperparameter
    b: object  # (cap,) second hyperparameter
    l0: object  # (cap,) first loss, NaN until known


@functools.lru_cache(maxsize=64)
def shard_fn(form, model, A, B: int, cap: int, seg: int, stop: bool = True) -> Callable:
    """The segment function on rows [c0, c0 + B) of one device's :class:`Rows`.

    The rows are donated, and the chunk's rows are written back in place, so
    a device's pixels stay on it from the first segment to the last.
    """
    chunk = form.segment(model, A, B, seg, stop)

    def run(rows, consts, idx, c0):
        part = layout.slice_rows(rows, c0, B)
        out = chunk(part.state, part.a, part.b, part.l0, consts, idx)
        new = Rows(
            layout.update_rows(rows.state, out.state, c0), rows.a, rows.b,
            layout.update_rows(rows.l0, out.l0, c0),
        )
        return new, out.losses, out.dead, out.ran

    return jax.jit(run, donate_argnums=0)


class Shard:
    """One device's pixels: their rows on the device, their ids on the host."""

    def __init__(self, dev, ids, rows, B):
        self.dev, self.ids, self.rows, self.B = dev, ids, rows, B
        self.dead = np.zeros(ids.size, dtype=bool)

    @property
    def cap(self) -> int:
        return layout.rows_of(self.rows)


class Counts:
    """What a training call did: pixel-steps trained, pixels retired by rule."""

    def __init__(self):
        self.computed = 0
        self.retired_by_rule = 0


def train_group(form, model, A, pol: Policy, consts, idx_all, ga, gb, early_exit: bool,
                on_progress, counts: Counts) -> np.ndarray:
    g = ga.shape[0]
    T = model.steps
    B0 = pol.chunk
    measure = form.measure_of(model, T, g, A)
    host = Rows(form.initial_state(model, ga, A), A.from_host(ga), A.from_host(gb), np.full(g, np.nan, A.loss_dtype))
    devices = pol.devices
    # Chunk-sized blocks of pixels are dealt to the devices in turn (neighbours
    # behave alike, so every device gets a like share of the hard parts of the
    # view). A pixel's state then stays on its device for the whole run: the
    # host sees only losses, and retiring pixels packs each device's state there.
    owner = np.arange(g) // B0 % len(devices)
    shards = []
    for k, dev in enumerate(devices):
        ids = np.flatnonzero(owner == k)
        if ids.size:
            B = layout.chunk_size(B0, ids.size)
            take = layout.padded_rows(ids, B, layout.capacity(ids.size, B))
            shards.append(Shard(dev, ids, jax.device_put(layout.take(host, take), dev), B))
    del host
    on_dev = {d: jax.device_put(consts, d) for d in devices}
    t = 0
    while t < T and shards:
        seg = min(pol.segment, T - t)
        idx = None if idx_all is None else idx_all[t : t + seg]
        # Dispatch every chunk first, taking the devices in turn (JAX runs them
        # asynchronously, each device through its own chunks), then collect.
        queues = []
        for sh in shards:
            sh.dead = np.zeros(sh.ids.size, dtype=bool)
            idx_dev = None if idx is None else jax.device_put(idx, sh.dev)
            fn = shard_fn(form, model, A, sh.B, sh.cap, seg, early_exit)
            queues.append([(sh, fn, idx_dev, c0) for c0 in range(0, sh.ids.size, sh.B)])
        pending = []
        for turn in itertools.zip_longest(*queues):
            for sh, fn, idx_dev, c0 in filter(None, turn):
                sh.rows, *res = fn(sh.rows, on_dev[sh.dev], idx_dev, c0)
                pending.append((sh, c0, res))
        alive = sum(sh.ids.size for sh in shards)
        retired = 0
        for sh, c0, (losses, dead, ran) in pending:
            m = min(sh.B, sh.ids.size - c0)
            measure.add(t, sh.ids[c0 : c0 + m], np.asarray(losses)[:, :m])
            d = np.asarray(dead)[:m]
            ran = int(ran)
            counts.computed += m * ran
            if ran < seg:  # the chunk stopped: all its pixels past the cap
                if early_exit:
                    counts.retired_by_rule += int((~d).sum())
                d = np.ones(m, dtype=bool)
            sh.dead[c0 : c0 + m] = d
        for sh in shards:
            past = form.retire(measure, sh.ids) if early_exit else None
            if past is not None:
                past = past & ~sh.dead
                sh.dead |= past
                counts.retired_by_rule += int(past.sum())
            if early_exit:
                retired += int(sh.dead.sum())
                measure.retire(sh.ids[sh.dead], t + seg)
        if on_progress is not None:
            on_progress(alive * seg + retired * (T - t - seg))
        t += seg
        if early_exit and t < T:
            shards = [sh for sh in shards if _pack(sh, B0, pol.shrink)]
    return measure.result()


def _pack(sh: Shard, B0: int, shrink: bool) -> bool:
    """Drop a device's retired pixels from its rows, and (with ``shrink``) fit
    its chunk size, at most B0, to the pixels left; False once none is left."""
    keep = ~sh.dead
    B = layout.chunk_size(B0, int(keep.sum())) if shrink else sh.B
    if keep.all() and B == sh.B:
        return True
    sh.ids = sh.ids[keep]
    if not sh.ids.size:
        return False
    sh.B = B
    take = layout.padded_rows(np.flatnonzero(keep), B, sh.cap)
    sh.rows = layout.keep_rows(sh.rows, jax.device_put(take, sh.dev))
    return True
