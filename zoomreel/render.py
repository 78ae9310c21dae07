"""Render: wire the stages together for whole videos (and single frames).

keyframes -> path -> precision -> engine -> cache -> colour -> encode.
This module holds the plan of a render and walks it; the CLI only shows it.

Two modes ([video] mode). "frames": every frame is trained at its own pixel
centres and cached per render (``<out>/<stem>/cache``). "pyramid": the tiles
of the zoom pyramid (:mod:`zoomreel.pyramid`) that the frames read are
trained once and cached for every render under the same ``--out``
(``<out>/pyramid``, keyed by model and tile), and each frame is composed from
them (:mod:`zoomreel.compose`). Either way the work is a list of views
(:class:`Units`) turned into :class:`~zoomreel.executor.Job` s, run by an
:class:`~zoomreel.executor.Executor`, and the results are written to the
cache here, by this one process (:func:`train_units`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import numpy as np

from . import color, compose, encode, overlay, path, precision, pyramid
from .views import FrameResult, compute_frame, train_view  # noqa: F401  (the one-frame API)
from .cache import Cache, decision_key, frame_key
from .executor import Executor, Job, JobResult, LocalExecutor
from .precision import Decision
from .errors import UserError
from .precisions import ARITHMETICS
from .scene import Scene

BLEND_SECONDS = 0.5  # colour reference is blended over +/- this much time


def draft_size(size: tuple[int, int]) -> tuple[int, int]:
    """A quarter per axis, rounded to even, at least 16 px."""
    return tuple(max(16, 2 * round(s / 8)) for s in size)


@dataclass
class Plan:
    scene: Scene
    size: tuple[int, int]
    draft: bool
    out_dir: Path
    fps: int
    n_frames: int
    mode: str  # precision mode: auto | float32 | float64
    video_mode: str = "frames"  # frames | pyramid
    kernel: str = "xla"  # the implementation of the step every unit of work trains with
    kernel_tag: str = ""  # its cache tag (frames of two implementations never mix)
    _views: dict = field(default_factory=dict)
    _frame_plans: dict = field(default_factory=dict)

    @property
    def video_path(self) -> Path:
        stem = self.scene.stem
        return self.out_dir / stem / (f"{stem}-draft.mp4" if self.draft else f"{stem}.mp4")

    @property
    def cache(self) -> Cache:
        return Cache(self.out_dir / self.scene.stem / "cache")

    def view(self, k: int) -> path.View:
        if k not in self._views:
            self._views[k] = path.view_at(self.scene, path.frame_time(k, self.fps), self.size)
        return self._views[k]

    @property
    def kernel_label(self) -> str:
        """The kernel, as the user is told of it ("xla", "fused", ...)."""
        from . import engine

        return engine.describe_kernel(self.scene.model, impl=self.kernel)

    @property
    def pixel_steps_per_frame(self) -> int:
        return self.size[0] * self.size[1] * self.scene.model.steps

    @property
    def pyramid_cache(self) -> Cache:
        """Tiles of every model, shared by every render under the same out folder."""
        return Cache(self.out_dir / "pyramid")

    def frame_plan(self, k: int) -> pyramid.FramePlan:
        if k not in self._frame_plans:
            self._frame_plans[k] = pyramid.frame_plan(self.view(k))
        return self._frame_plans[k]

    def tiles(self, ks: list[int] | None = None) -> list[pyramid.Tile]:
        """The tiles frames ``ks`` (default: all) read, coarse levels first."""
        ks = range(self.n_frames) if ks is None else ks
        return pyramid.tiles_for(self.frame_plan(k) for k in ks)


def make_plan(scene: Scene, draft: bool = False, out: Path | None = None) -> Plan:
    size = draft_size(scene.video.size) if draft else tuple(scene.video.size)
    return Plan(
        scene=scene,
        size=size,
        draft=draft,
        out_dir=Path(out) if out else Path("outputs"),
        fps=scene.video.fps,
        n_frames=path.frame_count(scene),
        mode=scene.video.precision,
        video_mode=scene.video.mode,
        **kernel_fields(scene.model),
    )


def kernel_fields(model) -> dict:
    """The implementation this process trains ``model`` with, and its cache tag.

    On a GPU, choosing it may first check the fused kernel against the XLA
    step (a few compilations, once per condition and process)."""
    from . import engine

    f = engine.implementation(model)
    return {"kernel": f.impl, "kernel_tag": f.tag}


def single_frame_plan(scene: Scene, t: Decimal, out: Path | None = None) -> Plan:
    """A plan of the one frame the video shows at time ``t`` (frame 0)."""
    plan = make_plan(scene, False, out)
    plan.n_frames = 1
    plan._views[0] = path.view_at(scene, t)
    return plan


# --------------------------------------------------------------------------
# One frame


def frame_summary(t: Decimal, res: FrameResult, model) -> str:
    from . import engine

    W, H = res.view.size
    rate = W * H * model.steps / max(res.seconds, 1e-9)
    d = res.decision
    return (
        f"t={t}s {res.view.describe()} size {W}x{H} {d.dtype} resolved {d.resolved:.1%} "
        f"{res.seconds:.2f} s {rate:.3g} pixel-steps/s, kernel {engine.describe_kernel(model, d.dtype)}"
    )


# --------------------------------------------------------------------------
# Whole videos


@dataclass
class FrameState:
    k: int
    view: path.View
    decision: Decision | None
    key: str | None  # frame cache key, known once the dtype is known
    meta: dict | None  # cached record, if the frame is cached


class Units:
    """Views to train under names (frame indices, tiles), with their cache keys.

    Subclasses say what a name's view is, what identifies its pixels
    (``fields``) and what its cached record adds (``extra``).
    """

    noun = "frames"

    def __init__(self, model, cache: Cache, mode: str, where: str, kernel: str = "xla", kernel_tag: str = ""):
        self.model, self.cache, self.mode, self.where = model, cache, mode, where
        self.kernel, self.kernel_tag = kernel, kernel_tag

    def view(self, id) -> path.View:
        raise TypeError(f"{type(self).__name__} has no views")

    def fields(self, id) -> dict:
        return self.view(id).key_fields()

    def extra(self, id) -> dict:
        return {}

    def shape(self, id) -> tuple[int, int]:
        W, H = self.view(id).size
        return H, W

    def decision_key(self, id) -> str:
        return decision_key(self.model, self.fields(id), self.mode, self.kernel_tag)

    def key(self, id, dtype: str) -> str:
        return frame_key(self.model, self.fields(id), dtype, self.kernel_tag)

    def lookup(self, id) -> tuple[Decision | None, str | None, dict | None]:
        """The cached decision, the cache key and the cached record (each None if unknown)."""
        d = self.cache.get_decision(self.decision_key(id))
        if d is None:
            return None, None, None
        decision = Decision.from_json(d)
        key = self.key(id, decision.dtype)
        return decision, key, self.cache.meta(key, self.shape(id)) if self.cache.has_frame(key) else None

    def get(self, id) -> tuple[np.ndarray, dict] | None:
        key = self.lookup(id)[1]
        return None if key is None else self.cache.get_frame(key, self.shape(id))

    def job(self, id, force: bool) -> Job:
        """``id`` as a job; a cached precision decision rides along (no probe)."""
        d = None if force else self.cache.get_decision(self.decision_key(id))
        return Job(id, self.model, self.view(id), self.mode, self.where, Decision.from_json(d) if d else None, self.kernel)

    def store(self, res: JobResult) -> dict:
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

    def __init__(self, plan: Plan, cache: Cache):
        super().__init__(plan.scene.model, cache, plan.mode, plan.scene.keyframes_where, plan.kernel, plan.kernel_tag)
        self.plan = plan

    def view(self, k):
        return self.plan.view(k)

    def extra(self, k):
        return {"time": str(path.frame_time(k, self.plan.fps))}


class TileUnits(Units):
    """Tiles of a model's zoom pyramid."""

    noun = "tiles"

    def view(self, t: pyramid.Tile):
        return t.view()

    def fields(self, t: pyramid.Tile):
        return t.key_fields()

    def shape(self, t):
        return pyramid.TILE, pyramid.TILE

    def extra(self, t):
        return {"time": "", "tile": [t.level, t.i, t.j]}


