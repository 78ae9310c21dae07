"""The scheduler: groups, devices, chunks, segments and retirement.

Training runs in segments of a few steps (:class:`~.devices.Policy`). Between
segments a pixel is retired when its formulation says so: its state can no
longer change the measure (``dead``: NaN parameters are absorbing, every later
loss is NaN and the measure maps NaN to the cap), or its formulation's
``retire`` rule holds. A retired pixel's remaining steps count as the cap, as
its NaN record would. The measure is summed as each segment's values arrive,
step after step, in the same order whether or not pixels were retired.

Jobs. One call trains one or more jobs (:class:`Job`: a formulation
instance, its constants and schedule, its pixels) in one loop over the
segments and one measure; perturbation trains each pass's references so.

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
    """One device's pixels of one job: their rows on the device, their ids on the host."""

    def __init__(self, dev, ids, rows, B, job: int = 0):
        self.dev, self.ids, self.rows, self.B, self.job = dev, ids, rows, B, job
        self.dead = np.zeros(ids.size, dtype=bool)

    @property
    def cap(self) -> int:
        return layout.rows_of(self.rows)


class Counts:
    """What a training call did: pixel-steps trained, pixels retired by rule."""

    def __init__(self):
        self.computed = 0
        self.retired_by_rule = 0


class Job(NamedTuple):
    """Pixels trained under one formulation instance: its constants, its
    per-step schedule (or None) and the pixels' two hyperparameters."""

    form: object
    consts: object
    sched: object
    a: np.ndarray
    b: np.ndarray


def train_group(form, model, A, pol: Policy, consts, idx_all, ga, gb, early_exit: bool,
                on_progress, counts: Counts) -> np.ndarray:
    return train_jobs([Job(form, consts, idx_all, ga, gb)], model, A, pol, early_exit, on_progress, counts)


def train_jobs(jobs: list[Job], model, A, pol: Policy, early_exit: bool, on_progress, counts: Counts,
               measure=None) -> np.ndarray:
    """Several jobs' pixels in one segment loop, the jobs' pixels one after
    another in one measure: ``measure`` (for all of them), or the first
    job's formulation's. Jobs share a compiled program when their
    formulations are equal (perturbation's references: the reference is
    data), so many small jobs cost about what one job of their size costs.
    The measure's result."""
    T = model.steps
    B0 = pol.chunk
    devices = pol.devices
    n = sum(j.a.shape[0] for j in jobs)
    measure = measure if measure is not None else jobs[0].form.measure_of(model, T, n, A)
    # Chunk-sized blocks of pixels are dealt to the devices in turn (neighbours
    # behave alike, so every device gets a like share of the hard parts of the
    # view). A pixel's state then stays on its device for the whole run: the
    # host sees only losses, and retiring pixels packs each device's state there.
    shards = []
    start = turn0 = 0
    for ji, j in enumerate(jobs):
        g = j.a.shape[0]
        host = Rows(j.form.initial_state(model, j.a, A), A.from_host(j.a), A.from_host(j.b),
                    np.full(g, np.nan, A.loss_dtype))
        owner = (np.arange(g) // B0 + turn0) % len(devices)
        turn0 += -(-g // B0)
        for k, dev in enumerate(devices):
            ids = np.flatnonzero(owner == k)
            if ids.size:
                B = layout.chunk_size(B0, ids.size)
                take = layout.padded_rows(ids, B, layout.capacity(ids.size, B))
                shards.append(Shard(dev, start + ids, jax.device_put(layout.take(host, take), dev), B, ji))
        del host
        start += g
    on_dev = {(sh.job, sh.dev): jax.device_put(jobs[sh.job].consts, sh.dev) for sh in shards}
    t = 0
    while t < T and shards:
        seg = min(pol.segment, T - t)
        # Dispatch every chunk first, taking the devices in turn (JAX runs them
        # asynchronously, each device through its own chunks), then collect.
        queues = []
        for sh in shards:
            sh.dead = np.zeros(sh.ids.size, dtype=bool)
            sched = jobs[sh.job].sched
            idx_dev = None if sched is None else jax.device_put(sched[t : t + seg], sh.dev)
            fn = shard_fn(jobs[sh.job].form, model, A, sh.B, sh.cap, seg, early_exit)
            queues.append([(sh, fn, idx_dev, c0) for c0 in range(0, sh.ids.size, sh.B)])
        pending = []
        for turn in itertools.zip_longest(*queues):
            for sh, fn, idx_dev, c0 in filter(None, turn):
                sh.rows, *res = fn(sh.rows, on_dev[sh.job, sh.dev], idx_dev, c0)
                pending.append((sh, c0, res))
        alive = sum(sh.ids.size for sh in shards)
        got = {id(sh): [] for sh in shards}
        for sh, c0, (losses, dead, ran) in pending:
            m = min(sh.B, sh.ids.size - c0)
            got[id(sh)].append(np.asarray(losses)[:, :m])
            d = np.asarray(dead)[:m]
            ran = int(ran)
            counts.computed += m * ran
            if ran < seg:  # the chunk stopped: all its pixels past the cap
                if early_exit:
                    counts.retired_by_rule += int((~d).sum())
                d = np.ones(m, dtype=bool)
            sh.dead[c0 : c0 + m] = d
        # one call for all: the measure is element-wise, the host's cost per call is not
        everyone = np.concatenate([sh.ids for sh in shards])
        measure.add(t, everyone, np.concatenate([x for sh in shards for x in got[id(sh)]], axis=1))
        retired = 0
        if early_exit:
            past = jobs[0].form.retire(measure, everyone)
            at = 0
            for sh in shards:
                if past is not None:
                    mine = past[at : at + sh.ids.size] & ~sh.dead
                    sh.dead |= mine
                    counts.retired_by_rule += int(mine.sum())
                at += sh.ids.size
                retired += int(sh.dead.sum())
            measure.retire(np.concatenate([sh.ids[sh.dead] for sh in shards]), t + seg)
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
