"""Render: a plan's video, frame after frame, through the work layer.

keyframes -> path -> precision -> engine -> cache -> colour -> encode.
:func:`render` trains what the cache lacks (:func:`zoomreel.work.train_missing`),
then walks the frames once in order: each frame's picture comes from its
mode's source, is coloured against the blended rank reference of its
neighbours (:data:`BLEND_SECONDS` either side), and goes to the encoder.

Two modes ([video] mode), one source each. "frames": every frame is trained
at its own pixel centres and cached per render (``<out>/<stem>/cache``).
"pyramid": the tiles of the zoom pyramid (:mod:`zoomreel.pyramid`) that the
frames read are trained once and cached for every render under the same
``--out`` (``<out>/pyramid``, keyed by model and tile), and each frame is
composed from them (:mod:`zoomreel.compose`).

Memory does not grow with the number of frames: the walk holds the frames
of one blending window, and reads each cached record once.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np

from . import color, compose, encode, interrupt, overlay, preflight
from .cancel import Cancel, stop_if
from .executor import Executor
from .plan import Plan
from .work import FrameUnits, Reporter, TileReader, train_missing, train_tiles

BLEND_SECONDS = 0.5  # colour reference is blended over +/- this much time


@dataclass(frozen=True)
class RenderResult:
    rendered: int  # frames (tiles) trained, damaged records retrained included
    reused: int
    video: Path
    seconds: float
    engine_seconds: float
    encode_seconds: float
    unit: str = "frames"  # what rendered/reused count: frames or tiles
    damaged: int = 0  # cache records found damaged, and redone


class Picture(NamedTuple):
    """One frame on its way to the encoder: its own rank reference, and how
    to paint it against a (blended) reference."""

    summary: dict
    paint: Callable[[dict], np.ndarray]  # reference -> RGB (H, W, 3) uint8, drawn as a plot


def render(plan: Plan, force: bool = False, rep: Reporter | None = None, executor: Executor | None = None,
           cancel: Cancel = None) -> RenderResult:
    """Train what the plan's video lacks, then encode it (module doc)."""
    rep = rep or Reporter()
    problems = preflight.plan_refusals(plan)
    if problems:  # before any training
        raise problems[0]
    encode.prepare(plan.video_path)
    source = PyramidSource(plan, executor, cancel) if plan.mode == "pyramid" else FrameSource(plan, executor, cancel)
    t0 = time.perf_counter()
    trained = source.train(force, rep)
    t1 = time.perf_counter()
    rep.encoding(plan.n_frames)
    encode.write_mp4(plan.video_path, video_frames(plan, source.pictures(), rep, cancel), plan.size, plan.fps,
                     plan.scene.video.quality)
    t2 = time.perf_counter()
    rendered = trained + source.retrained
    return RenderResult(rendered, source.total - rendered, plan.video_path, t2 - t0, (t1 - t0) if trained else 0.0,
                        t2 - t1, plan.unit, damaged=len(source.cache.damaged))


def video_frames(plan: Plan, pictures: Iterator[Picture], rep: Reporter, cancel: Cancel = None) -> Iterator[np.ndarray]:
    """The video's RGB frames in order: each painted against the blend of its
    neighbours' references. Holds the pictures of one window at a time."""
    radius = max(0, int(round(BLEND_SECONDS * plan.fps)))
    first_span = plan.scene.keyframes[0].span
    ahead: deque[Picture] = deque()  # frames k .. read so far
    summaries: dict[int, dict] = {}
    read = 0
    for k in range(plan.n_frames):
        ks, ws = color.window_weights(k, plan.n_frames, radius)
        while read <= ks[-1]:
            stop_if(cancel)
            pic = next(pictures)
            ahead.append(pic)
            summaries[read] = pic.summary
            read += 1
        img = ahead.popleft().paint(color.blend([summaries[j] for j in ks], ws))
        summaries.pop(k - radius, None)  # no later frame's window reaches it
        if plan.scene.video.overlay:
            img = overlay.draw(img, plan.scene.model, plan.view(k), first_span)
        yield img
        rep.encoded(k)
        interrupt.signal_point(f"encoded {k + 1}")


class FrameSource:
    """Frames mode: each frame its own trained pixels."""

    def __init__(self, plan: Plan, executor: Executor | None, cancel: Cancel):
        self.plan, self.executor, self.cancel = plan, executor, cancel
        self.units = FrameUnits(plan)
        self.cache = self.units.cache
        self.total = plan.n_frames
        self.retrained = 0

    def train(self, force: bool, rep: Reporter) -> int:
        self.cache.prepare()
        done = train_missing(self.units, list(range(self.plan.n_frames)), force, rep, self.executor, self.cancel)
        return len(done.trained)

    def pictures(self) -> Iterator[Picture]:
        palette = self.plan.scene.video.palette
        for k in range(self.plan.n_frames):
            got = self.units.fetch(k, None, self.executor, self.cancel)
            self.retrained += got.trained
            yield Picture(got.record["summary"], lambda ref, raw=got.raw: color.colorize(raw, ref, palette))


class PyramidSource:
    """Pyramid mode: each frame composed from the shared tiles (its units,
    cache and reader are there once :meth:`train` has run)."""

    def __init__(self, plan: Plan, executor: Executor | None, cancel: Cancel):
        self.plan, self.executor, self.cancel = plan, executor, cancel
        self.total = len(plan.tiles())

    @property
    def retrained(self) -> int:
        return self.reader.retrained

    def train(self, force: bool, rep: Reporter) -> int:
        done = train_tiles(self.plan, None, force, rep, self.executor, self.cancel)
        self.units, self.cache = done.units, done.units.cache  # which know each tile's key, and count the damaged
        self.reader = TileReader(self.units, self.executor, self.cancel)
        return done.trained

    def pictures(self) -> Iterator[Picture]:
        palette = self.plan.scene.video.palette
        for k in range(self.plan.n_frames):
            fp = self.plan.frame_plan(k)
            blocks = self.reader.blocks(fp)
            paint = lambda ref, fp=fp, blocks=blocks: compose.compose(fp, blocks, self.plan.size, ref, palette)[0]  # noqa: E731
            yield Picture(color.summary(blocks[fp.fine.level]), paint)


class PyramidFrame(NamedTuple):
    rgb: np.ndarray  # (H, W, 3) uint8, drawn as a plot (top row = highest y)
    converged: np.ndarray  # converged fraction per pixel, row 0 = lowest y
    summary: dict  # the frame's own rank reference (its fine level's samples)


def pyramid_frame(plan: Plan, k: int, reader: TileReader, ref: dict | None = None) -> PyramidFrame:
    """Frame k composed from the pyramid, coloured against ``ref`` (default: its own reference)."""
    fp = plan.frame_plan(k)
    blocks = reader.blocks(fp)
    own = color.summary(blocks[fp.fine.level])
    rgb, frac = compose.compose(fp, blocks, plan.size, ref if ref is not None else own, plan.scene.video.palette)
    return PyramidFrame(rgb, frac, own)
