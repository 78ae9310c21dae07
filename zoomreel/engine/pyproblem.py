"""The Python kind as the generic step trains it: the user's module's init, loss and data."""

from __future__ import annotations

from .. import pymodule
from ..kinds import python as spec
from .problem import Problem


def python_problem(model) -> Problem:
    mod = spec.SPEC.module(model)
    return Problem(
        init=lambda hp: mod.init(model.seed, hp),
        loss=lambda params, d, hp: mod.loss(params, d, hp),
        batch_loss=None,
        data=pymodule.data_of(mod, model.module, model.seed),
        defaults=spec.SPEC.values(model),
    )
