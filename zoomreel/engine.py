"""The engine: per-pixel hyperparameters in, raw per-pixel measure out.

Each pixel is one full training run. JAX trains many pixels at once; the engine
writes no frames (what it keeps on disk is JAX's compiled programs and the
models' random draws, see :func:`compile_cache_dir`).

Layout. A chunk of B pixels keeps its input-layer weights "pixel-major" as one
(n, B*n) matrix, so that the forward product X @ W0 and the backward product
X^T @ dZ of every pixel in the chunk are each a single large matrix product
against the shared inputs X.

Scheduling. Training runs in segments of a few steps. Between segments a
pixel is retired when either

- its parameters hold a NaN: NaN parameters are absorbing (every later loss is
  NaN, and the measure maps NaN to the cap), so this is exact; or
- its normalised loss v = L_t / L_0 at the segment's end exceeds
  :data:`RETIRE_V` (1e30, 24 decades above the cap 1e6). Its remaining record
  is then read as "at the cap", which is the full run's value exactly unless v
  would later fall back below 1e6. No pixel has been seen to do that: the
  suite checks it for every model condition in both dtypes, and
  docs/benchmarks.md gives the counts measured on full frames. In float64,
  where overflow to NaN comes late, this rule saves about a fifth of the work.

Inside a segment, a whole chunk stops as soon as every pixel in it has a loss
past RETIRE_V or NaN (a NaN loss comes only from parameters that are no
longer finite), and all its pixels are retired: the same rule, applied at
that step instead of at the segment's end. At the standard view this trains
about 4 % fewer pixel-steps (docs/benchmarks.md).

A retired pixel's remaining steps count as the cap, as its NaN losses would.
The measure is summed in NumPy float64 as each chunk's losses arrive
(:class:`NetworkMeasure`), step after step, in the same order whether or not
pixels were retired, and equal bit for bit to :func:`network_measure` of the
whole loss record, which is never held.

Devices. The pixels of a group are dealt to the devices (one per CPU core, or
the GPU) in chunk-sized blocks, and each pixel's state stays on its device
from the first step to the last: the host sends nothing per segment and reads
back only each chunk's losses. Retired pixels are packed out of a device's
state on the device. Chunk and group sizes are per device kind
(:func:`default_chunk`, :func:`default_group`); the code is the same.

The inner step is a plug-in: :data:`STEPS` maps a model kind to the builder of
its segment function, so another formulation can be swapped in without
touching the scheduler.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)


def compile_cache_dir() -> str | None:
    """Where XLA's compiled programs are kept between runs, or None.

    Compiling the engine's programs (both dtypes for the precision probe, a few
    chunk sizes as pixels retire) takes several seconds, more than a small
    frame's training; kept on disk, the next run loads them instead. Programs
    loaded from the cache compute the same bits (the tests check it). The
    folder's ``draws/`` keeps each model's reference draws (see ``_draw``).

    ``ZOOMREEL_JAX_CACHE``: a folder, or ``off``. Unset: the user's cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``), ``zoomreel/jax``. A cache
    folder the user set for JAX itself wins; one that cannot be written is
    skipped.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return None  # the user's own choice stands
    where = os.environ.get("ZOOMREEL_JAX_CACHE", "").strip()
    if where.lower() in ("off", "0", "no", "false"):
        return None
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        where = os.path.join(base, "zoomreel", "jax")
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return None
    return where if os.access(where, os.W_OK) else None


_cache = compile_cache_dir()
if _cache:
    jax.config.update("jax_compilation_cache_dir", _cache)
    # The engine's programs compile in about 0.5 s each: keep them all (about
    # 20 kB each; the folder can be deleted at any time).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .model import ENGINE_VERSION, Model  # noqa: E402,F401

V_CAP = 1e6  # guard and cap of the normalised loss (paper)
RETIRE_V = 1e30  # retire a network pixel once L_t / L_0 exceeds this
LAST = 20  # the converged test averages this many final values
MANDELBROT_ESCAPE = 1e3  # escape radius for smooth escape time

DTYPES = {"float32": np.float32, "float64": np.float64}


