"""Render: wire the stages together for whole videos (and single frames).

keyframes -> path -> precision -> engine -> cache -> colour -> encode.
This module holds the plan of a render and walks it; the CLI only shows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import color, encode, overlay, path, precision
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
    mode: str
    kernel: str = "xla"  # the implementation of the step every unit of work trains with
    kernel_tag: str = ""  # its cache tag (frames of two implementations never mix)
    _views: dict = field(default_factory=dict)

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
    def pixel_steps_per_frame(self) -> int:
        return self.size[0] * self.size[1] * self.scene.model.steps


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
        **kernel_fields(scene.model),
    )


def kernel_fields(model) -> dict:
    """The implementation this process trains ``model`` with, and its cache tag."""
    from . import engine

    f = engine.implementation(model)
    return {"kernel": f.impl, "kernel_tag": f.tag}


# --------------------------------------------------------------------------
# One frame


def frame_summary(t: Decimal, res: FrameResult, steps: int) -> str:
    W, H = res.view.size
    rate = W * H * steps / max(res.seconds, 1e-9)
    d = res.decision
    return (
        f"t={t}s {res.view.describe()} size {W}x{H} {d.dtype} resolved {d.resolved:.1%} "
        f"{res.seconds:.2f} s {rate:.3g} pixel-steps/s"
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


def lookup(plan: Plan, cache: Cache, k: int) -> FrameState:
    """What the cache knows about frame k, without training anything."""
    view = plan.view(k)
    vf = view.key_fields()
    d = cache.get_decision(decision_key(plan.scene.model, vf, plan.mode, plan.kernel_tag))
    decision = Decision.from_json(d) if d else None
    if decision is None:
        return FrameState(k, view, None, None, None)
    key = frame_key(plan.scene.model, vf, decision.dtype, plan.kernel_tag)
    return FrameState(k, view, decision, key, cache.meta(key) if cache.has_frame(key) else None)


class Reporter:
    """Hooks the CLI implements to show progress; all optional."""

    def start(self, total: int, cached: int) -> None: ...
    def pixel_steps(self, n: int) -> None: ...
    def frame_done(self, k: int, reused: bool, warning: str | None, dtype: str | None = None) -> None: ...
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
    damaged: int = 0  # cache records found damaged, and redone


def frame_job(plan: Plan, cache: Cache, k: int, force: bool) -> Job:
    """Frame k as a job; a cached precision decision rides along (no probe)."""
    scene = plan.scene
    view = plan.view(k)
    d = None if force else cache.get_decision(decision_key(scene.model, view.key_fields(), plan.mode, plan.kernel_tag))
    return Job(k, scene.model, view, plan.mode, scene.keyframes_where, Decision.from_json(d) if d else None, plan.kernel)


def store_result(cache: Cache, model, mode: str, res: JobResult, time: str, kernel_tag: str) -> dict:
    """Write a trained view (and its decision, if new) to a cache; returns its record."""
    vf = res.job.view.key_fields()
    if res.decided:
        cache.put_decision(decision_key(model, vf, mode, kernel_tag), res.decision.to_json())
    meta = {
        "time": time,
        "view": vf,
        "dtype": res.decision.dtype,
        "resolved": res.decision.resolved,
        "decision": res.decision.to_json(),
        "seconds": res.seconds,
        "pixel_steps": res.job.pixel_steps,
        "summary": color.summary(res.raw),
    }
    cache.put_frame(frame_key(model, vf, res.decision.dtype, kernel_tag), res.raw, meta)
    return meta


def store_frame(plan: Plan, cache: Cache, res: JobResult) -> dict:
    """Write a trained frame of the plan to its cache; returns its record."""
    return store_result(cache, plan.scene.model, plan.mode, res, str(path.frame_time(res.job.id, plan.fps)), plan.kernel_tag)


def train_frames(plan: Plan, cache: Cache, ks: list[int], force: bool, rep: Reporter,
                 executor: Executor | None = None) -> dict[int, tuple[np.ndarray, dict, bool]]:
    """Frames ``ks``: each from the cache, or trained by ``executor`` (default:
    this process) and written to the cache here. Returns k -> (raw, meta, trained)."""
    executor = executor or LocalExecutor()
    got: dict[int, tuple[np.ndarray, dict, bool]] = {}
    shape = (plan.size[1], plan.size[0])
    todo = []
    for k in ks:
        st = None if force else lookup(plan, cache, k)
        hit = None if st is None or st.key is None else cache.get_frame(st.key, shape)
        if hit is None:
            todo.append(k)
        else:
            got[k] = (hit[0], hit[1], False)
            rep.frame_done(k, True, None, hit[1].get("dtype"))
    if todo:
        cache.require_writable()
    jobs = (frame_job(plan, cache, k, force) for k in todo)
    for res in executor.run(jobs, rep.pixel_steps):
        meta = store_frame(plan, cache, res)
        got[res.job.id] = (res.raw, meta, True)
        rep.frame_done(res.job.id, False, res.decision.warning, res.decision.dtype)
    return got


def render(plan: Plan, force: bool = False, rep: Reporter | None = None, executor: Executor | None = None) -> RenderResult:
    rep = rep or Reporter()
    cache = plan.cache
    problems = refusals(plan)
    if problems:  # before any training
        raise problems[0]
    cache.prepare()
    encode.prepare(plan.video_path)
    t0 = time.perf_counter()
    states = [lookup(plan, cache, k) for k in range(plan.n_frames)]
    cached = 0 if force else sum(s.meta is not None for s in states)
    rep.start(plan.n_frames, cached)
    t1 = time.perf_counter()
    frames = train_frames(plan, cache, list(range(plan.n_frames)), force, rep, executor)
    engine_s = time.perf_counter() - t1
    rendered = sum(f[2] for f in frames.values())
    summaries = [frames[k][1]["summary"] for k in range(plan.n_frames)]
    keys = [frame_key(plan.scene.model, plan.view(k).key_fields(), frames[k][1]["dtype"], plan.kernel_tag) for k in range(plan.n_frames)]
    del frames
    t2 = time.perf_counter()
    rep.encoding(plan.n_frames)
    encode.write_mp4(plan.video_path, _rgb_frames(plan, cache, keys, summaries, rep), plan.size, plan.fps, plan.scene.video.quality)
    t3 = time.perf_counter()
    return RenderResult(rendered, plan.n_frames - rendered, plan.video_path, t3 - t0, engine_s if rendered else 0.0, t3 - t2,
                        len(cache.damaged))


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
    """The plan and what the cache holds, without training anything."""
    cache = plan.cache
    counts = dict.fromkeys(ARITHMETICS, 0)
    cached, seconds, steps_done = 0, 0.0, 0
    for k in range(plan.n_frames):
        st = lookup(plan, cache, k)
        if st.meta is not None:
            cached += 1
            counts[st.meta["dtype"]] = counts.get(st.meta["dtype"], 0) + 1
            seconds += float(st.meta.get("seconds", 0.0))
            steps_done += int(st.meta.get("pixel_steps", 0))
    total_steps = plan.n_frames * plan.pixel_steps_per_frame
    rate = steps_done / seconds if seconds > 0 else None
    remaining = total_steps - cached * plan.pixel_steps_per_frame
    first, last = plan.view(0), plan.view(plan.n_frames - 1)
    return {
        "warnings": [f"render would stop: {e.what} ({e.where}): {e.fix}" for e in refusals(plan)],
        "damaged": len(cache.damaged),
        "file": str(plan.scene.path),
        "video": str(plan.video_path),
        "video_exists": plan.video_path.exists(),
        "draft": plan.draft,
        "frames": plan.n_frames,
        "cached": cached,
        "duration": float(plan.scene.duration),
        "fps": plan.fps,
        "size": list(plan.size),
        "steps": plan.scene.model.steps,
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