class ViewUnits(Units):
    """Views named by themselves (the explorer's): a view's id is the view."""

    def view(self, v: path.View) -> path.View:
        return v

    def extra(self, v):
        return {"time": ""}


def tile_units(plan: Plan, cache: Cache | None = None) -> TileUnits:
    return TileUnits(plan.scene.model, cache or plan.pyramid_cache, plan.mode, plan.scene.keyframes_where,
                     plan.kernel, plan.kernel_tag)


def lookup(plan: Plan, cache: Cache, k: int) -> FrameState:
    """What the cache knows about frame k, without training anything."""
    decision, key, meta = FrameUnits(plan, cache).lookup(k)
    return FrameState(k, plan.view(k), decision, key, meta)


class Reporter:
    """Hooks the CLI implements to show progress; all optional."""

    def start(self, total: int, cached: int) -> None: ...
    def pixel_steps(self, n: int) -> None: ...
    def frame_done(self, k, reused: bool, warning: str | None, dtype: str | None = None) -> None: ...
    def encoding(self, total: int) -> None: ...
    def encoded(self, k: int) -> None: ...


@dataclass
class RenderResult:
    rendered: int
    reused: int
    video: Path
    seconds: float
    engine_seconds: float
    encode_seconds: float
    unit: str = "frames"  # what rendered/reused count: frames or tiles
    damaged: int = 0  # cache records found damaged, and redone


