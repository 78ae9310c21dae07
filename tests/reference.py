"""An independent NumPy float64 implementation of the reference experiment.

Written from the experiment as J. Sohl-Dickstein, "The boundary of neural
network trainability is fractal" (arXiv 2402.06184, 2024) describes it,
separately from zoomreel.engine: one network at a time, plain forward pass,
gradients by hand in the textbook layout (no pixel-major tricks, no chunking,
no early exit), and its own measure.
Only the random draws are shared, because they must be the reference's.
"""

from __future__ import annotations

import math

import numpy as np


def conditions(steps: int) -> dict:
    """The paper's six conditions (Table 1's rows), each trained ``steps`` steps."""
    from zoomreel.model import Model

    return {
        "tanh": Model(nonlinearity="tanh", steps=steps),
        "relu": Model(nonlinearity="relu", steps=steps),
        "identity": Model(nonlinearity="identity", steps=steps),
        "minibatch": Model(nonlinearity="tanh", batch=16, steps=steps),
        "single": Model(nonlinearity="tanh", dataset="single", steps=steps),
        "init-lr": Model(nonlinearity="tanh", plane="init-lr", steps=steps),
    }


def phi(kind, z):
    if kind == "tanh":
        return np.tanh(np.sqrt(2.0) * z)
    if kind == "relu":
        return np.sqrt(2.0) * np.maximum(z, 0.0)
    return z


def dphi(kind, z):
    if kind == "tanh":
        return np.sqrt(2.0) / np.cosh(np.sqrt(2.0) * z) ** 2
    if kind == "relu":
        return np.where(z > 0, np.sqrt(2.0), 0.0)
    return np.ones_like(z)


def losses_one(kind, W0, W1, X, Y, lr0, lr1, steps, idx=None):
    n = W0.shape[0]
    W0 = W0.copy()
    W1 = W1.copy()
    out = []
    with np.errstate(all="ignore"):
        for t in range(steps):
            Z = X @ W0 / np.sqrt(n)
            H = phi(kind, Z)
            pred = (H @ W1 / np.sqrt(n)) / np.sqrt(n)
            out.append(np.mean((pred - Y) ** 2))
            if idx is None:
                Xb, Zb, Hb, Yb, predb = X, Z, H, Y, pred
            else:
                rows = idx[t]
                Xb, Zb, Hb, Yb, predb = X[rows], Z[rows], H[rows], Y[rows], pred[rows]
            m = Xb.shape[0]
            dpred = 2.0 * (predb - Yb) / m  # (m, 1)
            gW1 = Hb.T @ dpred / n
            dH = dpred @ W1.T / n
            dZ = dH * dphi(kind, Zb)
            gW0 = Xb.T @ dZ / np.sqrt(n)
            W0 = W0 - lr0 * gW0
            W1 = W1 - lr1 * gW1
    return np.array(out)


def measure(losses):
    L = np.asarray(losses, dtype=np.float64)
    with np.errstate(all="ignore"):
        v = L / L[0]
    v = np.array([1e6 if not np.isfinite(a) else min(a, 1e6) for a in v])
    if v[-20:].mean() < 1:
        return -v.sum()
    return (1.0 / v).sum()


def pixel(model, draws, hx, hy, dtype=np.float64):
    """The measure of one pixel of a network model."""
    W0 = draws.w0.astype(dtype)
    W1 = draws.w1.astype(dtype)
    X = draws.x.astype(dtype)
    Y = draws.y.astype(dtype)
    if model.plane == "lr-lr":
        lr0, lr1 = dtype(hx), dtype(hy)
    else:
        W0 = W0 + dtype(hx)
        lr0 = lr1 = dtype(hy)
    L = losses_one(model.nonlinearity, W0, W1, X, Y, lr0, lr1, model.steps, draws.idx)
    return measure(L)


def frame(model, draws, xs, ys):
    """(len(ys), len(xs)) measure; xs, ys are hyperparameter values per column / row."""
    return np.array([[pixel(model, draws, hx, hy) for hx in xs] for hy in ys])


def mandelbrot(cr, ci, steps, radius=1e3):
    """Escape time by direct complex iteration, z <- z*z + c from z = 0.

    Returns (escaped, smooth): smooth = n + 1 - log2(log|z_n|) for the first n
    with |z_n| > radius, where z_n is the value after n iterations; None if
    the point stays bounded for ``steps`` iterations.
    """
    z = 0j
    c = complex(cr, ci)
    for n in range(steps):
        if abs(z) > radius:
            return True, max(n + 1 - math.log2(math.log(abs(z))), 1e-3)
        z = z * z + c
    return False, None
