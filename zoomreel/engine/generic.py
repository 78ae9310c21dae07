"""The generic step: the gradient of a model's loss, then an optimizer's update.

Any network the hand-written step does not train (another optimizer, deeper,
other data, another loss or initialisation, any hyperparameter as a plane
axis) and every Python-module model trains here. A kind says what is trained
as a :class:`Problem` (``init``, ``loss``, shared ``data``, the fixed
hyperparameters); this formulation vmaps ``jax.value_and_grad`` of the loss
and the optimizer's update (:mod:`zoomreel.optimizers`, optax) over the
pixels of a chunk, each with its own hyperparameters: the plane's two
coordinates (``a``, ``b``) and the fixed values.

Each step records the loss at the parameters before its update (the paper's
order), so the measure, early exit and retirement are the network's
(:class:`~.measure.NetworkMeasure`, :data:`~.network.RETIRE_V`), with the
model's trainability ``criterion``: the only formulation that honours one
other than the paper's. (Retiring at RETIRE_V, past the cap, changes no
class under "bounded" either: such a run has left the cap behind.)

A pixel's parameters and optimizer state are made on the device, in the
chunk's first segment (the initialisation may depend on either plane
coordinate, and the scheduler's host-side starting state sees only the first):
the state starts as zeros of the right shapes with ``fresh`` set.

Arithmetics: float32 and float64 (``jax.grad`` is not written over the
double-double seam).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

from .. import kinds
from .formulation import Formulation, Segment, register
from .measure import NetworkMeasure
from .netproblem import network_problem
from .network import RETIRE_V
from .problem import Problem
from .pyproblem import python_problem

ARITHMETICS = ("float32", "float64")


class GenericState(NamedTuple):
    params: Any  # dict of (N, ...) arrays
    opt: Any  # the optimizer's state, (N, ...) leaves
    fresh: Any  # (N,) bool: not initialised yet


# What each kind trains here: one builder per kind the generic step trains.
PROBLEMS = {"network": network_problem, "python": python_problem}


@functools.lru_cache(maxsize=8)
def problem(model) -> Problem:
    return PROBLEMS[model.kind](model)


def _cast(tree, dtype):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)
                                  else jnp.asarray(a), tree)


def hypers(model, a, b, dtype) -> dict:
    """Per-pixel hyperparameters: every fixed value broadcast to a's shape, then the plane's two."""
    p = problem(model)
    hp = {k: jnp.full(a.shape, v, dtype) for k, v in p.defaults.items()}
    x, y = (ax.name for ax in kinds.axes(model))
    hp[x], hp[y] = a.astype(dtype), b.astype(dtype)
    return hp


def _one_pixel(model, dtype):
    """The unbatched pieces: (init(hp) -> (params, opt state), step(params, opt, hp, data, idx))."""
    from .. import optimizers

    p = problem(model)

    def init(hp):
        params = _cast(p.init(hp), dtype)
        tx = optimizers.transform(model.optimizer, hp, tuple(params))
        return params, tx.init(params)

    def step(params, opt, hp, data, idx):
        loss, grads = jax.value_and_grad(p.loss)(params, data, hp)
        if idx is not None:
            grads = jax.grad(p.batch_loss)(params, data, hp, idx)
        tx = optimizers.transform(model.optimizer, hp, tuple(params))
        updates, opt = tx.update(grads, opt, params)
        params = jax.tree_util.tree_map(lambda w, u: w + u.astype(w.dtype), params, updates)
        return params, opt, loss

    return init, step


class GenericXLA(Formulation):
    impl = "generic"
    tag = "generic"  # differs from the hand-written step by rounding, where both train a model

    def __init__(self, kind: str):
        self.kind = kind

    def supports(self, model) -> bool:
        return True

    def arithmetics(self, model):
        return ARITHMETICS

    def consts(self, model, A):
        return _cast(problem(model).data, A.dtype)

    def schedule(self, model):
        return problem(model).schedule

    def initial_state(self, model, a, A):
        N = a.shape[0]
        init, _ = _one_pixel(model, A.dtype)
        hp = {k: jax.ShapeDtypeStruct((), A.dtype) for k in hypers(model, np.zeros(1), np.zeros(1), A.dtype)}
        shapes = jax.eval_shape(init, hp)
        zeros = jax.tree_util.tree_map(lambda s: np.zeros((N,) + s.shape, s.dtype), shapes)
        return GenericState(zeros[0], zeros[1], np.ones(N, dtype=bool))

    def measure_of(self, model, steps, n, A):
        return NetworkMeasure(steps, n, A.record_parts, criterion=model.criterion)

    def retire(self, measure, ids):
        return measure.past(ids, RETIRE_V)

    def segment(self, model, A, B, seg, stop):
        init, step = _one_pixel(model, A.dtype)
        vinit = jax.vmap(init)
        vstep = jax.vmap(step, in_axes=(0, 0, 0, None, None))

        def segment(state, a, b, l0, consts, idx):
            hp = hypers(model, a, b, A.dtype)
            params, opt = lax.cond(state.fresh[0], lambda: vinit(hp), lambda: (state.params, state.opt))

            def more(c):
                return (c[0] < seg) & ~c[-1]

            def one_step(c):
                t, params, opt, losses, l0, _ = c
                idx_t = None if idx is None else idx[t]
                params, opt, loss = vstep(params, opt, hp, consts, idx_t)
                losses = lax.dynamic_update_index_in_dim(losses, loss.astype(A.loss_dtype), t, 0)
                l0 = jnp.where(jnp.isnan(l0), loss, l0)
                gone = jnp.all(~(loss / l0 <= RETIRE_V)) if stop else jnp.asarray(False)
                return t + 1, params, opt, losses, l0, gone

            record = jnp.full((seg, B), jnp.nan, A.loss_dtype)
            ran, params, opt, losses, l0, _ = lax.while_loop(more, one_step, (0, params, opt, record, l0, jnp.asarray(False)))
            bad = [jnp.isnan(w).reshape(B, -1).any(axis=1) for w in jax.tree_util.tree_leaves(params)]
            dead = functools.reduce(jnp.logical_or, bad)
            return Segment(GenericState(params, opt, jnp.zeros(B, dtype=bool)), losses, dead, ran, l0)

        return segment


NETWORK = register(GenericXLA("network"))
PYTHON = register(GenericXLA("python"))