def train_units(units: Units, ids: list, force: bool, rep: Reporter, executor: Executor | None = None,
                keep: bool = True, check=None) -> dict:
    """The one way anything is trained: each of ``ids`` from the cache, or as a
    job run by ``executor`` (default: this process) whose result is written to
    the cache here. Returns id -> (raw, meta, trained); raw is None unless
    ``keep``. ``check``: see :func:`zoomreel.executor.run_job`."""
    executor = executor or LocalExecutor()
    got: dict = {}
    todo = []
    for id in ids:
        hit = None if force else units.get(id)
        if hit is None:
            todo.append(id)
        else:
            got[id] = (hit[0] if keep else None, hit[1], False)
            rep.frame_done(id, True, None, hit[1].get("dtype"))
    if todo:
        units.cache.require_writable()
    jobs = (units.job(id, force) for id in todo)
    for res in executor.run(jobs, rep.pixel_steps, check):
        meta = units.store(res)
        got[res.job.id] = (res.raw if keep else None, meta, True)
        rep.frame_done(res.job.id, False, res.decision.warning, res.decision.dtype)
    return got


def train_frames(plan: Plan, cache: Cache, ks: list[int], force: bool, rep: Reporter,
                 executor: Executor | None = None) -> dict[int, tuple[np.ndarray, dict, bool]]:
    """Frames ``ks``: each from the cache, or trained by ``executor`` (default:
    this process) and written to the cache here. Returns k -> (raw, meta, trained)."""
    return train_units(FrameUnits(plan, cache), ks, force, rep, executor)


