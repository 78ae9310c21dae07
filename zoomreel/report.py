"""Reports: what a plan holds and what a frame took, for the front ends to print.

:func:`info` is ``zoomreel info``'s content (the plan and what the cache
holds, without training anything); :func:`frame_summary` is ``zoomreel
frame``'s last line.
"""

from __future__ import annotations

from decimal import Decimal

from . import preflight, pyramid
from .plan import Plan
from .precision_names import DTYPES
from .work import FrameUnits, TileUnits, ViewResult


def info(plan: Plan) -> dict:
    """The plan and what the cache holds, without training any frame (on a
    GPU, choosing the kernel may first run its check:
    :func:`zoomreel.plan.kernel_fields`).

    For the mode in effect: the frames (or tiles) to train, how many are
    cached (every record verified, as render verifies it), and the
    pixel-steps they take."""
    if plan.mode == "pyramid":
        units, ids = TileUnits.of_plan(plan), plan.tiles()
    else:
        units, ids = FrameUnits(plan), list(range(plan.n_frames))
    counts = dict.fromkeys(DTYPES, 0)
    cached, seconds, steps_done = 0, 0.0, 0
    for id in ids:
        record = units.lookup(id).record
        if record is not None:
            cached += 1
            counts[record["dtype"]] = counts.get(record["dtype"], 0) + 1
            seconds += float(record.get("seconds", 0.0))
            steps_done += int(record.get("pixel_steps", 0))
    per_unit = plan.pixel_steps_per_frame if plan.mode == "frames" else pyramid.TILE**2 * plan.scene.model.steps
    total_steps = len(ids) * per_unit
    rate = steps_done / seconds if seconds > 0 else None
    remaining = total_steps - cached * per_unit
    first, last = plan.view(0), plan.view(plan.n_frames - 1)
    d = {
        "warnings": [f"render would stop: {e.what} ({e.where}): {e.fix}" for e in preflight.plan_refusals(plan)],
        "damaged": len(units.cache.damaged),
        "file": str(plan.scene.path),
        "video": str(plan.video_path),
        "video_exists": plan.video_path.exists(),
        "draft": plan.draft,
        "mode": plan.mode,
        "frames": plan.n_frames,
        "cached": cached,
        "duration": float(plan.scene.duration),
        "fps": plan.fps,
        "size": list(plan.size),
        "steps": plan.scene.model.steps,
        "kernel": plan.kernel_label,
        "precision_mode": plan.precision,
        "precision": counts,
        "pixel_steps": total_steps,
        "pixel_steps_remaining": remaining,
        "measured_pixel_steps_per_s": rate,
        "estimated_seconds_remaining": (remaining / rate) if rate else None,
        "span_first": float(first.span),
        "span_last": float(last.span),
        "decades": float((first.span / last.span).log10()) if last.span != first.span else 0.0,
    }
    if plan.mode == "pyramid":
        levels = sorted({t.level for t in ids})
        d.update({"tiles": len(ids), "tile_size": pyramid.TILE, "levels": [levels[0], levels[-1]],
                  "cache": str(units.cache.root)})
    return d


def frame_summary(t: Decimal, res: ViewResult, model) -> str:
    """One line on a trained frame: where, what precision, how fast, which kernel."""
    from . import engine

    W, H = res.view.size
    rate = W * H * model.steps / max(res.seconds, 1e-9)
    d = res.decision
    redone = "" if d.redone is None else f" redone {d.redone:.1%}"
    return (
        f"t={t}s {res.view.describe()} size {W}x{H} {d.dtype} resolved {d.resolved:.1%}{redone} "
        f"{res.seconds:.2f} s {rate:.3g} pixel-steps/s, kernel {engine.describe_kernel(model, d.dtype)}"
    )
