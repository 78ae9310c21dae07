"""The plan of a render: what will be trained and shown, decided before any work.

A :class:`Plan` is frozen. Its :class:`Timeline` says which view each frame
shows: the scene's zoom path sampled at the video's fps (:func:`make_plan`),
or a fixed list of views (one frame at a chosen time, :func:`single_frame`;
the paper's sequence of levels, :func:`zoomreel.dimension.levels_plan`).
``mode`` is frames or pyramid ([video] mode); ``precision`` is the precision
setting ([video] precision: auto or an arithmetic).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Callable

from . import path, pyramid
from .cache import Cache
from .training import kernel_fields
from .scene import Scene
from .view import View


def draft_size(size: tuple[int, int]) -> tuple[int, int]:
    """A quarter per axis, rounded to even, at least 16 px."""
    return tuple(max(16, 2 * round(s / 8)) for s in size)


class Timeline:
    """The view of each frame 0 .. n_frames - 1, each computed once when first asked."""

    def __init__(self, n_frames: int, view_of: Callable[[int], View]):
        self.n_frames = n_frames
        self._view_of = view_of
        self._views: dict[int, View] = {}
        self._frame_plans: dict[int, pyramid.FramePlan] = {}

    @classmethod
    def along_path(cls, scene: Scene, fps: int, size: tuple[int, int]) -> "Timeline":
        """The scene's zoom path: frame k shows time k / fps."""
        return cls(path.frame_count(scene, fps), lambda k: path.view_at(scene, path.frame_time(k, fps), size))

    @classmethod
    def of_views(cls, views: list[View]) -> "Timeline":
        views = list(views)
        return cls(len(views), views.__getitem__)

    def view(self, k: int) -> View:
        if not 0 <= k < self.n_frames:
            raise IndexError(f"frame {k} of {self.n_frames}")
        if k not in self._views:
            self._views[k] = self._view_of(k)
        return self._views[k]

    def frame_plan(self, k: int) -> pyramid.FramePlan:
        """The pyramid tiles frame k reads and how it blends them."""
        if k not in self._frame_plans:
            self._frame_plans[k] = pyramid.frame_plan(self.view(k))
        return self._frame_plans[k]


@dataclass(frozen=True)
class Plan:
    scene: Scene
    size: tuple[int, int]
    draft: bool
    out_dir: Path
    fps: int
    timeline: Timeline
    precision: str  # auto | float32 | float64 | dd
    mode: str = "frames"  # frames | pyramid
    kernel: str = "xla"  # the implementation of the step every unit of work trains with
    kernel_tag: str = ""  # its cache tag (frames of two implementations never mix)

    @property
    def n_frames(self) -> int:
        return self.timeline.n_frames

    def view(self, k: int) -> View:
        return self.timeline.view(k)

    def frame_plan(self, k: int) -> pyramid.FramePlan:
        return self.timeline.frame_plan(k)

    def with_views(self, views: list[View]) -> "Plan":
        """The same plan over these views, one frame each."""
        return dataclasses.replace(self, timeline=Timeline.of_views(views))

    @property
    def video_path(self) -> Path:
        stem = self.scene.stem
        return self.out_dir / stem / (f"{stem}-draft.mp4" if self.draft else f"{stem}.mp4")

    @property
    def cache(self) -> Cache:
        """This scene's frames (frames mode)."""
        return Cache(self.out_dir / self.scene.stem / "cache")

    @property
    def pyramid_cache(self) -> Cache:
        """Tiles of every model, shared by every render under the same out folder."""
        return Cache(self.out_dir / "pyramid")

    @property
    def kernel_label(self) -> str:
        """The kernel, as the user is told of it ("xla", "fused", ...)."""
        from . import engine

        return engine.describe_kernel(self.scene.model, impl=self.kernel)

    @property
    def pixel_steps_per_frame(self) -> int:
        return self.size[0] * self.size[1] * self.scene.model.steps

    @property
    def unit(self) -> str:
        """What this plan trains: frames or tiles."""
        return "tiles" if self.mode == "pyramid" else "frames"

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
        timeline=Timeline.along_path(scene, scene.video.fps, size),
        precision=scene.video.precision,
        mode=scene.video.mode,
        **kernel_fields(scene.model),
    )


def single_frame(scene: Scene, t: Decimal, draft: bool = False, out: Path | None = None) -> Plan:
    """A plan of the one frame the video shows at time ``t`` (frame 0)."""
    plan = make_plan(scene, draft, out)
    return plan.with_views([path.view_at(scene, t, plan.size)])
