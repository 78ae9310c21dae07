"""Where the explorer's pictures come from: :func:`image_for`.

One function stands between the page and the training. It answers a view's
raw measure and precision decision from a view cache (a
:class:`zoomreel.cache.Cache`, keyed exactly as a render's frames: model,
view, size, dtype, engine version), and trains what is missing with
:func:`zoomreel.executor.run_job`, the same unit of work a render runs, so a
view shows the bits the same frame of a video would. Drawing the page from a
shared tile pyramid instead is a change of this one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..cache import Cache
from ..executor import run_job
from ..model import Model
from ..path import View
from ..precision import Decision
from ..render import ViewUnits, kernel_fields


@dataclass
class Image:
    raw: np.ndarray  # (H, W) float64, row 0 = lowest y
    decision: Decision
    cached: bool  # True when nothing was trained for it


def view_cache(out_dir: Path) -> Cache:
    """The explorer's own view cache under ``out_dir``."""
    cache = Cache(Path(out_dir) / "explore" / "cache")
    cache.prepare()
    return cache


def image_for(cache: Cache, model: Model, view: View, mode: str, where: str,
              on_progress: Callable[[int], None] | None = None) -> Image:
    """A view's raw measure and decision: from the cache, or trained and stored."""
    units = ViewUnits(model, cache, mode, where, **kernel_fields(model))
    hit = units.get(view)
    if hit is not None:
        return Image(hit[0], Decision.from_json(hit[1]["decision"]), True)
    check = (lambda: on_progress(0)) if on_progress is not None else None  # a superseded view stops in its probe too
    res = run_job(units.job(view, False), on_progress, check)
    units.store(res)
    return Image(res.raw, res.decision, False)
