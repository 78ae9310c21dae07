"""An independent NumPy float64 implementation of mean-field tanh networks
trained by gradient descent, momentum, Nesterov momentum, Adam and RMSprop,
with optional gradient clipping, weight decay and residual connections.

Written from the textbook definitions, separately from zoomreel.engine and
optax: one network at a time, the forward pass and its gradients by hand,
one learning rate per weight matrix. Only the random draws are shared,
because they must be the reference's.

Network (weights W_0 .. W_L, inputs X (points, d)): z_1 = X W_0 / sqrt(d),
a_l = tanh(sqrt(2) z_l), h_1 = a_1, h_{l+1} = a_{l+1} (+ h_l when residual),
z_{l+1} = h_l W_l / sqrt(n_l), out = h_L W_L / n_L; loss mean((out - Y)^2).

Per step, with g the gradient of every weight matrix:

- clip:      g <- g * clip / |g|  when the global norm |g| (over all matrices) is at least clip
- direction:
  - gd:        d = g
  - momentum:  t <- g + mu t;             d = t
  - nesterov:  t <- g + mu t;             d = g + mu t
  - adam:      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
               d = (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps), k = 1, 2, ...
  - rmsprop:   v <- decay v + (1 - decay) g^2 (v from 0);  d = g / sqrt(v + eps)
- weight decay: d <- d + wd W
- W <- W - lr d
"""

from __future__ import annotations

import numpy as np

from reference import measure

SQRT2 = np.sqrt(2.0)


def loss_and_grads(Ws, X, Y, residual=False):
    """The loss and the gradient of every weight matrix, by hand."""
    h = X
    cache = []
    for k, W in enumerate(Ws[:-1]):
        a = np.tanh(SQRT2 * (h @ W / np.sqrt(W.shape[0])))
        cache.append((h, a))
        h = h + a if residual and k > 0 else a
    WL = Ws[-1]
    n = WL.shape[0]
    r = h @ WL / n - Y
    loss = np.mean(r**2)
    dout = 2.0 * r / X.shape[0]
    grads = [None] * len(Ws)
    grads[-1] = h.T @ dout / n
    dh = dout @ WL.T / n
    for k in range(len(Ws) - 2, -1, -1):
        h_in, a = cache[k]
        W = Ws[k]
        dz = dh * SQRT2 * (1.0 - a**2) / np.sqrt(W.shape[0])
        grads[k] = h_in.T @ dz
        dh_in = dz @ W.T
        dh = dh_in + dh if residual and k > 0 else dh_in
    return loss, grads


def losses(optimizer, draws, lrs, steps, *, weights=None, residual=False, clip=None, weight_decay=None, **hp):
    """The loss at every step (before its update). ``draws``: the paper's
    draws (w0, w1, x, y); ``weights``: every weight matrix instead of
    draws.w0, draws.w1 (a deeper network); ``lrs``: one rate per matrix."""
    W = [w.copy() for w in (weights if weights is not None else (draws.w0, draws.w1))]
    X, Y = draws.x, draws.y
    state = [[np.zeros_like(w), np.zeros_like(w)] for w in W]
    out = []
    with np.errstate(all="ignore"):
        for k in range(1, steps + 1):
            loss, grads = loss_and_grads(W, X, Y, residual)
            out.append(loss)
            if clip is not None:
                norm = np.sqrt(sum(np.sum(g * g) for g in grads))
                if not norm < clip:
                    grads = [g / norm * clip for g in grads]
            for i, g in enumerate(grads):
                s = state[i]
                if optimizer == "gd":
                    step = g
                elif optimizer in ("momentum", "nesterov"):
                    mu = hp["momentum"]
                    s[0] = g + mu * s[0]
                    step = s[0] if optimizer == "momentum" else g + mu * s[0]
                elif optimizer == "adam":
                    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
                    s[0] = b1 * s[0] + (1 - b1) * g
                    s[1] = b2 * s[1] + (1 - b2) * g * g
                    step = (s[0] / (1 - b1**k)) / (np.sqrt(s[1] / (1 - b2**k)) + eps)
                elif optimizer == "rmsprop":
                    decay, eps = hp["decay"], hp["eps"]
                    s[1] = decay * s[1] + (1 - decay) * g * g
                    step = g / np.sqrt(s[1] + eps)
                else:
                    raise ValueError(optimizer)
                if weight_decay is not None:
                    step = step + weight_decay * W[i]
                W[i] = W[i] - lrs[i] * step
    return np.array(out)


def pixel(optimizer, draws, lrs, steps, **kw):
    """The paper's measure of one pixel; ``lrs``: one rate per weight matrix."""
    return measure(losses(optimizer, draws, tuple(lrs), steps, **kw))
