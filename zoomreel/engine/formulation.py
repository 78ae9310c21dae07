"""The seam between what is trained and how it is scheduled.

A :class:`Formulation` is everything the scheduler needs to know of one model
kind, in one object:

- ``consts(model, A)``: device constants every chunk shares (the inputs X and
  labels Y of a network; nothing for the Mandelbrot set);
- ``schedule(model)``: per-step data shared by every pixel (minibatch indices), or None;
- ``initial_state(model, a, A)``: each pixel's starting state, a NamedTuple of
  host arrays with one row per pixel;
- ``segment(model, A, B, seg, stop)``: the plain (unjitted) function that
  trains a chunk of B pixels for ``seg`` steps,
  ``(state, a, b, l0, consts, idx) -> Segment(state, losses, dead, ran, l0)``;
- ``measure(steps, n, A)``: the accumulator that turns per-step values into the
  measure (:mod:`zoomreel.engine.measure`), in the precision of ``A``'s records;
  the scheduler asks ``measure_of(model, steps, n, A)``, which is ``measure``
  unless the formulation trains models whose measure differs by more than
  the kind (the generic step: a model's trainability ``criterion``);
- ``retire(measure, ids)``: pixels to retire between segments besides ``dead``
  (or None).

Formulations are registered by (kind, implementation). The scheduler asks
:func:`choose` which one runs; a second implementation of a kind (a fused
GPU kernel, say) registers itself beside the XLA one, says where it suits and
verifies that it works there,
and names itself in the cache key through :attr:`Formulation.tag`.

Each formulation also says which models it can train (:meth:`Formulation.supports`)
and in which arithmetics (:meth:`Formulation.arithmetics`). By default that
is what the model's kind calls native (:meth:`zoomreel.kinds.KindSpec.native`):
the hand-written steps know only the paper's fields, so the choice never falls
on one that would ignore a field, a trainability ``criterion`` other than
the paper's included (the generic step, :mod:`.generic`, trains every model
of its kind).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from typing import Any, Callable, NamedTuple

from ..errors import UserError
from ..kinds import describe, spec


class Segment(NamedTuple):
    state: Any  # the model state after the segment (same pytree as the input)
    losses: Any  # (seg, B) per-step values as A.record keeps them, (seg, B, 2) for dd (NaN: steps not run)
    dead: Any  # (B,) bool: pixels whose state can no longer change the measure
    ran: Any  # steps actually run (< seg when the whole chunk stopped early)
    l0: Any  # (B,) each pixel's first value (NaN until the first step gives it)


class Formulation:
    kind: str = ""
    impl: str = "xla"
    tag: str = ""  # added to cache keys when not empty: values differ by rounding

    def supports(self, model) -> bool:
        """Whether this formulation trains ``model`` as it is described (every field)."""
        return spec(model.kind).native(model)

    def arithmetics(self, model) -> tuple[str, ...] | None:
        """The arithmetics it trains ``model`` in (None: every one)."""
        return spec(model.kind).arithmetics(model)

    def suits(self, platform: str, model) -> bool:
        """Whether :func:`choose` may pick this implementation by default there
        (a plain predicate: it runs nothing)."""
        return True

    def verify(self, model) -> str | None:
        """Why this implementation cannot train ``model`` on this machine, or
        None. :func:`choose` asks it before picking an implementation by
        default; it may compile and train a check (once per condition)."""
        return None

    def describe(self, platform: str, model, dtype: str | None = None) -> str:
        """How this implementation trains ``model`` there (in ``dtype``), in a
        few words: its name by default."""
        return self.impl

    def consts(self, model, A) -> tuple:
        return ()

    def schedule(self, model):
        return None

    def initial_state(self, model, a, A):
        raise TypeError(f"{type(self).__name__} has no initial state")

    def segment(self, model, A, B: int, seg: int, stop: bool) -> Callable:
        raise TypeError(f"{type(self).__name__} has no segment function")

    def measure(self, steps: int, n: int, A):
        raise TypeError(f"{type(self).__name__} has no measure")

    def measure_of(self, model, steps: int, n: int, A):
        """The measure of ``model``'s pixels: :meth:`measure`, for the models it supports."""
        return self.measure(steps, n, A)

    def retire(self, measure, ids):
        return None


