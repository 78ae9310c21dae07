"""What a pixel trains: one spec per model kind, registered in one place.

A :class:`KindSpec` owns everything about one kind that the stages around
the engine need: its ``[model]`` keys and their validation, its plane axes
(names, log or linear, the overlay's labels), its cache-key fields, its chunk
hint and the arithmetics it can be trained in. A new kind is one new file in
this package and one line in :data:`_KINDS` below.

Nothing here imports JAX: the scene, the cache and the overlay read specs.
(What a kind trains on a device is its formulation, :mod:`zoomreel.engine`.)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

SCALES = ("log", "linear")
LOG_PREFIXES = ("lr", "eps", "clip", "weight_decay")


@dataclass(frozen=True)
class Axis:
    name: str  # the hyperparameter ("lr.0", "beta1", "re", ...)
    log: bool  # True: the plane coordinate is log10 of the value
    label: str  # how the overlay names it


def default_scale(name: str) -> str:
    """An axis's scale when the file names none: log for learning rates,
    eps, clip and weight decay, linear for everything else."""
    head = name.split(".", 1)[0]
    return "log" if head in LOG_PREFIXES else "linear"


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter a run has: its default (None: it must be given or be
    an axis) and its default axis scale."""

    default: float | None
    scale: str
    label: str = ""


class KindSpec:
    """One kind of model. Subclasses fill in :meth:`parse` and what they differ in."""

    name = ""
    keys: frozenset = frozenset()  # the [model] keys it takes (besides "kind")

    def parse(self, r, m: dict, plane: dict | None, base: Path | None):
        """The :class:`~zoomreel.model.Model` a ``[model]`` table ``m`` (and
        the ``[plane]`` table, None when absent) describes. ``r``: the scene's
        reader (its ``fail`` raises the one-line error); ``base``: the folder
        files named in the table are read from (None: read none)."""
        raise TypeError(f"{type(self).__name__} has no parser")

    def check(self, model, center, where: str) -> None:
        """Refuse, before anything trains, a model that cannot train (the
        Python kind runs its module here once). ``center``: the first
        keyframe's centre; ``where``: names the file in errors."""

    def axes(self, model) -> tuple[Axis, Axis]:
        raise TypeError(f"{type(self).__name__} has no axes")

    def key_fields(self, model) -> dict:
        """Everything about ``model`` that changes pixels."""
        from dataclasses import asdict

        from ..model import EXTRA_DEFAULTS

        d = asdict(model)
        d.pop("source"), d.pop("data_bytes")
        for k, v in EXTRA_DEFAULTS.items():
            if d[k] == v:
                d.pop(k)
        if d.get("data_hash"):  # a data file: its bytes matter, not where it was
            d["data"] = "npz"
        if d["dataset"] != "single":
            d["dataset"] = float(d["dataset"])
        return d

    def native(self, model) -> bool:
        """True when the hand-written formulations train ``model`` (they
        ignore every field but the paper's)."""
        return True

    def arithmetics(self, model) -> tuple[str, ...] | None:
        """The arithmetics ``model`` can be trained in (None: every one)."""
        return None

    def chunk(self, model, dtype: str, platform: str) -> int | None:
        """Pixels per jitted call, when this kind wants other than the default."""
        return None

    def table(self, model) -> dict:
        """The ``[model]`` keys that reproduce ``model`` (the explorer's keyframe writer)."""
        raise TypeError(f"{type(self).__name__} has no table")



def plane_of(model) -> dict:
    """``{"plane": ...}``: the [model] table's plane key that reproduces
    ``model``'s axes (a shorthand, or the [plane] table's keys as a table), or nothing."""
    if model.plane:
        return {"plane": model.plane}
    if not model.axes:
        return {}
    (x, xs), (y, ys) = model.axes
    return {"plane": {"x": x, "y": y, "x_scale": xs, "y_scale": ys}}


def split_plane(r, m: dict, plane: dict | None):
    """(the ``plane`` shorthand or None, the plane table or None): ``plane``
    in [model] is a shorthand string, or the [plane] table's keys as a table."""
    v = m.get("plane")
    if isinstance(v, dict):
        if plane is not None:
            r.fail("model.plane", "both a plane table in [model] and a [plane] table", "keep the [plane] table")
        return None, v
    return v, plane


