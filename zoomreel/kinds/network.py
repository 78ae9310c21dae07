"""The network kind: a fully connected network trained on a fixed data set.

The paper's network is its default: one hidden layer of ``width`` units,
mean-field initialisation and scaling, Gaussian data, mean squared error,
plain gradient descent with one learning rate per layer, in the lr-lr or
init-lr plane. Those models (:meth:`Network.native`) train on the engine's
hand-written step (XLA, the fused GPU kernel, double-double); every other
network trains on the generic step (``jax.grad`` of the loss below, then an
optimizer's update: :mod:`zoomreel.engine.generic`, the loss in
:mod:`zoomreel.engine.netproblem`).

The forward pass, for hidden widths n_1..n_L, inputs X (points, d) and
parameter groups "0".."L" (W_0: d x n_1, W_l: n_l x n_{l+1}, W_L: n_L x outputs):

- mean-field (the paper's): W ~ N(0, 1); z_1 = X W_0 / sqrt(d);
  h = phi(z) with phi(z) = tanh(sqrt(2) z) | sqrt(2) relu(z) | z;
  z_{l+1} = h_l W_l / sqrt(n_l); out = h_L W_L / n_L.
- he: W ~ N(0, 2 / fan_in); xavier: W ~ N(0, 2 / (fan_in + fan_out)); both
  without the mean-field factors, with phi = tanh | relu | identity.
- residual: h_{l+1} = h_l + phi(z_{l+1}) between hidden layers of equal width.
- init.scale multiplies every initial weight; init.offset is added to every
  input-layer weight (the paper's init-lr plane).
- loss: mse, the mean over points of the sum over outputs of (out - y)^2
  (class labels as one-hot targets); cross-entropy, the mean softmax cross
  entropy (class labels only).

``criterion`` says when a run counts as trainable: "converged" (the paper's)
or "bounded" (:mod:`zoomreel.engine.measure`); only the generic step honours
"bounded", so such a model is never native.
"""

from __future__ import annotations

import difflib
from decimal import Decimal
from pathlib import Path

from .. import data as datasets
from .. import optimizers
from ..errors import shown
from . import Axis, Hyper, KindSpec, check_axes, flat, plane_of, read_hypers, read_plane, split_plane

INITS = ("mean-field", "he", "xavier")
LOSSES = ("mse", "cross-entropy")
DATA = ("gaussian", "digits")  # or a path ending in .npz
LAYERS_MAX = 8

SHORTHANDS = {
    "lr-lr": (("lr.0", "log"), ("lr.1", "log")),
    "init-lr": (("init.offset", "log"), ("lr", "log")),
}
LABELS = {"lr.0": "input-layer lr", "lr.1": "output-layer lr", "init.offset": "init offset", "lr": "lr"}
BASE_KEYS = {"nonlinearity", "width", "widths", "dataset", "batch", "plane", "steps", "seed", "optimizer", "init",
             "data", "loss", "residual", "criterion"}