def render(plan: Plan, force: bool = False, rep: Reporter | None = None, executor: Executor | None = None) -> RenderResult:
    rep = rep or Reporter()
    problems = refusals(plan)
    if problems:  # before any training
        raise problems[0]
    encode.prepare(plan.video_path)
    if plan.video_mode == "pyramid":
        return render_pyramid(plan, force, rep, executor)
    cache = plan.cache
    cache.prepare()
    t0 = time.perf_counter()
    states = [lookup(plan, cache, k) for k in range(plan.n_frames)]
    cached = 0 if force else sum(s.meta is not None for s in states)
    rep.start(plan.n_frames, cached)
    t1 = time.perf_counter()
    frames = train_frames(plan, cache, list(range(plan.n_frames)), force, rep, executor)
    engine_s = time.perf_counter() - t1
    rendered = sum(f[2] for f in frames.values())
    summaries = [frames[k][1]["summary"] for k in range(plan.n_frames)]
    units = FrameUnits(plan, cache)
    keys = [units.key(k, frames[k][1]["dtype"]) for k in range(plan.n_frames)]
    del frames
    t2 = time.perf_counter()
    rep.encoding(plan.n_frames)
    encode.write_mp4(plan.video_path, _rgb_frames(plan, cache, keys, summaries, rep), plan.size, plan.fps, plan.scene.video.quality)
    t3 = time.perf_counter()
    return RenderResult(rendered, plan.n_frames - rendered, plan.video_path, t3 - t0, engine_s if rendered else 0.0, t3 - t2,
                        damaged=len(cache.damaged))


def _rgb_frames(plan: Plan, cache: Cache, keys: list[str], summaries: list[dict], rep: Reporter) -> Iterator[np.ndarray]:
    radius = max(0, int(round(BLEND_SECONDS * plan.fps)))
    shape = (plan.size[1], plan.size[0])
    first_span = plan.scene.keyframes[0].span
    for k, key in enumerate(keys):
        got = cache.get_frame(key, shape)
        if got is None:  # vanished or corrupted since the training pass: retrain it
            got = train_frames(plan, cache, [k], True, Reporter())[k][:2]
        ks, ws = color.window_weights(k, len(keys), radius)
        ref = color.blend([summaries[j] for j in ks], ws)
        img = color.colorize(got[0], ref, plan.scene.video.palette)
        if plan.scene.video.overlay:
            img = overlay.draw(img, plan.scene.model, plan.view(k), first_span)
        yield img
        rep.encoded(k)


def refusals(plan: Plan) -> list[UserError]:
    """What render would refuse about this plan, found without training: the
    frames nearest each keyframe (the path's span is smallest at one of them)
    checked as the precision step checks every frame."""
    from . import engine

    top = engine.LADDER[-1]
    ks = set()
    for kf in plan.scene.keyframes:
        at = kf.time * plan.fps
        ks.update(min(plan.n_frames - 1, int(f)) for f in (at.to_integral_value(rounding="ROUND_FLOOR"), at.to_integral_value(rounding="ROUND_CEILING")))
    out = []
    for k in sorted(ks):
        view = plan.view(k)
        try:
            hx, hy = path.hyper_axes(plan.scene.model, view, top)
            precision.check_representable(plan.scene.model, view, hx, hy, f"{plan.scene.keyframes_where}, frame {k}", top)
        except UserError as e:
            out.append(e)
    return out