_REGISTRY: dict[tuple[str, str], Formulation] = {}
# Tried in this order when no implementation is forced; "xla" is the fallback.
_PREFERENCE: list[str] = []


def register(f: Formulation, preferred: bool = False) -> Formulation:
    _REGISTRY[(f.kind, f.impl)] = f
    if preferred and f.impl not in _PREFERENCE:
        _PREFERENCE.append(f.impl)
    return f


def implementations(kind: str | None = None) -> list[Formulation]:
    """Every registered formulation (of one kind)."""
    return [f for (k, _), f in _REGISTRY.items() if kind is None or k == kind]


def get(kind: str, impl: str) -> Formulation:
    return _REGISTRY[(kind, impl)]


KERNEL_ENV = "ZOOMREEL_KERNEL"
_using: contextvars.ContextVar[str | None] = contextvars.ContextVar("zoomreel_kernel", default=None)


@contextlib.contextmanager
def using(impl: str | None):
    """Within the block, :func:`choose` picks ``impl`` (None: no change). A
    unit of work carries its driver's choice this way, so that every pixel of
    it, precision probe included, is trained by one implementation."""
    token = _using.set(impl) if impl else None
    try:
        yield
    finally:
        if token is not None:
            _using.reset(token)


def choose(model, platform: str, impl: str | None = None) -> Formulation:
    """The formulation that trains ``model`` on ``platform``.

    ``impl`` (or the ZOOMREEL_KERNEL variable) forces an implementation for
    the network kind, where it trains the model; otherwise the first preferred
    one that applies, else XLA, else the kind's first one that trains it.
    """
    forced = impl or _using.get() or os.environ.get(KERNEL_ENV, "").strip() or None
    if forced is not None and model.kind == "network":
        known = sorted({i for (k, i) in _REGISTRY if k == model.kind})
        if (model.kind, forced) not in _REGISTRY:
            raise UserError(f"unknown kernel {forced!r}", KERNEL_ENV, f"use one of {', '.join(known)}")
        f = _REGISTRY[(model.kind, forced)]
        if f.supports(model):
            return f
        if impl is not None or _using.get() is None:
            fits = sorted(i for (k, i), g in _REGISTRY.items() if k == model.kind and g.supports(model))
            raise UserError(f"the {forced} kernel trains only the paper's network (plain gradient descent)", KERNEL_ENV,
                            f"use one of {', '.join(fits)} for this model, or unset {KERNEL_ENV}")
    for name in _PREFERENCE:
        f = _REGISTRY.get((model.kind, name))
        if f is not None and f.supports(model) and f.suits(platform, model):
            why = f.verify(model)
            if why is None:
                return f
            _warn_fallback(f, why)
    f = _REGISTRY.get((model.kind, "xla"))
    if f is not None and f.supports(model):
        return f
    return next(g for (k, _), g in _REGISTRY.items() if k == model.kind and g.supports(model))


def refuse_arithmetic(f: Formulation, model, A, where: str = "precision") -> None:
    """The one-line refusal of training ``model`` with ``f`` in arithmetic ``A`` when it cannot."""
    names = f.arithmetics(model)
    if names is not None and A.name not in names:
        raise UserError(f"{A.name} cannot train this model ({describe(model)}): it trains in {' and '.join(names)} only",
                        where, f'use precision = "{names[-1]}"')


warned_fallbacks: set = set()


def _warn_fallback(f: Formulation, why: str) -> None:
    """Say once per failure that the XLA step trains instead of ``f``."""
    if (f.impl, why) not in warned_fallbacks:
        warned_fallbacks.add((f.impl, why))
        print(f"warning: the {f.impl} kernel failed its check on this machine ({why}); "
              f"the XLA step trains instead (set {KERNEL_ENV}=xla to skip the check)", file=sys.stderr)
