"""The network formulation, in XLA: the paper's two-layer net trained by gradient descent.

Layout. A chunk of B pixels keeps its input-layer weights "pixel-major" as one
(B*n, n) matrix (row b*n + j is column j of pixel b's W0), so that the forward
product X @ W0 and the backward product X^T @ dZ of every pixel in the chunk
are each a single large matrix product against the shared inputs X.

The step is written over an arithmetic ``A`` (:mod:`zoomreel.engine.arith`):
its products, tanh and sums are ``A``'s, so one step serves every precision.

Inside a segment, with ``stop``, a whole chunk stops as soon as every pixel in
it has a loss past :data:`RETIRE_V` or NaN (a NaN loss comes only from
parameters that are no longer finite): the scheduler then retires them all,
and the steps not run stay NaN in the record, which the measure reads as the
cap. Between segments the scheduler retires single pixels by the same rule
(:meth:`NetworkXLA.retire`). Retiring at RETIRE_V (1e30, 24 decades above the
cap 1e6) reads the rest of the record as "at the cap", which is the full run's
value exactly unless v would later fall back below 1e6; no pixel has been
seen to do that, and the suite checks it for every model condition in both
dtypes.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import NamedTuple


import jax.numpy as jnp
from jax import lax

from .randoms import draws
from .formulation import Formulation, Segment, register
from .measure import NetworkMeasure

RETIRE_V = 1e30  # retire a network pixel once L_t / L_0 exceeds this


class NetworkState(NamedTuple):
    w0: object  # (N, n, n) input-layer weights
    w1: object  # (N, n) output-layer weights


def constants(model, A) -> dict:
    """The step's constants in arithmetic ``A``: each given as its float64
    value (what the float arithmetics use) and exactly."""
    n = model.width
    rows = model.minibatch or model.n_points  # points per gradient
    with localcontext(prec=60):
        exact = {"inv_sqrt_n": 1 / Decimal(n).sqrt(), "sqrt2": Decimal(2).sqrt(), "inv_n": 1 / Decimal(n),
                 "two_per_row": 2 / Decimal(rows)}
    f64 = {"inv_sqrt_n": 1.0 / math.sqrt(n), "sqrt2": math.sqrt(2.0), "inv_n": 1.0 / n, "two_per_row": 2.0 / rows}
    return {k: A.const(f64[k], exact[k]) for k in f64}


def phi(nonlinearity: str, z, A, sqrt2):
    """The nonlinearity and its derivative: (h, dh/dz)."""
    if nonlinearity == "tanh":
        h = A.tanh(sqrt2 * z)
        return h, sqrt2 * (1.0 - h * h)
    if nonlinearity == "relu":
        return sqrt2 * A.relu(z), A.step(z, sqrt2)
    return z, A.ones_like(z)


class NetworkXLA(Formulation):
    kind = "network"
    impl = "xla"

    def consts(self, model, A):
        d = draws(model)
        return (A.cast(d.x), A.cast(d.y))

    def schedule(self, model):
        return draws(model).idx

    def initial_state(self, model, a, A):
        N = a.shape[0]
        d = draws(model)
        w0 = A.broadcast_rows(A.cast(d.w0), N)
        if model.plane == "init-lr":
            w0 = w0 + A.from_host(a)[:, None, None]
        w1 = A.broadcast_rows(A.cast(d.w1[:, 0]), N)
        return NetworkState(w0, w1)

    def measure(self, steps, n, A):
        return NetworkMeasure(steps, n, A.record_parts)

    def retire(self, measure, ids):
        return measure.past(ids, RETIRE_V)

    def segment(self, model, A, B, seg, stop):
        return build_segment(model, A, B, seg, stop)


def build_segment(model, A, B: int, seg: int, stop: bool):
    """One chunk's segment function (see :class:`~.formulation.Formulation`)."""
    n = model.width
    nl = model.nonlinearity
    mb = model.minibatch
    points = model.n_points
    K = constants(model, A)

    def step(xt, y, lr0c, lr1, carry, idx_t):
        # "pixel-rows" layout: every array is (pixel*unit, point), points minor
        w0r, w1 = carry  # (B*n, n) rows = W0_b[:, j], (B, n)
        z = A.matmul(w0r, xt)  # (B*n, P)
        h, dphi = phi(nl, z, A, K["sqrt2"])
        h3 = h.reshape(B, n, h.shape[1])
        out = A.einsum("bjp,bj->bp", h3, w1) * K["inv_n"]
        r = out - y  # (B, P)
        loss = A.sum_last(r * r) / points
        if mb is None:
            xg, hg, dg, rg, rows = xt, h3, dphi, r, points
        else:
            xg = xt[:, idx_t]
            hg = h3[:, :, idx_t]
            dg = dphi.reshape(B, n, -1)[:, :, idx_t].reshape(B * n, mb)
            rg = r[:, idx_t]
            rows = mb
        g = rg * K["two_per_row"]  # (B, R)
        dw1 = A.einsum("bjp,bp->bj", hg, g) * K["inv_n"]
        dz = (g[:, None, :] * w1[:, :, None] * K["inv_n"]).reshape(B * n, rows) * dg
        dw0r = A.matmul(dz, xg.T)  # (B*n, n)
        return (w0r - lr0c[:, None] * dw0r, w1 - lr1[:, None] * dw1), loss

    def segment(state, a, b, l0, consts, idx):
        # state.w0 (B, n, n), state.w1 (B, n), a/b (B,), consts = x (P, n),
        # y (P, 1); idx (seg, batch) or None; l0 (B,) each pixel's first loss
        # L_0 (NaN in the first segment: its first step gives it)
        x, y = consts
        xt = (x * K["inv_sqrt_n"]).T  # (n, P)
        lr0, lr1 = (a, b) if model.plane == "lr-lr" else (b, b)
        lr0c = A.repeat(lr0, n)
        w0r = state.w0.transpose(0, 2, 1).reshape(B * n, n)
        yrow = y[:, 0][None, :]

        def more(c):
            return (c[0] < seg) & ~c[-1]

        def one_step(c):
            t, w0r, w1, losses, l0, _ = c
            idx_t = None if idx is None else idx[t]
            (w0r, w1), exact = step(xt, yrow, lr0c, lr1, (w0r, w1), idx_t)
            loss = A.to_float64(exact)
            losses = lax.dynamic_update_index_in_dim(losses, A.record(exact), t, 0)
            l0 = jnp.where(jnp.isnan(l0), loss, l0)
            gone = jnp.all(~(loss / l0 <= RETIRE_V)) if stop else jnp.asarray(False)
            return t + 1, w0r, w1, losses, l0, gone

        record = jnp.full((seg, B) + (A.record_parts,) * (A.record_parts > 1), jnp.nan, A.loss_dtype)
        start = (0, w0r, state.w1, record, l0, jnp.asarray(False))
        ran, w0r, w1, losses, l0, _ = lax.while_loop(more, one_step, start)
        w0 = w0r.reshape(B, n, n).transpose(0, 2, 1)
        dead = A.isnan(w0).any(axis=(1, 2)) | A.isnan(w1).any(axis=1)
        return Segment(NetworkState(w0, w1), losses, dead, ran, l0)

    return segment


XLA = register(NetworkXLA())
