"""What one pixel computes: the model description shared by every stage.

A :class:`Model` is a plain frozen record. It knows its derived sizes (number of
parameters, training points) but nothing of JAX, files or colours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

NONLINEARITIES = ("tanh", "relu", "identity")
PLANES = ("lr-lr", "init-lr")
KINDS = ("network", "mandelbrot")

# Part of every frame's cache key: bump it whenever a change to the engine
# changes any pixel's bits on any device, so that cached frames are trained
# again (what each version changed is in git's history of this line).
ENGINE_VERSION = "3"
# The same, for one arithmetic alone: part of the key of its frames only
# (dd 2: products from exact slices, tanh from a table, constants kept
# opaque to the compiler; dd 3: the measure taken in double-double, not from
# float64-rounded losses).
ARITHMETIC_VERSIONS = {"dd": "3"}


@dataclass(frozen=True)
class Model:
    kind: str = "network"  # "network" | "mandelbrot"
    nonlinearity: str = "tanh"
    width: int = 16
    dataset: float | str = 1.0  # points per parameter (identity: per input dim), or "single"
    batch: int | str = "full"
    plane: str = "lr-lr"
    steps: int = 500
    seed: int = 0

    @property
    def n_params(self) -> int:
        return self.width * self.width + self.width

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

    @property
    def log_axes(self) -> bool:
        """True when plane coordinates are log10 of the trained hyperparameters."""
        return self.kind == "network"

    def key_fields(self) -> dict:
        """Everything about the model that changes pixels (for cache keys)."""
        d = asdict(self)
        if self.kind == "mandelbrot":
            # Only the iteration limit matters for the Mandelbrot set.
            return {"kind": "mandelbrot", "steps": self.steps}
        if d["dataset"] != "single":
            d["dataset"] = float(d["dataset"])
        return d
