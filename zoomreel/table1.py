"""Table 1: one condition's box-counting dimension, measured the paper's way.

For each seed, with the file's model at that seed and step count:

1. a target: :func:`zoomreel.locate.locate` from the file's first keyframe
   down to the final span, by a stated rule (``busiest`` by default, close to
   the paper's choice by eye); each seed gets its own, since the boundary
   moves with the seed;
2. the paper's kind of sequence: one square image per 2x level, all centred on
   the target, from the first span of at least 6 down to the final span
   (:func:`zoomreel.dimension.levels_plan`), trained and cached like frames;
3. both estimators on the same images
   (:func:`zoomreel.dimension.measure_render`): the paper's (the median of all
   local slopes of all images) and ``fit`` (the median of each image's
   least-squares dimension). A sequence in which no image holds enough
   boundary for an estimator stops the row with that estimator's error.

The row is the seeds' values, their median and spread, and what it cost.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import numpy as np

from . import dimension, kinds, locate
from .plan import make_plan
from .scene import Keyframe, Scene
from .view import View

# The smallest image both estimators can read: fit's 4 box sizes up to 1/8 of the side
SIZE_MIN = dimension.LARGEST_FRACTION * 2 ** (dimension.MIN_SIZES - 1) + 1

# The paper's Table 1 (Sohl-Dickstein 2024), by condition
PAPER = {
    "identity": 1.17,
    "relu": 1.20,
    "single": 1.41,
    "minibatch": 1.55,
    "tanh": 1.66,
    "init-lr": 1.98,
}


def condition(model) -> str | None:
    """The Table 1 condition a model is, or None when it is none of them."""
    if model.kind != "network" or model.width != 16 or not kinds.spec("network").native(model):
        return None  # another optimizer, network, data or plane is none of the paper's conditions
    if model.plane == "init-lr":
        return "init-lr" if model.nonlinearity == "tanh" and model.batch == "full" and model.dataset == 1.0 else None
    if model.nonlinearity in ("identity", "relu"):
        ok = model.batch == "full" and model.dataset == 1.0
        return model.nonlinearity if ok else None
    if model.dataset == "single":
        return "single" if model.batch == "full" else None
    if model.dataset != 1.0:
        return None
    if model.batch == "full":
        return "tanh"
    return "minibatch" if model.minibatch == 16 else None


@dataclass
class SeedRow:
    seed: int
    target: tuple[str, str]  # the located centre, exact
    levels: int  # images in the sequence
    spans: tuple[float, float]  # widest and final
    paper: float  # the paper's estimator over the sequence
    fit: float  # median of the images' fit dimensions
    fitted: int  # images the fit estimator could fit
    boundary_pixels: tuple[int, int]  # fewest and most of any image
    per_level_paper: list[float | None]
    per_level_fit: list[float | None]
    per_level_slopes: list[list[float]]  # the paper's local slopes of each image, widest first
    locate_seconds: float
    seconds: float  # locate and sequence together


@dataclass
class Row:
    file: str
    condition: str | None
    paper_value: float | None
    size: int
    steps: int
    final: str
    rule: str
    locate_size: int
    precision: str
    seeds: list[SeedRow] = field(default_factory=list)
    machine: str = ""
    seconds: float = 0.0

    def summary(self, key: str) -> dict:
        """Median, mean and spread of the seeds' ``key`` ("paper" or "fit")."""
        a = np.asarray([getattr(s, key) for s in self.seeds], dtype=np.float64)
        return {"median": float(np.median(a)), "mean": float(a.mean()), "std": float(a.std()),
                "min": float(a.min()), "max": float(a.max()), "seeds": int(a.size)}

    def to_json(self) -> dict:
        d = asdict(self)
        d["paper_estimator"] = self.summary("paper")
        d["fit_estimator"] = self.summary("fit")
        d["difference"] = d["paper_estimator"]["median"] - self.paper_value if self.paper_value is not None else None
        return d


