"""The work layer: units of work trained through the cache, by an executor.

Every front end trains this way (``render``, ``frame``, ``info``'s counts,
``dimension``, ``locate``, ``table1``, the explorer): a list of units (a
video's frames, a pyramid's tiles, views named by themselves) is looked up in
the cache; what is missing becomes :class:`~zoomreel.training.Job` s run by an
:class:`~zoomreel.executor.Executor` (this process by default, or Ray); each
result is written to the cache here, by this one process.

- :class:`Units` (:class:`FrameUnits`, :class:`TileUnits`, :class:`ViewUnits`)
  name the views and their cache keys;
- :func:`train_missing` trains what the cache lacks and says where each unit is;
- :meth:`Units.fetch` reads one unit (once), training it again if its record
  was damaged since;
- :func:`train_view` is one view through all of it: the one-view API.

Results are small records: :class:`Cached` (what the cache knows of a unit),
:class:`Stored` (a unit's array and record), :class:`ViewResult`.
``cancel`` (:mod:`zoomreel.cancel`) reaches every stage: between units, the
precision probe, the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import color, interrupt, path, preflight, pyramid
from .cache import Cache, decision_key, frame_key
from .cancel import Cancel, stop_if
from .executor import Executor, LocalExecutor
from .model import Model
from .precision import Decision
from .training import Job, Trained, kernel_fields
from .view import View


class Reporter:
    """Progress hooks a front end implements to show the work; all optional.

    ``frame_done`` is called once per unit (frame, tile or view) as it is
    found in the cache (``reused``) or trained."""

    def start(self, total: int, cached: int) -> None: ...
    def pixel_steps(self, n: int) -> None: ...
    def frame_done(self, k, reused: bool, warning: str | None, dtype: str | None = None) -> None: ...
    def encoding(self, total: int) -> None: ...
    def encoded(self, k: int) -> None: ...


class Cached(NamedTuple):
    """What the cache knows of a unit, every record verified (nothing trained)."""

    decision: Decision | None
    key: str | None  # the unit's frame key, known once its dtype is
    record: dict | None  # the unit's record, when render would reuse it


@dataclass(frozen=True)
class Stored:
    """A unit's array and its record, as the cache holds them."""

    raw: np.ndarray  # (H, W) float64, row 0 = lowest y
    record: dict
    trained: bool  # True when trained by this call (missing or damaged), False when read


class Units:
    """Views to train under names (frame indices, tiles, views), with their cache keys.

    Subclasses say what a name's view is, what identifies its pixels
    (``fields``) and what its cached record adds (``extra``).
    """

    noun = "frames"

    def __init__(self, model: Model, cache: Cache, precision: str, where: str, kernel: str = "xla",
                 kernel_tag: str = ""):
        self.model, self.cache, self.precision, self.where = model, cache, precision, where
        self.kernel, self.kernel_tag = kernel, kernel_tag
        self.keys: dict = {}  # id -> frame key, as train_missing found or wrote it (no record read twice)

    def view(self, id) -> View:
        raise TypeError(f"{type(self).__name__} has no views")

    def fields(self, id) -> dict:
        return self.view(id).key_fields()

    def extra(self, id) -> dict:
        return {}

    def shape(self, id) -> tuple[int, int]:
        W, H = self.view(id).size
        return H, W

    def decision_key(self, id) -> str:
        return decision_key(self.model, self.fields(id), self.precision, self.kernel_tag)

    def key(self, id, dtype: str) -> str:
        return frame_key(self.model, self.fields(id), dtype, self.kernel_tag)

    def decision(self, id) -> Decision | None:
        d = self.cache.get_decision(self.decision_key(id))
        return None if d is None else Decision.from_json(d)

    def lookup(self, id) -> Cached:
        """What the cache holds for ``id``, fully verified (the array's CRC too)."""
        decision = self.decision(id)
        if decision is None:
            return Cached(None, None, None)
        key = self.key(id, decision.dtype)
        return Cached(decision, key, self.cache.meta(key, self.shape(id)) if self.cache.has_frame(key) else None)

    def read(self, id, key: str | None = None) -> Stored | None:
        """The cached array and record of ``id`` (its frame ``key``, if known), or None."""
        key = key or self.keys.get(id)
        if key is None:
            decision = self.decision(id)
            if decision is None:
                return None
            key = self.key(id, decision.dtype)
        got = self.cache.get_frame(key, self.shape(id))
        return None if got is None else Stored(got[0], got[1], False)

    def fetch(self, id, key: str | None = None, executor: Executor | None = None, cancel: Cancel = None) -> Stored:
        """``id`` from the cache, or trained again (and stored) when it
        vanished or was damaged since it was trained."""
        got = self.read(id, key)
        if got is not None:
            return got
        self.cache.require_writable()
        res = next(iter((executor or LocalExecutor()).run([self.job(id)], None, cancel)))
        return Stored(res.raw, self.store(res), True)

    def job(self, id, decision: Decision | None = None) -> Job:
        """``id`` as a job; a precision ``decision`` made before (cached) rides along (no probe)."""
        return Job(id, self.model, self.view(id), self.precision, self.where, decision, self.kernel)

    def store(self, res: Trained) -> dict:
        """Write a trained result (and its decision, if new); returns its record."""
        id = res.job.id
        if res.decided:
            self.cache.put_decision(self.decision_key(id), res.decision.to_json())
        meta = {
            **self.extra(id),
            "view": res.job.view.key_fields(),
            "dtype": res.decision.dtype,
            "resolved": res.decision.resolved,
            "decision": res.decision.to_json(),
            "seconds": res.seconds,
            "pixel_steps": res.job.pixel_steps,
            "summary": color.summary(res.raw),
        }
        self.cache.put_frame(self.key(id, res.decision.dtype), res.raw, meta)
        return meta


