"""The network kind as the generic step trains it (:class:`~.generic.Problem`).

The forward pass, initialisations and losses are those documented in
:mod:`zoomreel.kinds.network`. A one-hidden-layer network on Gaussian data
uses the paper's draws (:mod:`.randoms`), so the paper's network trained
here starts from the very weights and data the hand-written step uses; a
deeper one draws in the same order with one key per layer.
"""

from __future__ import annotations

import functools
import math

import numpy as np

import jax
import jax.numpy as jnp

from .. import data as datasets
from .problem import Problem
from .randoms import draws


@functools.lru_cache(maxsize=8)
def _deep_draws(sizes: tuple, points: int, seed: int, steps: int, batch: int | None):
    """Float64 draws for layers ``sizes`` (d, n_1, ..., 1): the paper's order
    with one key per weight matrix (split(sub, layers)), then X, Y, minibatches."""
    with jax.threefry_partitionable(True):
        key = jax.random.PRNGKey(seed)
        key, sub = jax.random.split(key)
        ks = jax.random.split(sub, len(sizes) - 1)
        ws = [np.asarray(jax.random.normal(k, (a, b), dtype=jnp.float64)) for k, a, b in zip(ks, sizes, sizes[1:])]
        key, sub = jax.random.split(key)
        x = np.asarray(jax.random.normal(sub, (points, sizes[0]), dtype=jnp.float64))
        key, sub = jax.random.split(key)
        y = np.asarray(jax.random.normal(sub, (points, 1), dtype=jnp.float64))
        idx = None
        if batch is not None:
            key, sub = jax.random.split(key)
            idx = np.asarray(jax.random.randint(sub, (steps, batch), 0, points), dtype=np.int32)
    return ws, x, y, idx


def _weights_normal(model, sizes) -> list:
    """Unit-normal draws for every weight matrix, and the data, for Gaussian data."""
    if len(sizes) == 3:
        d = draws(model)
        return [d.w0, d.w1], d.x, d.y, d.idx
    return _deep_draws(tuple(sizes), model.n_points, model.seed, model.steps, model.minibatch)


def _layer_draws(sizes, seed: int) -> list:
    """Unit-normal weights for data that is not drawn (digits, a file): the same key order."""
    with jax.threefry_partitionable(True):
        key = jax.random.PRNGKey(seed)
        key, sub = jax.random.split(key)
        ks = jax.random.split(sub, len(sizes) - 1)
        return [np.asarray(jax.random.normal(k, (a, b), dtype=jnp.float64)) for k, a, b in zip(ks, sizes, sizes[1:])]


def network_problem(model) -> Problem:
    from ..kinds import network as spec

    hidden = model.hidden
    if model.data == "gaussian":
        sizes = (model.width,) + hidden + (1,)
        ws, x, y, idx = _weights_normal(model, sizes)
        labels, classes = None, 0
    else:
        x, y, classes = datasets.digits() if model.data == "digits" else datasets.read_npz(model.data_bytes, model.data)
        outputs = classes or y.shape[1]
        sizes = (x.shape[1],) + hidden + (outputs,)
        ws = _layer_draws(sizes, model.seed)
        labels = y if classes else None
        if classes:
            y = np.eye(classes)[y]
        idx = None
    mean_field = model.init == "mean-field"
    gains = [1.0] * len(ws)
    if model.init == "he":
        gains = [math.sqrt(2.0 / a) for a in sizes[:-1]]
    elif model.init == "xavier":
        gains = [math.sqrt(2.0 / (a + b)) for a, b in zip(sizes, sizes[1:])]
    sqrt2 = math.sqrt(2.0) if mean_field else 1.0
    nl = model.nonlinearity
    groups = [str(k) for k in range(len(ws))]
    cross = model.loss == "cross-entropy"
    if cross:
        data = {"xt": np.ascontiguousarray(x.T), "labels": labels}
    else:
        data = {"xt": np.ascontiguousarray(x.T), "yt": np.ascontiguousarray(y.T)}

    def phi(z):
        if nl == "tanh":
            return jnp.tanh(sqrt2 * z)
        if nl == "relu":
            return sqrt2 * jax.nn.relu(z)
        return z

    def init(hp):
        params = {}
        for g, w, gain in zip(groups, ws, gains):
            params[g] = jnp.asarray(w) * (gain * hp["init.scale"])
        params["0"] = params["0"] + hp["init.offset"]
        return params

    # Points minor: activations are (units, points), so that vmapped over
    # pixels every product against the shared inputs is one (pixels*units,
    # points) matrix product with no transpose of the activations, the
    # hand-written step's layout (points-major cost 2.8x in float32).
    def forward(params, xt):
        h = xt
        last = len(groups) - 1
        for k, g in enumerate(groups):
            w = params[g]
            z = w.T @ h
            if mean_field:
                z = z / math.sqrt(w.shape[0])
            if k == last:
                return z / math.sqrt(w.shape[0]) if mean_field else z
            a = phi(z)
            h = h + a if model.residual and k > 0 else a

    def loss_on(params, d, rows=None):
        xt = d["xt"] if rows is None else d["xt"][:, rows]
        out = forward(params, xt)  # (outputs, points)
        if cross:
            lab = d["labels"] if rows is None else d["labels"][rows]
            logp = jax.nn.log_softmax(out, axis=0)
            return -jnp.mean(jnp.take_along_axis(logp, lab[None, :], axis=0))
        t = d["yt"] if rows is None else d["yt"][:, rows]
        r = out - t
        return jnp.mean(jnp.sum(r * r, axis=0))

    fixed = {k: v.default for k, v in spec.SPEC.hypers(model.optimizer, len(hidden)).items() if v.default is not None}
    fixed.update(dict(model.hypers))
    return Problem(
        init=init,
        loss=lambda params, d, hp: loss_on(params, d),
        batch_loss=lambda params, d, hp, rows: loss_on(params, d, rows),
        data=data,
        defaults=fixed,
        schedule=idx,
    )