def read_plane(r, plane: dict | None, hypers: dict, shorthand: str | None, shorthands: dict):
    """The plane's two axes ((name, scale), (name, scale)) from the ``[plane]``
    table (or the ``plane`` shorthand), checked against the run's ``hypers``
    (name -> :class:`Hyper`)."""
    if plane is None:
        return shorthands[shorthand or "lr-lr"]
    r.keys(plane, {"x", "y", "x_scale", "y_scale"}, "plane.")
    if shorthand is not None:
        r.fail("model.plane", "both plane = ... and a [plane] table", "keep one of them")
    out = []
    for ax in ("x", "y"):
        name = plane.get(ax)
        if name is None:
            r.fail(f"plane.{ax}", f"the plane has no {ax} axis", f'add {ax} = "lr" (any hyperparameter of the run)')
        if not isinstance(name, str) or name not in hypers:
            near = difflib.get_close_matches(str(name), sorted(hypers), n=1)
            hint = f"did you mean '{near[0]}'?" if near else "use one of " + ", ".join(sorted(hypers))
            r.fail(f"plane.{ax}", f"the run has no hyperparameter {name!r}", hint)
        scale = r.choice(plane.get(f"{ax}_scale", hypers[name].scale), f"plane.{ax}_scale", SCALES)
        out.append((name, scale))
    if out[0][0] == out[1][0]:
        r.fail("plane.y", f"both axes are {out[0][0]!r}", "give the y axis another hyperparameter")
    return tuple(out)


def read_hypers(r, m: dict, hypers: dict) -> tuple:
    """The fixed hyperparameter values the ``[model]`` table gives (any key
    naming one of ``hypers``; a dotted key such as ``lr.0`` may be written
    as TOML's nested table or quoted), as sorted (name, float) pairs."""
    out = {}
    for k, v in flat(m).items():
        if k not in hypers:
            continue
        d = r.number(v, f"model.{k}")
        f = float(d)
        if default_scale(k) == "log" and f <= 0:  # a rate, eps, clip or decay
            r.fail(f"model.{k}", f"{k} must be positive, got {d}", "use a value greater than 0")
        out[k] = f
    return tuple(sorted(out.items()))


def flat(m: dict, prefix: str = "") -> dict:
    """A table with nested tables as dotted keys (``lr = {0 = 1}`` -> ``lr.0``)."""
    out = {}
    for k, v in m.items():
        if isinstance(v, dict) and not (prefix == "" and k == "plane"):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_axes(r, axes, fixed: tuple) -> None:
    """A hyperparameter that is an axis has no fixed value too."""
    given = dict(fixed)
    for (name, _), ax in zip(axes, ("x", "y")):
        if name in given:
            r.fail(f"model.{name}", f"{name} is the plane's {ax} axis and also given a value", f"remove {name} from [model]")


def axis_value(coord: Decimal, log: bool) -> float:
    """A plane coordinate's hyperparameter as a float (10**coord on log axes)."""
    from decimal import localcontext

    with localcontext(prec=60):
        return float(Decimal(10) ** coord if log else coord)


# Files a keyframe file names (an .npz data set, a Python module), as read
# when a file was loaded from disk: (file name as written) -> bytes. A table
# validated without a folder (a request to the explorer, say) may name only
# these, never a path of its own: the explorer reads and runs only what the
# file it was started with names.
_READ: dict[str, bytes] = {}


def read_beside(r, name: str, base: Path | None, where: str, what: str) -> bytes:
    """The bytes of file ``name``, relative to ``base`` (the keyframe file's
    folder); with ``base`` None, only a file read so before."""
    if base is None:
        if name not in _READ:
            r.fail(where, f"the {what} {name!r} was not loaded with the keyframe file",
                   "name it in the keyframe file zoomreel was started with")
        return _READ[name]
    p = base / name
    try:
        blob = p.read_bytes()
    except FileNotFoundError:
        r.fail(where, f"{what} not found: {p}", "give its path relative to the keyframe file")
    except OSError as e:
        r.fail(where, f"cannot read the {what} {p}: {e.strerror or e}", "check the file")
    _READ[name] = blob
    return blob


from . import mandelbrot, network, python  # noqa: E402  (each defines its spec)

_KINDS = {
    "network": network.SPEC,
    "mandelbrot": mandelbrot.SPEC,
    "python": python.SPEC,
}
KINDS = tuple(_KINDS)


def spec(kind: str) -> KindSpec:
    return _KINDS[kind]


def axes(model) -> tuple[Axis, Axis]:
    """The plane's two axes (x, y)."""
    return spec(model.kind).axes(model)


def axis_logs(model) -> tuple[bool, bool]:
    """Per axis: True when its coordinate is log10 of the hyperparameter."""
    return tuple(a.log for a in axes(model))


def key_fields(model) -> dict:
    """Everything about ``model`` that changes pixels (for cache keys)."""
    return spec(model.kind).key_fields(model)


def describe(model) -> str:
    """A model in a few words, for messages."""
    if model.kind == "python":
        return f"module {model.module}, optimizer {model.optimizer}"
    if model.kind == "network" and not spec("network").native(model):
        return f"a network trained by {model.optimizer}, past the paper's"
    return f"{model.kind}, optimizer {model.optimizer}"