# --------------------------------------------------------------------------
# Reference draws


@functools.lru_cache(maxsize=16)
def _draws_cached(width: int, points: int, seed: int, steps: int, batch: int | None):
    # Pinned to JAX's current default threefry mode so that a future change of
    # default cannot silently change every frame.
    with jax.threefry_partitionable(True):
        return _draw(width, points, seed, steps, batch)


def _draw(width, points, seed, steps, batch):
    # Drawing takes JAX about 0.3 s per process (tracing and loading the random
    # program; as a dozen eager ops it took 0.57 s), a noticeable share of a
    # small `zoomreel frame`. The draws are a few kB, so they are kept beside
    # the compiled programs and read back (same bits; a file that cannot be
    # read is drawn again and replaced).
    where = _draws_file(width, points, seed, steps, batch)
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
    arrays = _draw_jit(width, points, steps, batch, seed)
    out = tuple(np.asarray(a) for a in arrays[:4])
    idx = None if batch is None else np.asarray(arrays[4], dtype=np.int32)
    if where is not None:
        _save_draws(where, out, idx)
    return out + (idx,)


def _draws_file(width, points, seed, steps, batch) -> str | None:
    if not _cache:
        return None
    # The JAX version is part of the name: JAX does not promise the same random
    # numbers across versions, and these must be what this JAX draws.
    key = f"draws {width} {points} {seed} {steps} {batch} threefry-partitionable jax {jax.__version__}"
    return os.path.join(_cache, "draws", hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def _save_draws(where: str, out, idx) -> None:
    arrays = dict(zip(("w0", "w1", "x", "y"), out))
    if idx is not None:
        arrays["idx"] = idx
    tmp = None
    try:
        os.makedirs(os.path.dirname(where), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(where), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, where)  # whole file or none, even if killed
    except OSError:  # a cache that cannot be written is skipped
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _draw_jit(width, points, steps, batch, seed):
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
    parts = _draws_cached(model.width, model.n_points, model.seed, model.steps, model.minibatch)
    return Draws(*(None if a is None else a.copy() for a in parts))


# --------------------------------------------------------------------------
# The measure (pure NumPy, float64)


def network_measure(losses: np.ndarray) -> np.ndarray:
    """Paper's per-pixel measure from a (steps, N) loss record.

    Negative: converged (-sum v_t). Positive: diverged (+sum 1/v_t).
    """
    losses = np.asarray(losses, dtype=np.float64)
    with np.errstate(all="ignore"):
        v = losses / losses[:1]
        v = np.where(np.isfinite(v), v, V_CAP)
        v = np.minimum(v, V_CAP)
        converged = v[-LAST:].mean(axis=0) < 1.0
        return np.where(converged, -v.sum(axis=0), (1.0 / v).sum(axis=0))


def mandelbrot_measure(mod2: np.ndarray) -> np.ndarray:
    """Measure from a (steps, N) record of |z_t|^2.

    Escaped points: +smooth escape time (small = escaped fast).
    Bounded points: -(1 + mean over the last iterations of |z|^2), always negative.
    """
    mod2 = np.asarray(mod2, dtype=np.float64)
    steps = mod2.shape[0]
    with np.errstate(all="ignore"):
        escaped_at = mod2 > MANDELBROT_ESCAPE**2  # NaN compares False
        esc = escaped_at.any(axis=0)
        first = np.argmax(escaped_at, axis=0)
        zz = mod2[first, np.arange(mod2.shape[1])]
        # smooth iteration count: n + 1 - log2(log|z_n|), clipped at 0
        nu = first + 1.0 - np.log2(np.log(np.sqrt(zz)))
        nu = np.maximum(nu, 1e-3)
        tail = mod2[-min(LAST, steps):]
        # only read for points that never escaped, whose record is finite
        bounded = -(1.0 + np.where(np.isfinite(tail), tail, 0.0).mean(axis=0))
        return np.where(esc, nu, bounded)


class NetworkMeasure:
    """:func:`network_measure`, accumulated segment by segment as losses arrive.

    The engine never holds the whole (steps, N) loss record: per pixel it keeps
    L_0, the running sums of v_t and 1/v_t, and the sum of the last
    :data:`LAST` values. NumPy sums a (steps, N) array over axis 0 one step
    after another, and so does this, so the result is the same bits (the suite
    checks it); a pixel retired before the end gets the cap for every later
    step, as its NaN record would.
    """

    def __init__(self, steps: int, n: int):
        self.steps = steps
        self.first_tail = max(0, steps - LAST)
        self.l0 = np.full(n, np.nan)
        self.last = np.full(n, np.nan)  # L_t / L_0 at the latest step added
        self.sums = np.zeros((3, n))  # sum v_t, sum 1/v_t, sum of the last LAST v_t

    def add(self, t: int, ids: np.ndarray, losses: np.ndarray) -> None:
        """Losses (k, len(ids)) of pixels ``ids`` at steps t .. t+k-1."""
        losses = np.asarray(losses, dtype=np.float64)
        if t == 0:
            self.l0[ids] = losses[0]
        with np.errstate(all="ignore"):
            v = losses / self.l0[ids]
            self.last[ids] = v[-1]
            v = np.minimum(np.where(np.isfinite(v), v, V_CAP), V_CAP)
            inv = 1.0 / v
        acc = self.sums[:, ids]
        for k in range(v.shape[0]):
            acc[0] += v[k]
            acc[1] += inv[k]
            if t + k >= self.first_tail:
                acc[2] += v[k]
        self.sums[:, ids] = acc

    def retire(self, ids: np.ndarray, t: int) -> None:
        """Pixels ``ids`` train no further from step t: the cap for every later step."""
        if t >= self.steps or not ids.size:
            return
        acc = self.sums[:, ids]
        for k in range(t, self.steps):
            acc[0] += V_CAP
            acc[1] += 1.0 / V_CAP
            if k >= self.first_tail:
                acc[2] += V_CAP
        self.sums[:, ids] = acc

    def past(self, ids: np.ndarray, limit: float) -> np.ndarray:
        """Pixels ``ids`` whose latest normalised loss exceeds ``limit`` (NaN: no)."""
        with np.errstate(invalid="ignore"):
            return self.last[ids] > limit

    def result(self) -> np.ndarray:
        converged = self.sums[2] / (self.steps - self.first_tail) < 1.0
        return np.where(converged, -self.sums[0], self.sums[1])


class RecordMeasure:
    """Keeps the whole (steps, N) record and reduces it with ``measure`` at the end."""

    def __init__(self, measure: Callable, steps: int, n: int):
        self.measure = measure
        self.record = np.full((steps, n), np.nan)

    def add(self, t: int, ids: np.ndarray, values: np.ndarray) -> None:
        self.record[t : t + values.shape[0], ids] = values

    def retire(self, ids: np.ndarray, t: int) -> None:
        pass  # the record stays NaN from step t on

    def result(self) -> np.ndarray:
        return self.measure(self.record)


# --------------------------------------------------------------------------
# Inner segment functions (jitted, B pixels for `seg` steps)


# float64 tanh as a plain rational function, the one XLA's CPU backend itself
# evaluates for jnp.tanh (coefficients and thresholds read from the code it
# generates, jax 0.10.2): x P(x^2) / Q(x^2) with x clamped to +-TANH64_CLAMP,
# and +-1 from |u| >= 20. Spelt out, with the saturation chosen before the one
# division, XLA fuses it into a single loop that runs the float64 step about
# 5 % faster than its own tanh op (docs/benchmarks.md). On the CPU the values
# are the same bits as jnp.tanh; the suite checks them against NumPy's tanh.
TANH64_P = tuple(map(float.fromhex, (  # numerator, in y = x^2, highest power first; then * x
    "0x1.f9f82e5d782dfp-76", "0x1.c3c836c04b4c8p-61", "0x1.c3379f905e662p-49",
    "0x1.29aff6c8edd96p-38", "0x1.525a389dce7c2p-29", "0x1.708819be51cd9p-21",
    "0x1.8996f4026a7fap-14", "0x1.87f80b957ed00p-8", "0x1.36fba9b450e5ap-3", "0x1p0")))
TANH64_Q = tuple(map(float.fromhex, (  # denominator, in y = x^2, highest power first
    "0x1.e8630cf903250p-68", "0x1.0aabca9a5fea0p-54", "0x1.232981aa2bba8p-43",
    "0x1.ee2f015ea8065p-34", "0x1.81f1947c52304p-25", "0x1.26c82ab46d140p-17",
    "0x1.b2e7c4d488c04p-11", "0x1.1998830265b50p-5", "0x1.f0d32a2f7dc79p-2", "0x1p0")))
TANH64_CLAMP = float.fromhex("0x1.1b6d58f246197p+4")  # about 17.71
TANH64_ONE = 20.0  # from here on, tanh is +-1


def _horner(coeffs, y):
    p = coeffs[0]
    for c in coeffs[1:]:
        p = p * y + c
    return p


def tanh64(u):
    """tanh of a float64 array (see TANH64_P); NaN stays NaN, +-inf gives +-1."""
    x = jnp.clip(u, -TANH64_CLAMP, TANH64_CLAMP)
    y = x * x
    one = jnp.abs(u) >= TANH64_ONE
    num = jnp.where(one, jnp.copysign(1.0, u), x * _horner(TANH64_P, y))
    return num / jnp.where(one, 1.0, _horner(TANH64_Q, y))


def sum_last(a, lanes: int = 16):
    """Sum over the last axis in one fixed order, whatever the other axes' sizes.

    A reduction op leaves its order to the compiler, and XLA's CPU backend
    sums a (B, P) array's rows in another order for B < 16 than for larger B,
    so a pixel's loss depended on how many pixels shared its chunk. Here the
    order is spelt out: the axis, zero-padded to a multiple of ``lanes``, is
    cut into rows of ``lanes`` values that are added one row after another
    (element-wise adds, which vectorise), then the lanes are added pairwise.
    Adding the padding's zeros is exact.
    """
    size = a.shape[-1]
    rows = -(-size // lanes)
    if rows * lanes != size:
        a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, rows * lanes - size)])
    a = a.reshape(a.shape[:-1] + (rows, lanes))
    acc = a[..., 0, :]
    for k in range(1, rows):
        acc = acc + a[..., k, :]
    while acc.shape[-1] > 1:
        half = acc.shape[-1] // 2
        acc = acc[..., :half] + acc[..., half:]
    return acc[..., 0]