def info(plan: Plan) -> dict:
    """The plan and what the cache holds, without training any frame (on a
    GPU, choosing the kernel may first run its check: :func:`kernel_fields`).

    For the mode in effect: the frames (or tiles) to train, how many are
    cached, and the pixel-steps they take."""
    if plan.video_mode == "pyramid":
        units, ids = tile_units(plan), plan.tiles()
    else:
        units, ids = FrameUnits(plan, plan.cache), list(range(plan.n_frames))
    counts = dict.fromkeys(ARITHMETICS, 0)
    cached, seconds, steps_done = 0, 0.0, 0
    for id in ids:
        meta = units.lookup(id)[2]
        if meta is not None:
            cached += 1
            counts[meta["dtype"]] = counts.get(meta["dtype"], 0) + 1
            seconds += float(meta.get("seconds", 0.0))
            steps_done += int(meta.get("pixel_steps", 0))
    per_unit = plan.pixel_steps_per_frame if plan.video_mode == "frames" else pyramid.TILE**2 * plan.scene.model.steps
    total_steps = len(ids) * per_unit
    rate = steps_done / seconds if seconds > 0 else None
    remaining = total_steps - cached * per_unit
    first, last = plan.view(0), plan.view(plan.n_frames - 1)
    d = {
        "warnings": [f"render would stop: {e.what} ({e.where}): {e.fix}" for e in refusals(plan)],
        "damaged": len(units.cache.damaged),
        "file": str(plan.scene.path),
        "video": str(plan.video_path),
        "video_exists": plan.video_path.exists(),
        "draft": plan.draft,
        "mode": plan.video_mode,
        "frames": plan.n_frames,
        "cached": cached,
        "duration": float(plan.scene.duration),
        "fps": plan.fps,
        "size": list(plan.size),
        "steps": plan.scene.model.steps,
        "kernel": plan.kernel_label,
        "precision_mode": plan.mode,
        "precision": counts,
        "pixel_steps": total_steps,
        "pixel_steps_remaining": remaining,
        "measured_pixel_steps_per_s": rate,
        "estimated_seconds_remaining": (remaining / rate) if rate else None,
        "span_first": float(first.span),
        "span_last": float(last.span),
        "decades": float((first.span / last.span).log10()) if last.span != first.span else 0.0,
    }
    if plan.video_mode == "pyramid":
        levels = sorted({t.level for t in ids})
        d.update({"tiles": len(ids), "tile_size": pyramid.TILE, "levels": [levels[0], levels[-1]],
                  "cache": str(units.cache.root)})
    return d


# --------------------------------------------------------------------------
# Pyramid mode


def check_depth(plan: Plan, tiles: list[pyramid.Tile]) -> None:
    """Refuse, before training anything, a path whose finest level the deepest
    arithmetic cannot train (neighbouring pixels equal)."""
    if not tiles:
        return
    top = max(t.level for t in tiles)
    model = plan.scene.model
    from . import engine

    A = engine.LADDER[-1]
    for t in (t for t in tiles if t.level == top):
        v = t.view()
        hx, hy = path.hyper_axes(model, v, A)
        if A.finite(hx) and A.finite(hy) and not (A.distinct(hx) and A.distinct(hy)):
            deep = precision.deepest_span(model, v, A) / pyramid.TILE * plan.size[0] * 2
            raise UserError(
                f"span {float(plan.view(plan.n_frames - 1).span):.3g} is too deep: pyramid level {top} "
                f"(pixel spacing {float(pyramid.spacing(top)):.3g}) has neighbouring pixels equal in {A.name}",
                plan.scene.keyframes_where,
                f"the deepest span this size supports here is about {deep:.2g}; stop the zoom there or use fewer pixels",
            )


class TileReader:
    """Tiles from the cache for composing, kept in memory for the levels in use.

    A tile that vanished or was corrupted since it was trained is retrained."""

    def __init__(self, units: TileUnits):
        self.units = units
        self.tiles: dict[pyramid.Tile, np.ndarray] = {}

    def keep(self, levels: set[int]) -> None:
        self.tiles = {t: a for t, a in self.tiles.items() if t.level in levels}

    def __call__(self, t: pyramid.Tile) -> np.ndarray:
        if t not in self.tiles:
            got = self.units.get(t)
            if got is None:
                got = train_units(self.units, [t], True, Reporter())[t][:2]
            self.tiles[t] = got[0]
        return self.tiles[t]

    def blocks(self, fp: pyramid.FramePlan) -> dict[int, np.ndarray]:
        parts = [fp.fine] + ([fp.coarse] if fp.coarse is not None and fp.blend > 0 else [])
        self.keep({p.level for p in parts})
        return {p.level: compose.mosaic(p, self) for p in parts}