class Network(KindSpec):
    name = "network"

    # -- the file

    def hypers(self, optimizer: str, layers: int) -> dict:
        """Every hyperparameter a network with ``layers`` hidden layers trained by ``optimizer`` has."""
        out = {k: Hyper(v, _scale(k)) for k, v in optimizers.hyper_defaults(optimizer).items()}
        out.update({f"lr.{g}": Hyper(None, "log") for g in range(layers + 1)})
        out["init.offset"] = Hyper(0.0, "log")  # log: the paper's init-lr plane
        out["init.scale"] = Hyper(1.0, "linear")
        return out

    def parse(self, r, m, plane, base):
        from ..model import CRITERIA, NONLINEARITIES, PLANES, Model

        opt = r.choice(m.get("optimizer", "gd"), "model.optimizer", optimizers.names())
        if "width" in m and "widths" in m:
            r.fail("model.width", "both width and widths", "keep widths = [...] (width = n is widths = [n])")
        if "widths" in m:
            ws = m["widths"]
            if not isinstance(ws, list) or not 1 <= len(ws) <= LAYERS_MAX:
                r.fail("model.widths", f"expected a list of 1 to {LAYERS_MAX} layer widths, got {shown(ws)}", "write widths = [32, 32]")
            ws = tuple(r.ranged(w, "model.width", integer=True, where="model.widths") for w in ws)
        else:
            ws = (r.ranged(m.get("width", 16), "model.width", integer=True),)
        hypers = self.hypers(opt, len(ws))
        allowed = BASE_KEYS | set(hypers)
        for k in flat(m):
            if k == "kind" or k in allowed:
                continue
            owners = [o for o in optimizers.names() if k in optimizers.OPTIMIZERS[o].hypers]
            if owners:
                r.fail(f"model.{k}", f"'{k}' is not a hyperparameter of optimizer '{opt}'",
                       f'set optimizer = "{owners[0]}" or remove {k}')
            near = difflib.get_close_matches(k, sorted(allowed), n=1)
            r.fail(f"model.{k}", f"unknown key '{k}'", f"did you mean '{near[0]}'?" if near else
                   f"allowed keys: {', '.join(sorted(allowed))}")
        nl = r.choice(m.get("nonlinearity", "tanh"), "model.nonlinearity", NONLINEARITIES)
        init = r.choice(m.get("init", "mean-field"), "model.init", INITS)
        criterion = r.choice(m.get("criterion", "converged"), "model.criterion", CRITERIA)
        loss = r.choice(m.get("loss", "mse"), "model.loss", LOSSES)
        data, data_bytes, data_hash = self._data(r, m.get("data", "gaussian"), base)
        if data != "gaussian":
            for k in ("dataset", "batch"):
                if k in m:
                    r.fail(f"model.{k}", f"{k} applies to data = \"gaussian\" only", f"remove {k}")
        classes = 10 if data == "digits" else datasets.read_npz(data_bytes, "")[2] if data_bytes else 0
        if loss == "cross-entropy" and classes < 2:
            r.fail("model.loss", "cross-entropy needs class labels (at least two classes)",
                   'use data = "digits", an .npz file with integer labels y, or loss = "mse"')
        residual = m.get("residual", False)
        if not isinstance(residual, bool):
            r.fail("model.residual", f"expected true or false, got {shown(residual)}", "write residual = true")
        if residual and (len(ws) < 2 or len(set(ws)) != 1):
            r.fail("model.residual", f"residual connections need at least two hidden layers of one width, got {list(ws)}",
                   "use widths = [32, 32] (or residual = false)")
        ds = m.get("dataset", Decimal("1.0"))
        if isinstance(ds, str):
            if ds != "single":
                r.fail("model.dataset", f"unknown value {ds!r}", "use a positive number or \"single\"")
        else:
            ds = float(r.ranged(ds, "model.dataset"))
        batch = m.get("batch", "full")
        if isinstance(batch, str):
            if batch != "full":
                r.fail("model.batch", f"unknown value {batch!r}", 'use "full" or a minibatch size such as 16')
        else:
            batch = r.ranged(batch, "model.batch", integer=True)
        shorthand, plane = split_plane(r, m, plane)
        if shorthand is not None:
            shorthand = r.choice(shorthand, "model.plane", PLANES)
        axes = read_plane(r, plane, hypers, shorthand, SHORTHANDS)
        fixed = read_hypers(r, m, hypers)
        check_axes(r, axes, fixed)
        named = next((k for k, v in SHORTHANDS.items() if v == axes), "")
        return Model(
            kind="network", nonlinearity=nl, width=ws[0], widths=ws if len(ws) > 1 else (), dataset=ds, batch=batch,
            plane=named, axes=() if named else axes, optimizer=opt, init=init, data=data, loss=loss, residual=residual,
            hypers=fixed, data_hash=data_hash, data_bytes=data_bytes, criterion=criterion,
            steps=r.ranged(m.get("steps", 500), "model.steps", integer=True),
            seed=r.ranged(m.get("seed", 0), "model.seed", integer=True),
        )

    def _data(self, r, v, base: Path | None):
        """(data as written, the .npz file's bytes, their hash)."""
        if not isinstance(v, str) or (v not in DATA and not v.endswith(".npz")):
            near = difflib.get_close_matches(str(v), DATA, n=1)
            r.fail("model.data", f"unknown value {shown(v)}", f"did you mean '{near[0]}'?" if near else
                   'use "gaussian", "digits" or the path of an .npz file with arrays X and y')
        if v == "digits":
            datasets.digits()  # scikit-learn is there (or one error line)
        if v in DATA:
            return v, b"", ""
        from . import read_beside

        blob = read_beside(r, v, base, "model.data", "data file")
        datasets.read_npz(blob, f"{r.name}:model.data ({v})")
        return v, blob, datasets.digest(blob)

    def axes(self, model):
        (x, xs), (y, ys) = model.axes or SHORTHANDS[model.plane]
        return tuple(Axis(n, s == "log", LABELS.get(n, n)) for n, s in ((x, xs), (y, ys)))

    def native(self, model) -> bool:
        return (model.optimizer == "gd" and not model.widths and model.init == "mean-field" and model.data == "gaussian"
                and model.loss == "mse" and not model.residual and not model.hypers and not model.axes
                and model.plane in SHORTHANDS and model.criterion == "converged")

    def arithmetics(self, model):
        return None if self.native(model) else ("float32", "float64")

    def table(self, model):
        out = {"kind": "network", "nonlinearity": model.nonlinearity}
        if model.widths:
            out["widths"] = list(model.widths)
        else:
            out["width"] = model.width
        if model.data == "gaussian":
            out.update(dataset=model.dataset, batch=model.batch)
        out.update(plane_of(model))
        out.update(steps=model.steps, seed=model.seed)
        for k in ("optimizer", "init", "data", "loss", "residual", "criterion"):
            if getattr(model, k) != Network._DEFAULTS[k]:
                out[k] = getattr(model, k)
        out.update(dict(model.hypers))
        return out

    _DEFAULTS = {"optimizer": "gd", "init": "mean-field", "data": "gaussian", "loss": "mse", "residual": False,
                 "criterion": "converged"}


def _scale(name: str) -> str:
    from . import default_scale

    return default_scale(name)


SPEC = Network()