def _phi(nonlinearity: str, z):
    if nonlinearity == "tanh":
        u = math.sqrt(2.0) * z
        h = tanh64(u) if u.dtype == jnp.float64 else jnp.tanh(u)
        return h, math.sqrt(2.0) * (1.0 - h * h)
    if nonlinearity == "relu":
        h = math.sqrt(2.0) * jnp.maximum(z, 0.0)  # maximum propagates NaN
        return h, jnp.where(z > 0, math.sqrt(2.0), 0.0).astype(z.dtype)
    return z, jnp.ones_like(z)


# Every product in the step asks for true float32 (or float64) arithmetic. JAX's
# default lets a GPU compute float32 products in TF32 (10-bit mantissa) and a
# TPU in bfloat16; the precision rule (docs/precision.md) is calibrated for true
# float32, so a frame must not get less on an accelerator. The CPU always
# computes in full precision, so there the setting changes no value.
FULL = lax.Precision.HIGHEST


def _build_network_segment(model: Model, dtype, B: int, seg: int, stop: bool) -> Callable:
    n = model.width
    nl = model.nonlinearity
    mb = model.minibatch
    points = model.n_points
    inv_sqrt_n = 1.0 / math.sqrt(n)

    def step(xt, y, lr0c, lr1, carry, idx_t):
        # "pixel-rows" layout: every array is (pixel*unit, point), points minor
        w0r, w1 = carry  # (B*n, n) rows = W0_b[:, j], (B, n)
        z = jnp.matmul(w0r, xt, precision=FULL)  # (B*n, P)
        h, dphi = _phi(nl, z)
        h3 = h.reshape(B, n, h.shape[1])
        out = jnp.einsum("bjp,bj->bp", h3, w1, precision=FULL) * (1.0 / n)
        r = out - y  # (B, P)
        loss = sum_last(r * r) / points
        if mb is None:
            xg, hg, dg, rg, rows = xt, h3, dphi, r, points
        else:
            xg = xt[:, idx_t]
            hg = h3[:, :, idx_t]
            dg = dphi.reshape(B, n, -1)[:, :, idx_t].reshape(B * n, mb)
            rg = r[:, idx_t]
            rows = mb
        g = rg * (2.0 / rows)  # (B, R)
        dw1 = jnp.einsum("bjp,bp->bj", hg, g, precision=FULL) * (1.0 / n)
        dz = (g[:, None, :] * w1[:, :, None] * (1.0 / n)).reshape(B * n, rows) * dg
        dw0r = jnp.matmul(dz, xg.T, precision=FULL)  # (B*n, n)
        return (w0r - lr0c[:, None] * dw0r, w1 - lr1[:, None] * dw1), loss

    def segment(w0, w1, a, b, x, y, idx, l0):
        # w0 (B, n, n), w1 (B, n), a/b (B,), x (P, n), y (P, 1), idx (seg, batch),
        # l0 (B,) each pixel's first loss L_0 (NaN in the first segment: its
        # first step gives it)
        xt = (x * jnp.asarray(inv_sqrt_n, dtype)).T  # (n, P)
        if model.plane == "lr-lr":
            lr0, lr1 = a, b
        else:
            lr0, lr1 = b, b
        lr0c = jnp.repeat(lr0, n)
        w0r = jnp.transpose(w0, (0, 2, 1)).reshape(B * n, n)
        body = functools.partial(step, xt, y[:, 0][None, :], lr0c, lr1)
        # With `stop`, the whole chunk stops once the loss of every pixel in it
        # is past RETIRE_V or NaN; the scheduler then retires them all (`ran` <
        # seg), and the steps not run stay NaN in the record, read as the cap
        # (see the module docstring). Without it, every step runs.
        def more(c):
            return (c[0] < seg) & ~c[-1]

        def one_step(c):
            t, w0r, w1, losses, l0, _ = c
            idx_t = None if idx is None else idx[t]
            (w0r, w1), loss = body((w0r, w1), idx_t)
            losses = lax.dynamic_update_index_in_dim(losses, loss, t, 0)
            l0 = jnp.where(jnp.isnan(l0), loss, l0)
            gone = jnp.all(~(loss / l0 <= RETIRE_V)) if stop else jnp.asarray(False)
            return t + 1, w0r, w1, losses, l0, gone

        start = (0, w0r, w1, jnp.full((seg, B), jnp.nan, dtype), l0, jnp.asarray(False))
        ran, w0r, w1, losses, l0, _ = lax.while_loop(more, one_step, start)
        w0 = jnp.transpose(w0r.reshape(B, n, n), (0, 2, 1))
        dead = jnp.isnan(w0).any(axis=(1, 2)) | jnp.isnan(w1).any(axis=1)
        return w0, w1, losses, dead, ran, l0

    return segment


