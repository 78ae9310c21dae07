"""The network formulation as one fused GPU kernel per training segment.

The XLA step (:mod:`.network`) writes each pixel's (points x width)
activations to the device's memory and reads them back several times per
step, so on a GPU it is bound by memory, not arithmetic. This kernel trains a
block of pixels for a whole segment in one launch:

- each pixel's W0 and W1 stay in registers from the first step of the segment
  to the last (they are read once and written once per segment);
- the inputs X and labels Y (the same for every block) are read from
  memory once and then served to every step by the chip's caches, in tiles
  of :data:`TILE` points (held in registers instead, they spill: see
  :func:`build_fused_segment`);
- a step is one pass over the tiles: the forward product, the nonlinearity,
  the output, the residual and both gradient products of a tile are done
  before the next tile, so no activation leaves the chip;
- each step's loss is written out, as the XLA step's is.

It is a second implementation of the same formulation: the state, the
constants, the schedule, the measure and the retirement rule are
:class:`~.network.NetworkXLA`'s, and the scheduler (chunks, segments, early
exit, the order in which the measure is summed) is shared. Its values equal
the XLA step's up to rounding: products and sums over the points run in
another order (the loss itself is summed in :func:`~.arith.sum_last`'s order).

Route: Pallas with the Triton backend. A pixel's products are tiny (inner
dimension 16) and have to run in true float32 or float64, so they run on the
CUDA cores' fused multiply-adds, not on tensor cores; that is what Triton
generates for a full-precision ``dot``, and Triton also compiles float64
(products included) on every NVIDIA GPU since Ampere. Pallas's Mosaic GPU
backend's products are Hopper's WGMMA instructions, which have no float64
form and no exact float32 one (tf32 at most): every product would have to
be written out element by element in its warpgroup layouts. Triton through Pallas
needs nothing besides jaxlib's CUDA plugin (jax-triton needs the triton
package and a compiler at run time). The backend is chosen explicitly (Triton
compiler parameters), which both JAX 0.10 and 0.11 honour; 0.11 deprecates
it, and when it goes the body moves to jax-triton or to Mosaic GPU.

A GPU checks the kernel against the XLA step before it trains a frame with
it (:func:`compare_with_xla`, once per condition and process); where the check fails,
the XLA step trains.

On a CPU there is no Triton: ``ZOOMREEL_KERNEL=fused`` runs the same kernel
in Pallas's interpret mode, slowly, to check it. The minibatch rows of a step
are a per-point multiplicity mask (a point drawn twice counts twice), so a
step of any batch is one pass over all the points.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import threading

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

from ..errors import UserError
from .formulation import KERNEL_ENV, Segment, register
from .devices import SEGMENT_STEPS
from .network import RETIRE_V, NetworkState, NetworkXLA, build_segment, constants, phi

TILE = 16  # points per tile: the smallest side a Triton product takes
BLOCK = 8  # pixels per kernel instance (program): 8 x 16 = 128 rows of W0
NUM_WARPS = 4


@functools.lru_cache(maxsize=1)
def pallas():
    """(pallas, pallas.triton), imported on first use (0.15 s), or None in a
    JAX without them. Triton's compiler parameters are what select Pallas's
    Triton backend on a GPU."""
    try:
        from jax.experimental import pallas as pl
        from jax.experimental.pallas import triton as pltriton
    except ImportError:
        return None
    return pl, pltriton


def available() -> bool:
    return pallas() is not None


def fits(model) -> bool:
    """Whether Triton can compile the kernel for this model's width: its
    tensors' sides must be powers of two, and a product's at least 16."""
    n = model.width
    return model.kind == "network" and n >= TILE and n & (n - 1) == 0


def block_size(B: int) -> int:
    """Pixels per kernel instance for a chunk of B: :data:`BLOCK`, or the
    largest power of two below it that divides B."""
    bb = BLOCK
    while B % bb:
        bb //= 2
    return bb


def padded_points(points: int) -> int:
    return -(-points // TILE) * TILE


class OnChip:
    """What :func:`~.network.phi` needs of an arithmetic, inside the kernel.

    tanh is the backend's own (libdevice's on a GPU; on the CPU, in interpret
    mode, XLA's, which for float64 gives the same bits as ``tanh64``, as the
    suite checks); the rest is the arithmetic's.
    """

    def __init__(self, A):
        self.relu, self.step, self.ones_like = A.relu, A.step, A.ones_like

    @staticmethod
    def tanh(u):
        return jnp.tanh(u)


def pairwise_lanes(acc):
    """(Bb, TILE) lanes added as :func:`~.arith.sum_last` adds them: halves, pairwise.

    Written with reshapes and two-element sums (Triton cannot slice a
    register tensor); a sum of two values is the same bits in either order.
    """
    Bb, w = acc.shape
    while w > 1:
        w //= 2
        acc = jnp.sum(acc.reshape(Bb, 2, w), axis=1)
    return acc.reshape(Bb)


def _kernel(model, A, Bb: int, seg: int, stop: bool, masked: bool):
    """The kernel body for one block of Bb pixels and one segment."""
    n = model.width
    nl = model.nonlinearity
    points = model.n_points
    rows = points if model.minibatch is None else model.minibatch
    tiles = padded_points(points) // TILE
    K = constants(model, A)
    pl = pallas()[0]
    on_chip = OnChip(A)
    nan = float("nan")

    def dot(a, b):  # a (m, k) @ b (k, n), true float32 / float64
        return jnp.dot(a, b, precision=lax.Precision.HIGHEST)

    def dot_t(a, b):  # a (m, k) @ b(n, k)^T
        return lax.dot_general(a, b, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)

    def kernel(*refs):
        if masked:
            x_ref, y_ref, m_ref, lr0_ref, lr1_ref, w0_ref, w1_ref, l0_ref, *outs = refs
        else:
            x_ref, y_ref, lr0_ref, lr1_ref, w0_ref, w1_ref, l0_ref, *outs = refs
            m_ref = None
        w0_out, w1_out, loss_out, l0_out, ran_out = outs
        lr0 = lr0_ref[...][:, None]  # (Bb*n, 1): pixel b's lr0 on its n rows
        lr1 = lr1_ref[...][:, None]  # (Bb, 1)

        def nan_row(s, c):
            loss_out[s, :] = jnp.full((Bb,), nan, loss_out.dtype)
            return c

        lax.fori_loop(0, seg, nan_row, 0)  # steps not run stay NaN

        def one_tile(t, i, x, y, w0r, w1, acc):
            """Forward and backward over one tile of points; acc = (lanes, dW0, dW1)."""
            lanes, dw0, dw1 = acc
            zt = dot_t(w0r, x)  # (Bb*n, TILE): row b*n + j = unit j of pixel b
            h, dphi = phi(nl, zt, on_chip, K["sqrt2"])
            h3 = h.reshape(Bb, n, TILE)
            out = jnp.sum(h3 * w1[:, :, None], axis=1) * (1.0 / n)  # (Bb, TILE)
            r = out - y[None, :]  # padded points: 0 - 0, exactly nothing
            lanes = lanes + r * r
            if masked:  # this step's minibatch: each point's multiplicity
                r = r * m_ref[t, pl.ds(i * TILE, TILE)][None, :]
            g = r * (2.0 / rows)
            dw1 = dw1 + jnp.sum(h3 * g[:, None, :], axis=2)
            dz = (g[:, None, :] * w1[:, :, None] * (1.0 / n)).reshape(Bb * n, TILE) * dphi
            return lanes, dw0 + dot(dz, x), dw1  # dW0 (Bb*n, n)

        def one_step(c):
            t, w0r, w1, l0, _ = c
            acc = (jnp.zeros((Bb, TILE), w1.dtype), jnp.zeros(w0r.shape, w0r.dtype), jnp.zeros(w1.shape, w1.dtype))

            def tile(i, acc):  # one pass over the points, a tile of X (already / sqrt(n)) and Y at a time
                x, y = x_ref[pl.ds(i * TILE, TILE), :], y_ref[pl.ds(i * TILE, TILE)]
                return one_tile(t, i, x, y, w0r, w1, acc)

            acc = lax.fori_loop(0, tiles, tile, acc)
            lanes, dw0, dw1 = acc
            loss = pairwise_lanes(lanes) / points
            w0r = w0r - lr0 * dw0
            w1 = w1 - lr1 * (dw1 * (1.0 / n))
            loss_out[t, :] = loss
            l0 = jnp.where(jnp.isnan(l0), loss, l0)
            if stop:  # every pixel of the block past RETIRE_V or NaN
                gone = jnp.sum((loss / l0 <= RETIRE_V).astype(jnp.int32)) == 0
            else:
                gone = jnp.asarray(False)
            return t + 1, w0r, w1, l0, gone

        def more(c):
            return (c[0] < seg) & ~c[-1]

        start = (jnp.int32(0), w0_ref[...], w1_ref[...], l0_ref[...], jnp.asarray(False))
        t, w0r, w1, l0, _ = lax.while_loop(more, one_step, start)
        w0_out[...] = w0r
        w1_out[...] = w1
        l0_out[...] = l0
        ran_out[...] = jnp.full((Bb,), t, jnp.int32)

    return kernel


def build_fused_segment(model, A, B: int, seg: int, stop: bool, interpret: bool):
    """One chunk's segment function, as :func:`~.network.build_segment`'s.

    Each step loops over the tiles of X and Y, reading each as it comes.
    X and Y (17 KB in float32 for 272 points) are the same for every block, so
    after the first read they come from the L1 and L2 caches, not from memory.
    Holding all 17 tiles in registers for the segment instead (the pass written
    out tile by tile) was measured compiled for an H100 (:mod:`.gpucode`):
    10.7 KB (float32) and 5.8 KB (float64) of each thread's registers spilled to
    local memory, which is backed by device memory; looped, at most 24 bytes
    (relu, float64) and in most conditions nothing.
    """
    n = model.width
    points = model.n_points
    P = padded_points(points)
    Bb = block_size(B)
    R = Bb * n
    masked = model.minibatch is not None
    K = constants(model, A)
    pl, pltriton = pallas()
    call = pl.pallas_call(
        _kernel(model, A, Bb, seg, stop, masked),
        grid=(B // Bb,),
        in_specs=[
            pl.BlockSpec((P, n), lambda i: (0, 0)),  # X / sqrt(n), every block
            pl.BlockSpec((P,), lambda i: (0,)),  # Y
            *([pl.BlockSpec((seg, P), lambda i: (0, 0))] if masked else []),  # minibatch masks
            pl.BlockSpec((R,), lambda i: (i,)),  # lr0, per row of W0
            pl.BlockSpec((Bb,), lambda i: (i,)),  # lr1
            pl.BlockSpec((R, n), lambda i: (i, 0)),  # W0, pixel-major rows
            pl.BlockSpec((Bb, n), lambda i: (i, 0)),  # W1
            pl.BlockSpec((Bb,), lambda i: (i,)),  # L_0
        ],
        out_specs=[
            pl.BlockSpec((R, n), lambda i: (i, 0)),
            pl.BlockSpec((Bb, n), lambda i: (i, 0)),
            pl.BlockSpec((seg, Bb), lambda i: (0, i)),  # each step's loss
            pl.BlockSpec((Bb,), lambda i: (i,)),
            pl.BlockSpec((Bb,), lambda i: (i,)),  # steps the block ran
        ],
        out_shape=[
            jax.ShapeDtypeStruct((B * n, n), A.dtype),
            jax.ShapeDtypeStruct((B, n), A.dtype),
            jax.ShapeDtypeStruct((seg, B), A.loss_dtype),
            jax.ShapeDtypeStruct((B,), A.loss_dtype),
            jax.ShapeDtypeStruct((B,), jnp.int32),
        ],
        compiler_params=pltriton.CompilerParams(num_warps=NUM_WARPS, num_stages=1),
        interpret=interpret,
        name=f"zoomreel_segment_{model.nonlinearity}",
    )

    def segment(state, a, b, l0, consts, idx):
        x, y = consts  # (points, n), (points, 1), as the XLA step's
        xs = jnp.pad(x * K["inv_sqrt_n"], ((0, P - points), (0, 0)))
        ys = jnp.pad(y[:, 0], (0, P - points))
        lr0, lr1 = (a, b) if model.plane == "lr-lr" else (b, b)
        w0r = state.w0.transpose(0, 2, 1).reshape(B * n, n)
        args = [xs, ys]
        if masked:  # (seg, batch) indices -> (seg, P) multiplicities
            steps = jnp.arange(idx.shape[0])[:, None]
            args.append(jnp.zeros((seg, P), A.dtype).at[steps, idx].add(1.0))
        args += [A.repeat(lr0, n), lr1, w0r, state.w1, l0]
        w0r, w1, losses, l0, ran_px = call(*args)
        w0 = w0r.reshape(B, n, n).transpose(0, 2, 1)
        # A block that stopped is past RETIRE_V: its pixels retire with it.
        dead = A.isnan(w0).any(axis=(1, 2)) | A.isnan(w1).any(axis=1) | (ran_px < seg)
        return Segment(NetworkState(w0, w1), A.to_float64(losses), dead, ran_px.max(), l0)

    return segment


# What a kernel that works gives against the XLA step on the check's grid is
# rounding (medians measured on such grids: float32 6.4e-8, float64 1.5e-16);
# a kernel the GPU's compiler got wrong gives garbage, NaN or nothing. These
# bounds are far from both. Each pixel too: at least 12 of the 16 within
# CHECK_PIXEL_REL (measured on the check's grids over seeds 0-2: 14 or more
# in both dtypes; the rest are boundary pixels, where rounding grows).
CHECK_MEDIAN_REL = {"float32": 1e-4, "float64": 1e-10}
CHECK_PIXEL_REL = {"float32": 1e-3, "float64": 1e-8}
_checking: contextvars.ContextVar[bool] = contextvars.ContextVar("zoomreel_fused_check", default=False)


def compare_with_xla(model, dtype: str) -> str | None:
    """Train 16 pixels of ``model`` over both phases for one segment with the
    kernel and with the XLA step: None if they agree to rounding, else what
    went wrong, in one line (an exception while compiling or running counts).

    Natively on a GPU, in interpret mode elsewhere. The GPU's compiler is the
    one part of the kernel no CPU can check; this is how a GPU checks it
    before any frame depends on it.
    """
    from . import train  # the engine's entry point (this module is part of the engine)

    m = dataclasses.replace(model, steps=SEGMENT_STEPS)
    xs, ys = (np.linspace(-2, 2, 4), np.linspace(-1, 3, 4)) if m.plane == "init-lr" else (np.linspace(-1, 4, 4),) * 2
    hx, hy = (10.0 ** a.ravel() for a in np.meshgrid(xs, ys))
    token = _checking.set(True)
    try:
        got = train(m, hx, hy, dtype, impl="fused").values
        want = train(m, hx, hy, dtype, impl="xla").values
    except Exception as e:  # noqa: BLE001  (anything the compiler or the device raises)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        return f"{type(e).__name__}: {first}"
    finally:
        _checking.reset(token)
    with np.errstate(all="ignore"):
        rel = np.abs(got - want) / np.abs(want)
    same = np.mean(np.sign(got) == np.sign(want))
    close = np.mean(rel <= CHECK_PIXEL_REL[dtype])
    if not np.isfinite(got).all() or same < 15 / 16 or close < 12 / 16 or not np.median(rel) <= CHECK_MEDIAN_REL[dtype]:
        return (f"{dtype} values differ from the XLA step's: same class for {same:.0%} of 16 pixels, "
                f"{close:.0%} within {CHECK_PIXEL_REL[dtype]:g}, median relative difference {np.median(rel):.2g}")
    return None


class NetworkFused(NetworkXLA):
    """The network formulation trained by :func:`build_fused_segment`.

    Chosen by default on a GPU (where Triton compiles it) for the widths it
    fits; ``ZOOMREEL_KERNEL=fused`` forces it anywhere, in interpret mode off
    a GPU or for other widths. Arithmetics other than float32 and float64
    train with the XLA step.
    """

    impl = "fused"
    tag = "fused1"  # in cache keys: values differ from the XLA step's by rounding

    def __init__(self):
        self.verified: dict = {}  # condition -> None (its check passed) or what failed
        self._lock = threading.RLock()  # the explorer trains from several threads

    def suits(self, platform, model):
        """On a GPU, where Pallas compiles it, for the widths it fits (no check run)."""
        return platform == "gpu" and available() and fits(model)

    @staticmethod
    def condition(model):
        return dataclasses.replace(model, steps=SEGMENT_STEPS, seed=0)  # what the compiled kernel depends on

    def verify(self, model) -> str | None:
        """Why the kernel can't train ``model`` on this machine, or None.

        On first use of a condition (its nonlinearity, width, data, batch and
        plane; not its seed or steps) in a process, this compiles and trains
        :func:`compare_with_xla` for float32 and float64. Where it fails, the XLA step
        trains every frame (:func:`zoomreel.engine.formulation.choose` says
        why, once) and forcing the kernel is a one-line error; nothing
        trained by a kernel that failed its check reaches a frame (the
        check's own compiled kernels are dropped with it).
        """
        key = self.condition(model)
        with self._lock:
            if key not in self.verified:
                why = compare_with_xla(key, "float32") or compare_with_xla(key, "float64")
                if why is not None:
                    from .scheduler import shard_fn

                    shard_fn.cache_clear()  # the failed kernel, compiled for the check, is never reused
                self.verified[key] = why
            return self.verified[key]

    def describe(self, platform, model, dtype=None):
        if dtype not in (None, "float32", "float64"):
            return f"xla (the fused kernel has no {dtype})"
        return "fused" if native(platform, model) else "fused (Pallas interpret mode: slow, for checking)"

    def segment(self, model, A, B, seg, stop):
        if not available():
            raise UserError("this JAX has no Pallas Triton backend for the fused kernel", KERNEL_ENV,
                            "use ZOOMREEL_KERNEL=xla, or a JAX with Pallas (0.10 or 0.11)")
        if A.name not in ("float32", "float64"):  # dd: its parts are float64, but it is no float64
            return build_segment(model, A, B, seg, stop)
        platform = jax.devices()[0].platform
        if native(platform, model) and not _checking.get():  # forced, or chosen after its check
            why = self.verify(model)
            if why is not None:
                raise UserError(f"the fused kernel failed its check on this GPU: {why}", KERNEL_ENV,
                                "use ZOOMREEL_KERNEL=xla (or leave it unset: the XLA step is then the default here)")
        return build_fused_segment(model, A, B, seg, stop, interpret=not native(platform, model))


def native(platform: str, model) -> bool:
    """Whether the kernel compiles for the device (else it runs in interpret mode)."""
    return platform == "gpu" and fits(model)


FUSED = register(NetworkFused(), preferred=True)