class FrameUnits(Units):
    """A plan's frames, each trained at its own pixel centres."""

    def __init__(self, plan, cache: Cache | None = None):
        super().__init__(plan.scene.model, cache or plan.cache, plan.precision, plan.scene.keyframes_where,
                         plan.kernel, plan.kernel_tag)
        self.plan = plan

    def view(self, k):
        return self.plan.view(k)

    def extra(self, k):
        return {"time": str(path.frame_time(k, self.plan.fps))}


class TileUnits(Units):
    """Tiles of a model's zoom pyramid."""

    noun = "tiles"

    @classmethod
    def of_plan(cls, plan, cache: Cache | None = None) -> "TileUnits":
        return cls(plan.scene.model, cache or plan.pyramid_cache, plan.precision, plan.scene.keyframes_where,
                   plan.kernel, plan.kernel_tag)

    def view(self, t: pyramid.Tile):
        return t.view()

    def fields(self, t: pyramid.Tile):
        return t.key_fields()

    def shape(self, t):
        return pyramid.TILE, pyramid.TILE

    def extra(self, t):
        return {"time": "", "tile": [t.level, t.i, t.j]}


class ViewUnits(Units):
    """Views named by themselves (the explorer's, locate's): a view's id is the view."""

    def view(self, v: View) -> View:
        return v

    def extra(self, v):
        return {"time": ""}


@dataclass(frozen=True)
class Trainings:
    """What :func:`train_missing` did: each unit's frame key, and what it trained."""

    keys: dict  # id -> frame key (every unit is in the cache under it now)
    trained: dict  # id -> the record written, for the units trained by this call

    @property
    def reused(self) -> int:
        return len(self.keys) - len(self.trained)


def train_missing(units: Units, ids: list, force: bool = False, rep: Reporter | None = None,
                  executor: Executor | None = None, cancel: Cancel = None) -> Trainings:
    """Train, as jobs run by ``executor`` (default: this process), every unit
    of ``ids`` the cache lacks (``force``: every one), writing each result to
    the cache here. ``rep`` hears ``start`` (how many units, how many
    cached), then each unit done. A unit counts as cached when its decision and frame are
    on disk: its array is read (and verified) only when it is used
    (:meth:`Units.fetch`), so a render reads each record once."""
    rep = rep or Reporter()
    executor = executor or LocalExecutor()
    keys: dict = {}
    cached, todo = [], []
    for id in ids:
        stop_if(cancel)
        decision = None if force else units.decision(id)
        key = None if decision is None else units.key(id, decision.dtype)
        if key is not None and units.cache.has_frame(key):
            keys[id] = units.keys[id] = key
            cached.append((id, decision.dtype))
        else:
            todo.append((id, decision))
    rep.start(len(ids), len(cached))
    for id, dtype in cached:
        rep.frame_done(id, True, None, dtype)
    trained: dict = {}
    if todo:
        units.cache.require_writable()
    jobs = (units.job(id, decision) for id, decision in todo)
    for res in executor.run(jobs, rep.pixel_steps, cancel):
        id = res.job.id
        trained[id] = units.store(res)
        interrupt.signal_point(f"unit {len(trained)}")
        keys[id] = units.keys[id] = units.key(id, res.decision.dtype)
        rep.frame_done(id, False, res.decision.warning, res.decision.dtype)
    return Trainings(keys, trained)


