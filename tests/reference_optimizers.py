"""An independent NumPy float64 implementation of the paper's network
trained by momentum, Nesterov momentum and Adam.

Written from the textbook definitions, separately from zoomreel.engine and
optax: one network at a time, the forward pass and its gradients by hand,
one learning rate per layer (the lr-lr plane). Only the random draws are
shared, because they must be the reference's.

- momentum:  t <- g + mu t;             W <- W - lr t
- nesterov:  t <- g + mu t;             W <- W - lr (g + mu t)
- adam:      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
             W <- W - lr (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps), k = 1, 2, ...
"""

from __future__ import annotations

import numpy as np

from reference import measure


def loss_and_grads(W0, W1, X, Y):
    n = W0.shape[0]
    Z = X @ W0 / np.sqrt(n)
    H = np.tanh(np.sqrt(2.0) * Z)
    pred = H @ W1 / n
    r = pred - Y
    loss = np.mean(r**2)
    dpred = 2.0 * r / X.shape[0]
    gW1 = H.T @ dpred / n
    dZ = (dpred @ W1.T / n) * np.sqrt(2.0) * (1.0 - H**2)
    gW0 = X.T @ dZ / np.sqrt(n)
    return loss, (gW0, gW1)


def losses(optimizer, draws, lrs, steps, **hp):
    W = [draws.w0.copy(), draws.w1.copy()]
    X, Y = draws.x, draws.y
    state = [[np.zeros_like(w), np.zeros_like(w)] for w in W]
    out = []
    with np.errstate(all="ignore"):
        for k in range(1, steps + 1):
            loss, grads = loss_and_grads(W[0], W[1], X, Y)
            out.append(loss)
            for i, g in enumerate(grads):
                s = state[i]
                if optimizer in ("momentum", "nesterov"):
                    mu = hp["momentum"]
                    s[0] = g + mu * s[0]
                    step = s[0] if optimizer == "momentum" else g + mu * s[0]
                elif optimizer == "adam":
                    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
                    s[0] = b1 * s[0] + (1 - b1) * g
                    s[1] = b2 * s[1] + (1 - b2) * g * g
                    step = (s[0] / (1 - b1**k)) / (np.sqrt(s[1] / (1 - b2**k)) + eps)
                else:
                    raise ValueError(optimizer)
                W[i] = W[i] - lrs[i] * step
    return np.array(out)


def pixel(optimizer, draws, lr0, lr1, steps, **hp):
    return measure(losses(optimizer, draws, (lr0, lr1), steps, **hp))