def _build_mandelbrot_segment(model: Model, dtype, B: int, seg: int, stop: bool) -> Callable:
    def step(a, b, carry, _):
        zr, zi = carry
        m2 = zr * zr + zi * zi
        zr, zi = zr * zr - zi * zi + a, 2.0 * zr * zi + b
        return (zr, zi), m2

    def segment(zr, zi, a, b, x, y, idx, l0):
        body = functools.partial(step, a, b)
        (zr, zi), rec = lax.scan(body, (zr, zi), None, length=seg)
        dead = ~(rec <= MANDELBROT_ESCAPE**2).all(axis=0)
        return zr, zi, rec, dead, seg, l0

    return segment


# Each builder returns the plain (unjitted) segment function of one chunk:
# (*model state, a, b, x, y, idx, l0) -> (*model state, losses, dead, ran, l0).
STEPS: dict[str, Callable] = {
    "network": _build_network_segment,
    "mandelbrot": _build_mandelbrot_segment,
}
# How each model kind's per-step values become the measure, and the pixels
# each kind retires from them (besides the segment function's own `dead`).
MEASURES: dict[str, Callable] = {
    "network": NetworkMeasure,
    "mandelbrot": functools.partial(RecordMeasure, mandelbrot_measure),
}
RETIRE_RULES: dict[str, Callable] = {
    "network": lambda measure, ids: measure.past(ids, RETIRE_V),
}