class TileReader:
    """Tiles from the cache for composing, each read once while its level is in use.

    A tile that vanished or was damaged since it was trained is trained again."""

    def __init__(self, units: TileUnits, executor: Executor | None = None, cancel: Cancel = None):
        self.units, self.executor, self.cancel = units, executor, cancel
        self.tiles: dict[pyramid.Tile, np.ndarray] = {}
        self.retrained = 0

    def keep(self, levels: set[int]) -> None:
        """Forget the tiles of every other level."""
        self.tiles = {t: a for t, a in self.tiles.items() if t.level in levels}

    def __call__(self, t: pyramid.Tile) -> np.ndarray:
        if t not in self.tiles:
            got = self.units.fetch(t, None, self.executor, self.cancel)
            self.retrained += got.trained
            self.tiles[t] = got.raw
        return self.tiles[t]

    def blocks(self, fp: pyramid.FramePlan, keep: set[int] = frozenset()) -> dict[int, np.ndarray]:
        """The lattice blocks frame plan ``fp`` composes from, by level; tiles
        of levels outside ``fp``'s and ``keep`` are forgotten."""
        parts = [fp.fine] + ([fp.coarse] if fp.coarse is not None and fp.blend > 0 else [])
        self.keep({p.level for p in parts} | set(keep))
        from . import compose

        return {p.level: compose.mosaic(p, self) for p in parts}


class TileTraining(NamedTuple):
    units: TileUnits  # to read the tiles
    trained: int  # how many were trained


def train_tiles(plan, ks: list[int] | None, force: bool = False, rep: Reporter | None = None,
                executor: Executor | None = None, cancel: Cancel = None) -> TileTraining:
    """Every tile frames ``ks`` (default: all) of ``plan`` (:class:`zoomreel.plan.Plan`)
    read, trained unless cached; the units read them (:class:`TileReader`)."""
    units = TileUnits.of_plan(plan)
    units.cache.prepare()
    tiles = plan.tiles(ks)
    last = plan.n_frames - 1 if ks is None else max(ks)
    preflight.check_tiles(plan.scene.model, tiles, plan.scene.keyframes_where, plan.view(last).span, plan.size[0])
    done = train_missing(units, tiles, force, rep, executor, cancel)
    return TileTraining(units, len(done.trained))


@dataclass(frozen=True)
class ViewResult:
    """One view, trained (or found in the cache)."""

    view: View
    raw: np.ndarray  # (H, W) float64, row 0 = lowest y
    decision: Decision
    seconds: float  # training time, probe included (as recorded, when cached)
    cached: bool  # True when nothing was trained for it


def train_view(model: Model, view: View, precision: str = "auto", where: str = "view", *,
               cache: Cache | None = None, executor: Executor | None = None,
               on_progress=None, cancel: Cancel = None) -> ViewResult:
    """One view: its precision decision and every pixel, as a job run by
    ``executor`` (default: this process). With a ``cache``, a view trained
    before is read from it, and a new one is written to it."""
    if cache is None:
        res = next(iter((executor or LocalExecutor()).run([Job(view, model, view, precision, where)], on_progress, cancel)))
        return ViewResult(view, res.raw, res.decision, res.seconds, False)
    units = ViewUnits(model, cache, precision, where, **kernel_fields(model))
    cache.prepare()

    class Progress(Reporter):
        def pixel_steps(self, n):
            if on_progress is not None:
                on_progress(n)

    done = train_missing(units, [view], False, Progress(), executor, cancel)
    got = units.fetch(view, done.keys[view], executor, cancel)
    record = done.trained.get(view, got.record)
    return ViewResult(view, got.raw, Decision.from_json(record["decision"]), float(record["seconds"]),
                      not (done.trained or got.trained))


def scene_cache(out_dir: Path | None, stem: str) -> Cache:
    """The frames cache of a scene under ``out_dir`` (default outputs/), as
    :attr:`zoomreel.plan.Plan.cache`: where ``locate`` keeps its levels."""
    return Cache(Path(out_dir or "outputs") / stem / "cache")