def pyramid_frame(plan: Plan, k: int, reader: TileReader, ref: dict | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Frame k composed from the pyramid: (RGB as a plot, converged fraction
    with row 0 = lowest y, the frame's own rank reference)."""
    fp = plan.frame_plan(k)
    blocks = reader.blocks(fp)
    own = color.summary(blocks[fp.fine.level])
    rgb, frac = compose.compose(fp, blocks, plan.size, ref if ref is not None else own, plan.scene.video.palette)
    return rgb, frac, own


def train_tiles(plan: Plan, ks: list[int] | None, force: bool, rep: Reporter,
                executor: Executor | None = None) -> tuple[TileUnits, int]:
    """Every tile frames ``ks`` (default: all) read, trained unless cached.
    Returns the units (to read them) and how many were trained."""
    units = tile_units(plan)
    units.cache.prepare()
    tiles = plan.tiles(ks)
    check_depth(plan, tiles)
    cached = 0 if force else sum(units.lookup(t)[2] is not None for t in tiles)
    rep.start(len(tiles), cached)
    got = train_units(units, tiles, force, rep, executor, keep=False)
    return units, sum(g[2] for g in got.values())


def render_pyramid(plan: Plan, force: bool, rep: Reporter, executor: Executor | None = None) -> RenderResult:
    t0 = time.perf_counter()
    units, trained = train_tiles(plan, None, force, rep, executor)
    t1 = time.perf_counter()
    total = len(plan.tiles())
    reader = TileReader(units)
    summaries = [pyramid_frame_summary(plan, k, reader) for k in range(plan.n_frames)]
    rep.encoding(plan.n_frames)
    encode.write_mp4(plan.video_path, _pyramid_rgb(plan, reader, summaries, rep), plan.size, plan.fps, plan.scene.video.quality)
    t3 = time.perf_counter()
    # encode_seconds: composing (both passes) and encoding
    return RenderResult(trained, total - trained, plan.video_path, t3 - t0, (t1 - t0) if trained else 0.0, t3 - t1, "tiles",
                        damaged=len(units.cache.damaged))


def pyramid_frame_summary(plan: Plan, k: int, reader: TileReader) -> dict:
    """Frame k's own rank reference: the fine level's samples under it."""
    fp = plan.frame_plan(k)
    reader.keep({fp.fine.level} | ({fp.coarse.level} if fp.coarse is not None else set()))
    return color.summary(compose.mosaic(fp.fine, reader))


def _pyramid_rgb(plan: Plan, reader: TileReader, summaries: list[dict], rep: Reporter) -> Iterator[np.ndarray]:
    radius = max(0, int(round(BLEND_SECONDS * plan.fps)))
    first_span = plan.scene.keyframes[0].span
    for k in range(plan.n_frames):
        ks, ws = color.window_weights(k, plan.n_frames, radius)
        img = pyramid_frame(plan, k, reader, color.blend([summaries[j] for j in ks], ws))[0]
        if plan.scene.video.overlay:
            img = overlay.draw(img, plan.scene.model, plan.view(k), first_span)
        yield img
        rep.encoded(k)


def level_images(plan: Plan, ks: list[int], force: bool = False, rep: Reporter | None = None,
                 executor: Executor | None = None) -> list[tuple[int, int, np.ndarray]]:
    """The pyramid's levels as images: for each level that frames ``ks`` read
    as their fine level, its lattice block under the first such frame.
    Returns (frame, level, raw block) in frame order; trains missing tiles."""
    rep = rep or Reporter()
    first: dict[int, int] = {}
    for k in ks:
        first.setdefault(plan.frame_plan(k).fine.level, k)
    chosen = sorted(first.values())
    units, _ = train_tiles(plan, chosen, force, rep, executor)
    reader = TileReader(units)
    out = []
    for k in chosen:
        fp = plan.frame_plan(k).fine
        reader.keep({fp.level})
        out.append((k, fp.level, compose.mosaic(fp, reader)))
    return out
