"""The Python kind: a user's module (plain JAX) says what a pixel trains.

``module = "file.py"`` names it, relative to the keyframe file. Reading the
file runs the module (:mod:`zoomreel.pymodule`): the keyframe file is a
program. Its hyperparameters are the module's HYPERS and the optimizer's
(lr, lr.<group> per top-level parameter group, clip, weight_decay and the
optimizer's own); OPTIMIZER gives defaults that the [model] keys override,
and CRITERION the trainability criterion's ("converged" or "bounded"), which
``criterion`` in [model] overrides.
"""

from __future__ import annotations

import difflib
import functools
from decimal import Decimal

from .. import optimizers, pymodule
from ..errors import UserError, shown
from . import (Axis, Hyper, KindSpec, axis_value, check_axes, default_scale, flat, plane_of, read_beside, read_hypers,
               read_plane, split_plane)

BASE_KEYS = {"module", "steps", "seed", "optimizer", "plane", "criterion"}


class Python(KindSpec):
    name = "python"

    def parse(self, r, m, plane, base):
        from ..model import CRITERIA, Model

        name = m.get("module")
        if not isinstance(name, str) or not name.endswith(".py"):
            r.fail("model.module", f"expected the path of a .py file, got {shown(name)}", 'write module = "my_model.py" (relative to this file)')
        source = read_beside(r, name, base, "model.module", "module")
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError:
            r.fail("model.module", f"the module {name} is not UTF-8 text", "save it as UTF-8")
        mod = pymodule.load(text, name)
        own = pymodule.hypers(mod, name)
        defaults = pymodule.optimizer(mod, name)
        opt = r.choice(m.get("optimizer", defaults.get("optimizer", "gd")), "model.optimizer", optimizers.names())
        seed = r.ranged(m.get("seed", 0), "model.seed", integer=True)
        criterion = r.choice(m.get("criterion", pymodule.criterion(mod, name)), "model.criterion", CRITERIA)
        probe = {**{k: v for k, v in optimizers.hyper_defaults(opt).items() if v is not None}, **{k: d for k, (d, _) in own.items()}}
        groups = pymodule.check(mod, name, seed, probe)
        hypers = _hypers(opt, own, groups)
        for k in own:
            if k in optimizers.hyper_defaults(opt) or k.startswith("lr."):
                raise UserError(f"HYPERS names {k!r}, an optimizer's hyperparameter", name, "give it another name")
        for k, v in defaults.items():
            if k != "optimizer" and k not in hypers:
                raise UserError(f"OPTIMIZER names {k!r}, not a hyperparameter of optimizer '{opt}'", name,
                                f"use {', '.join(sorted(h for h in hypers if h not in own))}")
        allowed = BASE_KEYS | set(hypers)
        for k in flat(m):
            if k != "kind" and k not in allowed:
                near = difflib.get_close_matches(k, sorted(allowed), n=1)
                r.fail(f"model.{k}", f"unknown key '{k}'", f"did you mean '{near[0]}'?" if near else
                       f"allowed keys: {', '.join(sorted(allowed))}")
        shorthand, plane = split_plane(r, m, plane)
        if shorthand is not None:
            r.fail("model.plane", f"a python model has no plane {shorthand!r}", "name its axes in a [plane] table")
        if plane is None:
            r.fail("plane", "a python model has no default plane", 'add [plane] with x = "lr" and y = one of its hyperparameters')
        axes = read_plane(r, plane, hypers, None, {})
        module_fixed = {k: _decimal(v, name, k) for k, v in defaults.items() if k != "optimizer"}
        fixed = dict(read_hypers(r, {**{k: v for k, v in module_fixed.items() if k not in dict(axes)}, **m}, hypers))
        check_axes(r, axes, tuple(fixed.items()))
        return Model(kind="python", module=name, module_hash=pymodule.digest(text), source=text, optimizer=opt,
                     hypers=tuple(sorted(fixed.items())), axes=axes, plane="", width=0, dataset=0.0,
                     steps=r.ranged(m.get("steps", 500), "model.steps", integer=True), seed=seed,
                     criterion=criterion)

    def check(self, model, center, where):
        """The module once more, at the first keyframe's centre (the plane's values there)."""
        hp = dict(self.values(model))
        for (n, _), ax, c in zip(model.axes, self.axes(model), center):
            hp[n] = axis_value(c, ax.log)
        pymodule.check(self.module(model), model.module, model.seed, hp)

    def module(self, model):
        return pymodule.load(model.source, model.module)

    def values(self, model) -> dict:
        """Every hyperparameter's fixed value (defaults, then the file's); None: unset."""
        h = self.hypers_of(model)
        out = {k: v.default for k, v in h.items() if v.default is not None}
        out.update(dict(model.hypers))
        return out

    @functools.lru_cache(maxsize=16)
    def hypers_of(self, model) -> dict:
        mod = self.module(model)
        own = pymodule.hypers(mod, model.module)
        probe = {**{k: v for k, v in optimizers.hyper_defaults(model.optimizer).items() if v is not None},
                 **{k: d for k, (d, _) in own.items()}}
        return _hypers(model.optimizer, own, pymodule.check(mod, model.module, model.seed, probe))

    def axes(self, model):
        return tuple(Axis(n, s == "log", n) for n, s in model.axes)

    def native(self, model):
        return False

    def arithmetics(self, model):
        return ("float32", "float64")

    def key_fields(self, model):
        out = {"kind": "python", "module_hash": model.module_hash, "optimizer": model.optimizer,
               "hypers": [list(h) for h in model.hypers], "axes": [list(a) for a in model.axes],
               "steps": model.steps, "seed": model.seed}
        if model.criterion != "converged":
            out["criterion"] = model.criterion
        return out

    def table(self, model):
        return {"kind": "python", "module": model.module, "optimizer": model.optimizer, "steps": model.steps,
                "seed": model.seed, "criterion": model.criterion, **dict(model.hypers), **plane_of(model)}


def _decimal(v, name: str, key: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise UserError(f"OPTIMIZER[{key!r}] is {v!r}, not a number", name, "give a number")
    return Decimal(repr(v))


def _hypers(opt: str, own: dict, groups) -> dict:
    out = {k: Hyper(v, default_scale(k)) for k, v in optimizers.hyper_defaults(opt).items()}
    out.update({f"lr.{g}": Hyper(None, "log") for g in groups})
    out.update({k: Hyper(d, s) for k, (d, s) in own.items()})
    return out


SPEC = Python()