@functools.lru_cache(maxsize=64)
def _segment_fn(model: Model, dtype_name: str, B: int, seg: int, stop: bool = True):
    """One chunk's jitted segment function (the benchmarks time it on its own)."""
    return jax.jit(STEPS[model.kind](model, DTYPES[dtype_name], B, seg, stop))


@functools.lru_cache(maxsize=64)
def _shard_fn(model: Model, dtype_name: str, B: int, cap: int, seg: int, stop: bool = True):
    """The segment function on rows [c0, c0 + B) of one device's whole state.

    ``state`` is (*model state, a, b, l0), each with ``cap`` rows; it is
    donated, and the chunk's rows are written back in place, so a device's
    pixels stay on it from the first segment to the last.
    """
    chunk = STEPS[model.kind](model, DTYPES[dtype_name], B, seg, stop)

    def run(state, x, y, idx, c0):
        part = [lax.dynamic_slice_in_dim(s, c0, B) for s in state]
        *ms, a, b, l0 = part
        *ms, losses, dead, ran, l0 = chunk(*ms, a, b, x, y, idx, l0)
        new = (*ms, a, b, l0)
        keep = len(ms), len(ms) + 1  # a and b do not change
        state = tuple(
            s if i in keep else lax.dynamic_update_slice_in_dim(s, v, c0, 0)
            for i, (s, v) in enumerate(zip(state, new))
        )
        return state, losses, dead, ran

    return jax.jit(run, donate_argnums=0)


