"""An arbitrary-precision reference of the network's training, in mpmath.

Independent of zoomreel.engine: one network, textbook layout (Z = X W0 /
sqrt(n), prediction H W1 / n, mean squared error), gradients by hand, every
number an mpmath mpf at ``dps`` digits. Only the random draws are shared.
Slow (pure Python): for a few pixels of a small network.
"""

from __future__ import annotations

import mpmath
import numpy as np


def losses(model, draws, lr0, lr1, steps: int, dps: int = 60, offset=None) -> list:
    """The loss before each step, as mpf, for learning rates ``lr0``, ``lr1``
    (mpf or anything mpmath takes exactly: floats, decimal strings).

    ``offset``: added to every input-layer weight at the start (the init-lr
    plane). A minibatch model takes each step's gradient over the rows
    ``draws.idx[t]``; the loss is always the full batch's."""
    with mpmath.workdps(dps):
        mpf, fdot = mpmath.mpf, mpmath.fdot  # fdot: a dot product rounded once
        n = model.width
        X = [[mpf(v) for v in row] for row in draws.x]
        Y = [mpf(row[0]) for row in draws.y]
        W0 = [[mpf(v) for v in row] for row in draws.w0]  # (n, n): W0[i][j], input i -> unit j
        if offset is not None:
            W0 = [[w + mpf(offset) for w in row] for row in W0]
        W1 = [mpf(row[0]) for row in draws.w1]
        lr0, lr1 = mpf(lr0), mpf(lr1)
        P = len(X)
        rs = 1 / mpmath.sqrt(n)
        s2 = mpmath.sqrt(2)
        out = []
        for _ in range(steps):
            Z = [[fdot(X[p], col) * rs for col in zip(*W0)] for p in range(P)]
            if model.nonlinearity == "tanh":
                H = [[mpmath.tanh(s2 * z) for z in row] for row in Z]
                D = [[s2 * (1 - h * h) for h in row] for row in H]
            elif model.nonlinearity == "relu":
                H = [[s2 * z if z > 0 else mpf(0) for z in row] for row in Z]
                D = [[s2 if z > 0 else mpf(0) for z in row] for row in Z]
            else:
                H = Z
                D = [[mpf(1)] * n for _ in range(P)]
            pred = [fdot(H[p], W1) / n for p in range(P)]
            r = [pred[p] - Y[p] for p in range(P)]
            out.append(fdot(r, r) / P)
            rows = range(P) if model.minibatch is None else [int(k) for k in draws.idx[len(out) - 1]]
            g = {p: 2 * r[p] / len(rows) for p in set(rows)}
            gW1 = [fdot([H[p][j] for p in rows], [g[p] for p in rows]) / n for j in range(n)]
            dZ = {p: [g[p] * W1[j] / n * D[p][j] for j in range(n)] for p in set(rows)}
            gW0 = [[fdot([X[p][i] for p in rows], [dZ[p][j] for p in rows]) * rs for j in range(n)] for i in range(n)]
            W0 = [[W0[i][j] - lr0 * gW0[i][j] for j in range(n)] for i in range(n)]
            W1 = [W1[j] - lr1 * gW1[j] for j in range(n)]
        return out


def engine_losses(model, arith: str, host: np.ndarray) -> list[list]:
    """The engine's own losses for pixels ``host`` (in the arithmetic's host
    form, both layers' learning rate) over ``model.steps`` steps, exactly as
    mpf: a dd loss is its record's hi + lo."""
    import jax
    import jax.numpy as jnp

    from zoomreel import engine
    from zoomreel.engine import network

    A = engine.arithmetic(arith)
    form = network.XLA
    seg = jax.jit(network.build_segment(model, A, host.shape[0], model.steps, False))
    res = seg(form.initial_state(model, host, A), A.from_host(host), A.from_host(host),
              jnp.full(host.shape[0], jnp.nan), form.consts(model, A), None)
    rec = np.asarray(res.losses, dtype=np.float64)
    mp = lambda v: mpmath.mpf(float(v))  # noqa: E731
    with mpmath.workdps(60):  # hi + lo exactly
        if rec.ndim == 3:
            return [[mp(rec[t, k, 0]) + mp(rec[t, k, 1]) for t in range(model.steps)]
                    for k in range(host.shape[0])]
        return [[mp(rec[t, k]) for t in range(model.steps)] for k in range(host.shape[0])]


def mandelbrot_smooth(x, y, steps: int, dps: int) -> float:
    """The Mandelbrot measure of an escaping point c = x + iy (decimals), in
    ``dps`` digits: the smooth escape time n + 1 - log2(log|z_n|), at least 1e-3."""
    with mpmath.workdps(dps):
        c, z = mpmath.mpc(mpmath.mpf(str(x)), mpmath.mpf(str(y))), mpmath.mpc(0)
        for n in range(steps):
            if abs(z) > 1e3:
                break
            z = z * z + c
        return max(n + 1 - float(mpmath.log(mpmath.log(abs(z)), 2)), 1e-3)
