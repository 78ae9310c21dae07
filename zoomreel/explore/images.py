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

from ..cache import Cache, decision_key, frame_key
from ..executor import Job, run_job
from ..model import Model
from ..path import View
from ..precision import Decision
from ..render import kernel_fields, store_result


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
    vf = view.key_fields()
    kernel = kernel_fields(model)
    dkey = decision_key(model, vf, mode, kernel["kernel_tag"])
    d = cache.get_decision(dkey)
    decision = Decision.from_json(d) if d else None
    if decision is not None:
        hit = cache.get_frame(frame_key(model, vf, decision.dtype, kernel["kernel_tag"]), (view.size[1], view.size[0]))
        if hit is not None:
            return Image(hit[0], decision, True)
    check = (lambda: on_progress(0)) if on_progress is not None else None  # a superseded view stops in its probe too
    res = run_job(Job(where, model, view, mode, where, decision, kernel["kernel"]), on_progress, check)
    store_result(cache, model, mode, res, "0", kernel["kernel_tag"])
    return Image(res.raw, res.decision, False)
