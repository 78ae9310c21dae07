"""What one pixel computes: the model description shared by every stage.

A :class:`Model` is a plain frozen record. It knows its derived sizes (number of
parameters, training points) but nothing of JAX, files or colours. What each
kind of model means (its fields, plane axes, cache key, arithmetics) is that
kind's spec, in :mod:`zoomreel.kinds` (which reads models; models know no specs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NONLINEARITIES = ("tanh", "relu", "identity")
PLANES = ("lr-lr", "init-lr")
# When a run counts as trainable (zoomreel.engine.measure): "converged", the
# paper's (the mean of the last values of L_t / L_0 below 1), or "bounded"
# (every L_t / L_0 finite and at most the cap), Liu et al.'s.
CRITERIA = ("converged", "bounded")

# Part of every frame's cache key: bump it whenever a change to the engine
# changes any pixel's bits on any device, so that cached frames are trained
# again (what each version changed is in git's history of this line).
ENGINE_VERSION = "3"
# The same, for one arithmetic alone: part of the key of its frames only
# (dd 2: products from exact slices, tanh from a table, constants kept
# opaque to the compiler; dd 3: the measure taken in double-double, not from
# float64-rounded losses; perturb 1: float64 differences from a fixed-point
# reference, the class decided on the reference's exact tail).
ARITHMETIC_VERSIONS = {"dd": "3", "perturb": "2"}

# The fields the paper's models never set: at these values they are left out
# of the cache key, so the paper's frames keep their keys.
EXTRA_DEFAULTS = {
    "optimizer": "gd", "widths": (), "init": "mean-field", "data": "gaussian", "loss": "mse",
    "residual": False, "hypers": (), "axes": (), "module": "", "module_hash": "", "data_hash": "",
    "criterion": "converged",
}


@dataclass(frozen=True)
class Model:
    kind: str = "network"  # a name registered in zoomreel.kinds: "network" | "mandelbrot" | "python"
    nonlinearity: str = "tanh"
    width: int = 16  # the first hidden layer's width (the paper's n, also the Gaussian data's input dimension)
    dataset: float | str = 1.0  # points per parameter (identity: per input dim), or "single"
    batch: int | str = "full"
    plane: str = "lr-lr"  # a shorthand ("lr-lr", "init-lr"), or "" when ``axes`` names the plane
    steps: int = 500
    seed: int = 0
    # Past the paper (see zoomreel.kinds.network and docs/format.md).
    optimizer: str = "gd"
    widths: tuple = ()  # every hidden layer's width when there is more than one
    init: str = "mean-field"
    data: str = "gaussian"  # "gaussian" | "digits" | an .npz path as written in the file
    loss: str = "mse"
    residual: bool = False
    hypers: tuple = ()  # ((name, value), ...) fixed hyperparameters from the file, sorted by name
    axes: tuple = ()  # ((x name, "log"|"linear"), (y name, scale)) unless ``plane`` is a shorthand
    module: str = ""  # the Python kind's module, as written in the file
    module_hash: str = ""  # sha256 of its source
    data_hash: str = ""  # sha256 of an .npz data file
    criterion: str = "converged"  # one of CRITERIA: when a network or python run counts as trainable
    # Carried with the model (to Ray workers too), never compared: their hashes stand for them.
    source: str = field(default="", compare=False, repr=False)
    data_bytes: bytes = field(default=b"", compare=False, repr=False)

    @property
    def hidden(self) -> tuple:
        """The hidden layers' widths."""
        return self.widths or (self.width,)

    @property
    def n_params(self) -> int:
        sizes = (self.width,) + self.hidden + (1,)
        return sum(a * b for a, b in zip(sizes, sizes[1:]))

    @property
    def n_points(self) -> int:
        if self.dataset == "single":
            return 1
        per = self.width if self.nonlinearity == "identity" else self.n_params
        return max(1, int(round(float(self.dataset) * per)))

    @property
    def minibatch(self) -> int | None:
        """Minibatch size, or None for full-batch gradient descent."""
        return None if self.batch == "full" else int(self.batch)

    def hyper(self, name: str, default=None):
        """A fixed hyperparameter's value from the file, else ``default``."""
        return dict(self.hypers).get(name, default)
