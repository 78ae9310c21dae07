"""What the generic step (:mod:`.generic`) trains, as each kind describes it."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Problem(NamedTuple):
    """What a pixel trains, as the generic step needs it."""

    init: Callable  # hp -> params, a dict of arrays (top-level keys: parameter groups)
    loss: Callable  # (params, data, hp) -> scalar: the recorded loss, and the gradient's without a minibatch
    batch_loss: Callable | None  # (params, data, hp, idx) -> scalar: the gradient's loss on rows idx, or None
    data: Any  # pytree of host arrays every pixel shares
    defaults: dict  # name -> float: every hyperparameter's fixed value (defaults, then the file's)
    schedule: Any = None  # (steps, batch) minibatch rows every pixel shares per step, or None