@jax.jit
def _keep_rows(state, rows):
    """Rows ``rows`` of every array of a device's state, in that order."""
    return tuple(s.at[rows].get(mode="promise_in_bounds") for s in state)


# The fewest rows of a device's state. The segment function is compiled for
# each size of state, so small frames and probes share one (the chunk is
# trained in place, so the unused rows cost nothing but memory: 18 MB in
# float64).
MIN_ROWS = 8192


def _capacity(n: int, B: int) -> int:
    """Rows of a device's state for n pixels in chunks of B: whole chunks,
    rounded up to a power of two (so that few shapes are compiled, and a
    smaller power-of-two chunk for fewer pixels fits too), at least MIN_ROWS."""
    return max(MIN_ROWS, 1 << (-(-n // B) * B - 1).bit_length())


# --------------------------------------------------------------------------
# Device and chunk choice


def default_chunk(model: Model | None = None, dtype: str = "float32") -> int:
    """Pixels per jitted call: cache-sized on CPU, large on a GPU.

    A network pixel works on (n x points) matrices, so 128 float32 pixels (64
    in float64) keep a chunk's activations in a CPU core's cache (measured,
    docs/benchmarks.md); a Mandelbrot pixel is two scalars, so it takes far more.
    On an H100 the products run faster the larger the chunk, flattening out
    near 32768 pixels (float32 2.44e7 pixel-steps/s at 16384, 2.58e7 at
    32768, 2.60e7 at 65536; docs/benchmarks.md).
    """
    env = os.environ.get("ZOOMREEL_CHUNK")
    if env:
        return max(1, int(env))
    platform = jax.devices()[0].platform
    if model is not None and model.kind == "mandelbrot":
        return 4096
    if platform != "cpu":
        return 32768
    return 64 if dtype == "float64" else 128


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')} x{len(jax.devices())}"


SEGMENT_STEPS = 25


def default_group(chunk: int) -> int:
    """Pixels trained together, from the first step to the last.

    A group's starting state is built on the host (1 to 2 kB a pixel) and its
    pixels are packed after each segment, so the last chunk of each device is
    part empty. On a CPU a group of 16384 pixels bounds memory; a GPU's chunk
    is large, so its group holds eight of them: the host reads one chunk's
    losses while the device trains the next, and the last, part-empty chunk
    is a small share of the work.
    """
    return max(16384, 8 * chunk * len(jax.local_devices()))


def _initial_state(model: Model, dr: Draws, a: np.ndarray, dtype):
    N = a.shape[0]
    if model.kind == "mandelbrot":
        z = np.zeros(N, dtype=dtype)
        return [z, z.copy()]
    n = model.width
    w0 = np.broadcast_to(dr.w0.astype(dtype), (N, n, n)).copy()
    if model.plane == "init-lr":
        w0 += a.astype(dtype)[:, None, None]
    w1 = np.broadcast_to(dr.w1[:, 0].astype(dtype), (N, n)).copy()
    return [w0, w1]


def train(
    model: Model,
    hx: np.ndarray,
    hy: np.ndarray,
    dtype: str = "float64",
    *,
    chunk: int | None = None,
    early_exit: bool = True,
    group: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    stats: dict | None = None,
) -> np.ndarray:
    """Train one run per pixel and return the float64 measure, shape (N,).

    hx, hy: per-pixel hyperparameters (float64, already rounded as they
    should be): for the lr-lr plane (lr0, lr1); for init-lr (offset, lr); for
    the Mandelbrot set (Re c, Im c). ``on_progress(k)`` is called with the
    number of pixel-steps just completed (retired pixels count as done).
    If ``stats`` is a dict, ``stats["computed"]`` receives the pixel-steps
    actually trained (padding excluded), which early exit makes smaller, and
    ``stats["retired_by_loss"]`` the pixels retired by the :data:`RETIRE_V` rule.
    """
    hx = np.ascontiguousarray(hx, dtype=np.float64).ravel()
    hy = np.ascontiguousarray(hy, dtype=np.float64).ravel()
    if hx.shape != hy.shape:
        raise ValueError("hx and hy must have the same shape")
    dt = DTYPES[dtype]
    B0 = chunk or default_chunk(model, dtype)
    group = group or default_group(B0)
    out = np.empty(hx.shape[0], dtype=np.float64)
    dr = draws(model) if model.kind == "network" else None
    x = None if dr is None else dr.x.astype(dt)
    y = None if dr is None else dr.y.astype(dt)
    T = model.steps
    for g0 in range(0, hx.shape[0], group):
        ga = hx[g0 : g0 + group]
        gb = hy[g0 : g0 + group]
        out[g0 : g0 + ga.shape[0]] = _train_group(
            model, dr, x, y, ga, gb, dt, B0, T, early_exit, on_progress, stats
        )
    return out


class _Shard:
    """One device's pixels: their state on the device, their ids on the host.

    Rows [0, rows.size) of ``state`` are the pixels ``rows`` (group indices),
    in order; rows past them are copies of a pixel of the last chunk (padding:
    trained, never read), so every chunk has B real-valued rows.
    """

    def __init__(self, dev, rows, state, B):
        self.dev, self.rows, self.state, self.B = dev, rows, state, B
        self.dead = np.zeros(rows.size, dtype=bool)

    @property
    def cap(self) -> int:
        return self.state[0].shape[0]


def _chunk_size(B0: int, n: int) -> int:
    """The chunk for n pixels left: B0, or the power of two (at least 8) that holds them."""
    return min(B0, max(8, 1 << (int(n) - 1).bit_length()))


def _padded_rows(rows: np.ndarray, B: int, cap: int) -> np.ndarray:
    """``rows``, then copies of the first row of the last chunk, up to ``cap``."""
    last = rows[(rows.size - 1) // B * B]
    return np.concatenate([rows, np.full(cap - rows.size, last)]).astype(np.int32)


def _train_group(model, dr, x, y, ga, gb, dt, B0, T, early_exit, on_progress, stats):
    g = ga.shape[0]
    measure = MEASURES[model.kind](T, g)
    host = [*_initial_state(model, dr, ga, dt), ga.astype(dt), gb.astype(dt), np.full(g, np.nan, dt)]
    devices = jax.local_devices()
    # On a CPU a pixel's bits do not depend on its chunk's size (the suite
    # checks it), so chunks shrink to fit the pixels left. A GPU's libraries
    # pick their kernels, and so their order of summation, by the size of the
    # product: there a call keeps one chunk size, so that early exit cannot
    # change a value (docs/science.md).
    shrink = devices[0].platform == "cpu"
    # Chunk-sized blocks of pixels are dealt to the devices in turn (neighbours
    # behave alike, so every device gets a like share of the hard parts of the
    # view). A pixel's state then stays on its device for the whole run: the
    # host sees only losses, and retiring pixels packs each device's state there.
    block_owner = np.arange(g) // B0 % len(devices)
    shards = []
    for k, dev in enumerate(devices):
        rows = np.flatnonzero(block_owner == k)
        if rows.size:
            B = _chunk_size(B0, rows.size)
            take = _padded_rows(rows, B, _capacity(rows.size, B))
            shards.append(_Shard(dev, rows, tuple(jax.device_put(h[take], dev) for h in host), B))
    del host
    consts = {d: (None if x is None else jax.device_put(x, d), None if y is None else jax.device_put(y, d)) for d in devices}
    dtype_name = np.dtype(dt).name
    rule = RETIRE_RULES.get(model.kind) if early_exit else None
    t = 0
    while t < T and shards:
        seg = min(SEGMENT_STEPS, T - t)
        idx = None
        if dr is not None and dr.idx is not None:
            idx = dr.idx[t : t + seg]
        # Dispatch every chunk first, taking the devices in turn (JAX runs them
        # asynchronously, each device through its own chunks), then collect.
        queues = []
        for sh in shards:
            sh.dead = np.zeros(sh.rows.size, dtype=bool)
            idx_dev = None if idx is None else jax.device_put(idx, sh.dev)
            fn = _shard_fn(model, dtype_name, sh.B, sh.cap, seg, early_exit)
            queues.append([(sh, fn, idx_dev, c0) for c0 in range(0, sh.rows.size, sh.B)])
        pending = []
        for turn in itertools.zip_longest(*queues):
            for sh, fn, idx_dev, c0 in filter(None, turn):
                sh.state, *res = fn(sh.state, *consts[sh.dev], idx_dev, c0)
                pending.append((sh, c0, res))
        alive = sum(sh.rows.size for sh in shards)
        computed = by_loss = retired = 0
        for sh, c0, (losses, dead, ran) in pending:
            m = min(sh.B, sh.rows.size - c0)
            measure.add(t, sh.rows[c0 : c0 + m], np.asarray(losses)[:, :m])
            d = np.asarray(dead)[:m]
            ran = int(ran)
            computed += m * ran
            if ran < seg:  # the chunk stopped: all its pixels past the cap
                by_loss += int((~d).sum())
                d = np.ones(m, dtype=bool)
            sh.dead[c0 : c0 + m] = d
        for sh in shards:
            if rule is not None:
                past = rule(measure, sh.rows) & ~sh.dead
                sh.dead |= past
                by_loss += int(past.sum())
            if early_exit:
                retired += int(sh.dead.sum())
                measure.retire(sh.rows[sh.dead], t + seg)
        if stats is not None:
            stats["computed"] = stats.get("computed", 0) + computed
            if early_exit:
                stats["retired_by_loss"] = stats.get("retired_by_loss", 0) + by_loss
        if on_progress is not None:
            on_progress(alive * seg + retired * (T - t - seg))
        t += seg
        if early_exit and t < T:
            shards = [sh for sh in shards if _pack(sh, B0, shrink)]
    return measure.result()


def _pack(sh: _Shard, B0: int, shrink: bool) -> bool:
    """Drop a device's retired pixels from its state, and (with ``shrink``) fit
    its chunk size, at most B0, to the pixels left; False once none is left."""
    keep = ~sh.dead
    B = _chunk_size(B0, int(keep.sum())) if shrink else sh.B
    if keep.all() and B == sh.B:
        return True
    sh.rows = sh.rows[keep]
    if not sh.rows.size:
        return False
    sh.B = B
    take = _padded_rows(np.flatnonzero(keep), B, sh.cap)
    sh.state = _keep_rows(sh.state, jax.device_put(take, sh.dev))
    return True
