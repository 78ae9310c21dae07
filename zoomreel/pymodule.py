"""A user's Python module: a model kind written in plain JAX.

Loading a module runs its code, as ``import`` would: a keyframe file that
names a module is a program. The source comes from the keyframe file's
folder once (:mod:`zoomreel.kinds`), then travels inside the model (to Ray
workers too); it is executed from that text, never read again, and the
cache key holds its hash.

The module defines (docs/format.md, "The python kind"):

- ``HYPERS`` (optional): name -> {"default": number, "scale": "log"|"linear"};
- ``OPTIMIZER`` (optional): defaults for the [model] keys of the optimizer
  ("optimizer", "lr", "beta1", ...), which the keyframe file overrides;
- ``CRITERION`` (optional): the default of [model] ``criterion``,
  "converged" (the paper's) or "bounded";
- ``data(seed)`` (optional): a pytree of arrays every pixel shares;
- ``init(seed, hp)``: the parameters, a dict of arrays (the top-level keys
  are the parameter groups, ``lr.<key>`` their learning rates);
- ``loss(params, data, hp)``: the training loss, a positive scalar at init.

Every problem with a module is one :class:`UserError` naming it, raised by
:func:`check` before any frame trains.
"""

from __future__ import annotations

import functools
import hashlib
import math
import types

from .errors import UserError

FIX = "fix the module (docs/format.md, \"The python kind\", says what it defines)"


def digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _said(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


@functools.lru_cache(maxsize=16)
def load(source: str, name: str) -> types.ModuleType:
    """The module ``name`` (as the keyframe file writes it) run from ``source``."""
    mod = types.ModuleType(f"zoomreel_module_{digest(source)[:12]}")
    mod.__file__ = name
    try:
        code = compile(source, name, "exec")
        exec(code, mod.__dict__)
    except Exception as e:
        raise UserError(f"loading the module raised {_said(e)}", name, FIX) from None
    for fn in ("init", "loss"):
        if not callable(getattr(mod, fn, None)):
            raise UserError(f"the module defines no function {fn}()", name, f"define {fn}(...) (docs/format.md, \"The python kind\")")
    if getattr(mod, "data", None) is not None and not callable(mod.data):
        raise UserError("data is not a function", name, "define data(seed) returning the arrays every pixel shares")
    return mod


def hypers(mod, name: str) -> dict:
    """The module's HYPERS as name -> (default, scale)."""
    h = getattr(mod, "HYPERS", {})
    if not isinstance(h, dict):
        raise UserError(f"HYPERS is a {type(h).__name__}, not a dict", name, 'write HYPERS = {"name": {"default": 0.0, "scale": "linear"}}')
    out = {}
    for k, v in h.items():
        if not isinstance(k, str) or not k or not isinstance(v, dict) or "default" not in v:
            raise UserError(f"HYPERS[{k!r}] is not a dict with a default", name, 'write {"default": 0.0, "scale": "linear"}')
        d, scale = v["default"], v.get("scale", "linear")
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d):
            raise UserError(f"HYPERS[{k!r}]'s default {d!r} is not a finite number", name, "give a number")
        if scale not in ("log", "linear"):
            raise UserError(f"HYPERS[{k!r}]'s scale {scale!r} is not 'log' or 'linear'", name, 'use "log" or "linear"')
        if scale == "log" and d <= 0:
            raise UserError(f"HYPERS[{k!r}] is on a log scale but its default is {d}", name, "give a positive default")
        out[k] = (float(d), scale)
    return out


def optimizer(mod, name: str) -> dict:
    o = getattr(mod, "OPTIMIZER", {})
    if not isinstance(o, dict):
        raise UserError(f"OPTIMIZER is a {type(o).__name__}, not a dict", name, 'write OPTIMIZER = {"optimizer": "adam", "lr": 0.01}')
    return dict(o)


def criterion(mod, name: str) -> str:
    """The module's CRITERION (default "converged")."""
    from .model import CRITERIA

    c = getattr(mod, "CRITERION", "converged")
    if c not in CRITERIA:
        raise UserError(f"CRITERION is {c!r}, not one of {', '.join(CRITERIA)}", name, 'write CRITERION = "bounded"')
    return c


def call(name: str, fn: str, f, *args):
    """``f(*args)``, any exception it raises as one error line naming the module."""
    try:
        return f(*args)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{fn}() raised {_said(e)}", name, FIX) from None


def data_of(mod, name: str, seed: int):
    """``data(seed)`` as a pytree of NumPy arrays (None without ``data``)."""
    import jax
    import numpy as np

    if getattr(mod, "data", None) is None:
        return None
    d = call(name, "data", mod.data, seed)
    try:
        return jax.tree_util.tree_map(lambda a: np.asarray(a), d)
    except Exception as e:
        raise UserError(f"data() returned something that is not a pytree of arrays ({_said(e)})", name,
                        "return NumPy arrays (in a dict or tuple)") from None


_CHECKED: dict = {}  # (module, seed, hp) -> the parameter groups: the explorer checks a view's model per request


def check(mod, name: str, seed: int, hp: dict) -> tuple:
    """Run the module once at hyperparameters ``hp`` (floats): data, init, loss
    and its gradient, in float64. Returns the parameter groups; any problem
    (an exception, a missing or non-dict result, a loss that is not a finite
    positive scalar, a gradient of the wrong shape or not finite) is one
    UserError naming the module, before anything trains. A check that passed
    is not run again (the module's source is in its name)."""
    key = (mod.__name__, name, seed, tuple(sorted(hp.items())))
    if key not in _CHECKED:
        _CHECKED[key] = _check(mod, name, seed, hp)
    return _CHECKED[key]


def _check(mod, name: str, seed: int, hp: dict) -> tuple:
    from .engine import config

    config.ensure()
    import jax
    import jax.numpy as jnp
    import numpy as np

    data = data_of(mod, name, seed)
    hpj = {k: jnp.asarray(v, jnp.float64) for k, v in hp.items()}
    params = call(name, "init", mod.init, seed, hpj)
    if not isinstance(params, dict) or not params or not all(isinstance(k, str) for k in params):
        raise UserError(f"init() returned {type(params).__name__}, not a non-empty dict of arrays", name,
                        'return {"w": array, ...} (the top-level keys are the parameter groups)')
    try:
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    except Exception as e:
        raise UserError(f"init() returned values that are not arrays ({_said(e)})", name, "return arrays of floats") from None
    loss = call(name, "loss", mod.loss, params, data, hpj)
    shape = np.shape(loss)
    if shape != ():
        raise UserError(f"loss() returned shape {shape}, not a scalar", name, "return one number, e.g. jnp.mean(...)")
    value = float(loss)
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"loss() at initialisation is {value!r}: every pixel's run would be NaN or unnormalisable", name,
                        "make the loss finite and positive at init (the measure divides by it)")
    g = call(name, "loss", jax.grad(lambda p: mod.loss(p, data, hpj)), params)
    same = jax.tree_util.tree_structure(g) == jax.tree_util.tree_structure(params) and all(
        np.shape(a) == np.shape(b) for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(params)))
    if not same:
        raise UserError("the gradient of loss() does not have the parameters' shapes", name, "return the loss of the params given")
    if not all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(g)):
        raise UserError("the gradient of loss() at initialisation is not finite", name, "check the loss for NaN-producing operations")
    return tuple(params)