def machine() -> str:
    """The CPU and the cores this process may use, in words."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
        total = len(names) or os.cpu_count()
    except OSError:
        total = os.cpu_count()
    try:
        used = len(os.sched_getaffinity(0))
    except AttributeError:
        used = total
    return f"{cpu}, {used} of {total} cores"


def seed_scene(scene: Scene, seed: int, steps: int, size: int, center=None, span=None, precision: str | None = None) -> Scene:
    """The scene's model at ``seed`` and ``steps``, square frames of ``size``,
    the precision mode ``precision`` (default: the scene's), and (when given)
    its last keyframe moved to ``center`` and ``span``."""
    model = dataclasses.replace(scene.model, seed=seed, steps=steps)
    keys = scene.keyframes
    if center is not None:
        last = keys[-1]
        keys = keys[:-1] + (Keyframe(last.time, tuple(center), Decimal(span)),)
    s = dataclasses.replace(scene, model=model, keyframes=keys)
    return s.with_video(size=(size, size), precision=precision or scene.video.precision, mode="frames")


def target(scene: Scene, final: Decimal, rule: str = "busiest", locate_size: int = 64, factor: int = 10,
           out=None, executor=None):
    """The centre ``locate`` reaches from the scene's first keyframe down to
    ``final`` (its levels cached under ``out``, trained by ``executor``)."""
    from .work import scene_cache

    first = scene.keyframes[0]
    start = View(first.center, first.span, (locate_size, locate_size))
    cache = scene_cache(out, scene.stem)
    levels = locate.locate(scene.model, start, final, factor, locate_size, rule=rule, precision=scene.video.precision,
                           where=scene.keyframes_where, cache=cache, executor=executor)
    return levels[-1].view.center


def measure_seed(scene: Scene, seed: int, steps: int, size: int, final: Decimal, rule: str = "busiest",
                 locate_size: int = 64, out=None, rep=None, executor=None, precision: str | None = None) -> SeedRow:
    """One seed's target, sequence and both estimators (module doc), every
    image (locate's too) in the precision mode ``precision`` (default: the file's)."""
    t0 = time.perf_counter()
    center = target(seed_scene(scene, seed, steps, size, precision=precision), final, rule, locate_size,
                    out=out, executor=executor)
    t1 = time.perf_counter()
    plan = dimension.levels_plan(make_plan(seed_scene(scene, seed, steps, size, center, final, precision), False, out))
    idx = list(range(plan.n_frames))
    pap = dimension.measure_render(plan, idx, rep=rep, executor=executor, estimator="paper")
    fit = dimension.measure_render(plan, idx, rep=rep, executor=executor, estimator="fit")  # the same images, cached
    px = [f.boundary_pixels for f in pap.frames]
    return SeedRow(
        seed=seed,
        target=(str(center[0]), str(center[1])),
        levels=plan.n_frames,
        spans=(float(plan.view(0).span), float(plan.view(plan.n_frames - 1).span)),
        paper=pap.summary["dimension"],
        fit=fit.summary["dimension"],
        fitted=fit.summary["fitted"],
        boundary_pixels=(min(px), max(px)),
        per_level_paper=_per_level(pap),
        per_level_fit=_per_level(fit),
        per_level_slopes=[f.fit.slopes if f.fit is not None else [] for f in pap.frames],
        locate_seconds=t1 - t0,
        seconds=time.perf_counter() - t0,
    )


def _per_level(res) -> list[float | None]:
    """Each image's own dimension, None where it was skipped (too little boundary)."""
    return [f.fit.dimension if f.fit is not None else None for f in res.frames]


def measure(scene: Scene, seeds: list[int], steps: int, size: int, final: Decimal, rule: str = "busiest",
            locate_size: int = 64, out=None, rep=None, executor=None, on_seed=None, precision: str | None = None) -> Row:
    """The condition's Table 1 row over ``seeds`` (module doc)."""
    from .errors import UserError

    if size < SIZE_MIN:  # before any training: both estimators read every image
        raise UserError(f"{size} px images are too small for both estimators", "--size", f"use {SIZE_MIN} px or more")
    if not seeds:
        raise UserError("no seeds to measure", "--seeds", "give at least one seed, e.g. 0-4")
    t0 = time.perf_counter()
    row = Row(str(scene.path), condition(scene.model), PAPER.get(condition(scene.model)), size, steps,
              str(final), rule, locate_size, precision or scene.video.precision, machine=machine())
    for seed in seeds:
        row.seeds.append(measure_seed(scene, seed, steps, size, final, rule, locate_size, out, rep, executor, precision))
        if on_seed:
            on_seed(row.seeds[-1])
    row.seconds = time.perf_counter() - t0
    return row
