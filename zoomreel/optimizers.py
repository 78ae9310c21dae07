"""Optimizers: how a pixel's parameters move, given the gradient of its loss.

One :class:`Optimizer` per name, registered in :data:`OPTIMIZERS`: its own
hyperparameters with their defaults, and ``direction(hp)``, the optax
transformation that turns gradients into a step direction. Every optimizer
then shares the same frame (:func:`transform`):

    gradient -> [clip by global norm] -> direction -> [+ weight_decay * params] -> * -lr per group

so ``lr``, ``lr.<group>``, ``clip`` and ``weight_decay`` apply to all of them.
A new optimizer is one new entry below (its section) and nothing else.

The hyperparameters arrive per pixel as traced scalars (vmapped over
pixels), so each optimizer is built inside the vmapped step from the pixel's
values: what ``optax.inject_hyperparams`` does, without keeping a second copy
of the values in every pixel's optimizer state (they come with the chunk's
plane coordinates at every segment). Nothing here imports JAX until a
transformation is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Shared by every optimizer (see the module doc): defaults; None = not applied.
COMMON = {"lr": 0.1, "clip": None, "weight_decay": None}


@dataclass(frozen=True)
class Optimizer:
    name: str
    hypers: dict  # its own hyperparameters: name -> default
    direction: Callable  # hp -> optax.GradientTransformation (before the learning rates)
    doc: str


OPTIMIZERS: dict[str, Optimizer] = {}


def register(opt: Optimizer) -> Optimizer:
    OPTIMIZERS[opt.name] = opt
    return opt


# -- gd: the paper's plain gradient descent: params -= lr * grad

def _gd(hp):
    import optax

    return optax.identity()


register(Optimizer("gd", {}, _gd, "plain gradient descent (the paper's)"))


# -- momentum: t = grad + momentum * t; params -= lr * t (heavy ball, optax.trace)

def _momentum(hp):
    import optax

    return optax.trace(decay=hp["momentum"], nesterov=False)


register(Optimizer("momentum", {"momentum": 0.9}, _momentum, "heavy-ball momentum"))


# -- nesterov: t = grad + momentum * t; params -= lr * (grad + momentum * t)

def _nesterov(hp):
    import optax

    return optax.trace(decay=hp["momentum"], nesterov=True)


register(Optimizer("nesterov", {"momentum": 0.9}, _nesterov, "Nesterov momentum"))


# -- adam: bias-corrected first and second moments; params -= lr * m^ / (sqrt(v^) + eps)

def _adam(hp):
    import optax

    return optax.scale_by_adam(b1=hp["beta1"], b2=hp["beta2"], eps=hp["eps"])


register(Optimizer("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, _adam, "Adam"))


# -- rmsprop: v = decay * v + (1 - decay) * grad^2 (v starts at 0); params -= lr * grad / sqrt(v + eps)
#    (optax's default: eps under the root)

def _rmsprop(hp):
    import optax

    return optax.scale_by_rms(decay=hp["decay"], eps=hp["eps"])


register(Optimizer("rmsprop", {"decay": 0.9, "eps": 1e-8}, _rmsprop, "RMSprop"))


def names() -> tuple[str, ...]:
    return tuple(OPTIMIZERS)


def hyper_defaults(name: str) -> dict:
    """Every hyperparameter optimizer ``name`` has (lr, clip, weight_decay
    and its own), with defaults (None: not applied unless given)."""
    return {**COMMON, **OPTIMIZERS[name].hypers}


def transform(name: str, hp: dict, groups) -> "object":
    """The optax transformation of optimizer ``name`` for one pixel's
    hyperparameters ``hp`` (traced scalars; ``clip``/``weight_decay``
    present only when applied) over parameter groups ``groups`` (the
    params dict's top-level keys): updates are ``-lr.<group>`` (else
    ``-lr``) times the direction."""
    import jax
    import optax

    parts = []
    if "clip" in hp:
        parts.append(optax.clip_by_global_norm(hp["clip"]))
    parts.append(OPTIMIZERS[name].direction(hp))
    if "weight_decay" in hp:
        parts.append(optax.add_decayed_weights(hp["weight_decay"]))
    rates = {g: hp.get(f"lr.{g}", hp["lr"]) for g in groups}

    # The learning rate per parameter group: a plain map over the groups
    # (optax.scale takes one rate; multi_transform would build one chain per
    # group for what is one product).
    def per_group(updates, state, params=None):
        return {g: jax.tree_util.tree_map(lambda u, r=rates[g]: -r * u, updates[g]) for g in updates}, state

    parts.append(optax.GradientTransformation(lambda params: optax.EmptyState(), per_group))
    return optax.chain(*parts)
