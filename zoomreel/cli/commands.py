"""The commands: each parses its options, calls the stages, prints the result."""

from __future__ import annotations

import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import app, run
from ..errors import UserError, literal, printable
from ..precision_names import PRECISIONS
from .progress import PixelProgress, WorkProgress

out = Console()

# help texts go through rich: square brackets are escaped so that "[video]" shows
RAY_HELP = escape("train on Ray: local (a Ray runtime started here, over this machine's cores and GPUs), "
                  "or a cluster's address: auto, host:port, ray://host:10001")
MODE_HELP = escape("frames (each pixel trained at its own centre) | pyramid (composed from shared tiles); "
                   "overrides [video] mode")
SIZE_HELP = escape("WxH, overrides [video] size")
PRECISION_HELP = escape(" | ".join(PRECISIONS) + "; overrides [video] precision")


def ray_option():
    return typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP)


def _scene(file: Path, size: Optional[str] = None, precision: Optional[str] = None, mode: Optional[str] = None):
    from .. import scene

    return scene.with_overrides(scene.load(file), size, precision, mode)


def _executor(ray: Optional[str]):
    """Who trains: this process (None), or Ray (``--ray local`` or ``--ray ADDRESS``)."""
    if ray is None:
        return None
    from ..ray_executor import RayExecutor

    return RayExecutor(None if ray == "local" else ray)


def _train_with(executor, fn):
    """Run ``fn(executor)``; leave the cluster after, and print its summary."""
    try:
        res = fn(executor)
    finally:
        if executor is not None:
            executor.close()
    if executor is not None:
        for line in executor.summary():
            print(printable(line), file=sys.stderr)
    return res


def _disk_error(e: OSError, p: Path) -> UserError:
    from ..cache import disk_error

    return disk_error(e, p)


def _write(p: Path, writer) -> None:
    """``writer(f)`` into ``p`` whole or not at all (into a pipe or device as it is: zoomreel.atomic)."""
    import io

    from .. import atomic

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _disk_error(e, p) from None
    buf = io.BytesIO()  # encoded in memory first: a pipe cannot seek, as NumPy's writer would
    writer(buf)
    atomic.write_bytes(p, buf.getvalue(), on_error=_disk_error)


def _summary_stream(*outputs: Optional[Path]):
    """Where a summary line goes: stderr when a file is written to stdout itself."""
    from .. import atomic

    return sys.stderr if any(p is not None and atomic.is_stdout(p) for p in outputs) else sys.stdout


def _writable(p: Path, option: str) -> None:
    from .. import atomic

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        ok = atomic.can_write(p)
    except OSError:
        ok = False
    if not ok:
        raise UserError("cannot write this file", str(p), f"give {option} a file path in a writable folder")


def _decimal(text: str, option: str, what: str, example: str, positive: bool = False) -> Decimal:
    try:
        d = Decimal(text)
        if not d.is_finite() or (positive and d <= 0):
            raise InvalidOperation
    except InvalidOperation:
        raise UserError(f"bad {what} {text!r}", option, f"give {example}") from None
    return d


def _save_png(p: Path, rgb) -> None:
    from PIL import Image

    _write(p, lambda f: Image.fromarray(rgb).save(f, format="PNG"))


@app.command()
def frame(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    time: str = typer.Option("0", "--time", help="seconds into the video"),
    size: Optional[str] = typer.Option(None, "--size", help=SIZE_HELP),
    draft: bool = typer.Option(False, "--draft", help="quarter size per axis, as render --draft"),
    precision: Optional[str] = typer.Option(None, "--precision", help=PRECISION_HELP),
    png: Optional[Path] = typer.Option(None, "--png", help="write the coloured frame here"),
    npy: Optional[Path] = typer.Option(None, "--npy", help="write the raw float64 measure here (pyramid: the converged fraction per pixel)"),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="pyramid mode: the output folder whose pyramid/ caches the tiles (default outputs/)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
):
    """Train and write the single frame the video shows at --time."""

    def go():
        import numpy as np

        from .. import color, plan, preflight, report, work

        s = _scene(file, size, precision, mode)
        t = _decimal(time, "--time", "time", "seconds as a number, e.g. 4.5")
        p = plan.single_frame(s, t, draft, out_dir)
        if npy:  # fail before training, not after
            _writable(npy, "--npy")
        if png:
            _writable(png, "--png")
        problems = preflight.plan_refusals(p)
        if problems:
            raise problems[0]
        if p.mode == "pyramid":
            return _pyramid_frame(p, t, png, npy, quiet)
        bar = PixelProgress(quiet, p.pixel_steps_per_frame)
        try:
            res = work.train_view(s.model, p.view(0), s.video.precision, s.keyframes_where, on_progress=bar.advance)
        finally:
            bar.stop()
        if res.decision.warning:
            print(printable(f"warning: {res.decision.warning}"), file=sys.stderr)
        if npy:
            _write(npy, lambda f: np.save(f, res.raw))
        if png:
            _save_png(png, color.colorize(res.raw, None, s.video.palette))
        print(printable(report.frame_summary(t, res, s.model)), file=_summary_stream(png, npy))

    run(go)


def _pyramid_frame(p, t: Decimal, png: Optional[Path], npy: Optional[Path], quiet: bool) -> None:
    import time as clock

    import numpy as np

    from .. import render, work

    t0 = clock.perf_counter()
    rep = WorkProgress(quiet, "tiles")
    try:
        tiles = work.train_tiles(p, [0], False, rep)
        got = render.pyramid_frame(p, 0, work.TileReader(tiles.units))
    finally:
        rep.stop()
    if npy:
        _write(npy, lambda f: np.save(f, got.converged))
    if png:
        _save_png(png, got.rgb)
    fp = p.frame_plan(0)
    W, H = p.size
    print(
        f"t={t}s {p.view(0).describe()} size {W}x{H} pyramid level {fp.fine.level}"
        + (f" blended {fp.blend:.2f} with level {fp.coarse.level}" if fp.coarse is not None else "")
        + f", {len(p.tiles([0]))} tiles ({tiles.trained} trained) in {printable(tiles.units.cache.root)}, {clock.perf_counter() - t0:.2f} s"
        + f", kernel {p.kernel_label}",
        file=_summary_stream(png, npy),
    )


@app.command("render")
def render_cmd(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft", help="quarter size per axis, same path and timing"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder instead of outputs/"),
    force: bool = typer.Option(False, "--force", help="retrain every frame (pyramid: every tile this video reads)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    precision: Optional[str] = typer.Option(None, "--precision", help=PRECISION_HELP),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP),
    ray: Optional[str] = ray_option(),
):
    """Render the whole video (resumes from cached frames or tiles)."""

    def go():
        from .. import plan, render

        p = plan.make_plan(_scene(file, None, precision, mode), draft, out_dir)
        executor = _executor(ray)
        rep = WorkProgress(quiet, p.unit)
        try:
            res = _train_with(executor, lambda ex: render.render(p, force, rep, ex))
        finally:
            rep.stop()
        rest = res.seconds - res.engine_seconds
        damaged = f", {res.damaged} cache records failed verification and were redone" if res.damaged else ""
        print(printable(
            f"rendered {res.rendered}, reused {res.reused}" + (" tiles" if res.unit == "tiles" else "") + f"{damaged}, {res.seconds:.1f} s "
            f"(training {res.engine_seconds:.1f} s, everything else {rest:.1f} s): {res.video}"
        ))

    run(go)


@app.command("info")
def info_cmd(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft"),
    out_dir: Optional[Path] = typer.Option(None, "--out"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    precision: Optional[str] = typer.Option(None, "--precision", help=PRECISION_HELP),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP),
):
    """The plan of a render and what is cached, without training anything."""

    def go():
        from .. import plan, report

        s = _scene(file, None, precision, mode)
        d = report.info(plan.make_plan(s, draft, out_dir))
        if as_json:
            print(json.dumps(d))
            return
        eta = d["estimated_seconds_remaining"]
        for w in d["warnings"]:
            print(printable(f"warning: {w}"), file=sys.stderr)
        out.print(f"[bold]{literal(s.title)}[/bold]  {literal(d['file'])}", soft_wrap=True)
        out.print(f"frames {d['frames']} ({d['duration']:g} s at {d['fps']} fps), size {d['size'][0]}x{d['size'][1]}, {d['steps']} steps, kernel {d['kernel']}")
        out.print(f"zoom: span {d['span_first']:.3g} -> {d['span_last']:.3g} ({d['decades']:.1f} decades)")
        damaged = f"  ({d['damaged']} records failed verification; render redoes them)" if d["damaged"] else ""
        if d["mode"] == "pyramid":
            out.print(f"mode pyramid: {d['tiles']} tiles of {d['tile_size']}x{d['tile_size']}, levels {d['levels'][0]}..{d['levels'][1]}, in {printable(d['cache'])}", markup=False, soft_wrap=True)
        n = d["tiles"] if d["mode"] == "pyramid" else d["frames"]
        out.print(f"cached {d['cached']}/{n} {'tiles' if d['mode'] == 'pyramid' else 'frames'}  precision {d['precision']}  mode {d['precision_mode']}" + damaged, markup=False, soft_wrap=True)
        out.print(f"work {d['pixel_steps']:.3g} pixel-steps, {d['pixel_steps_remaining']:.3g} to go" + (f", about {eta:.0f} s at the measured rate" if eta else ""))
        out.print(printable(f"video {d['video']}") + (" (exists)" if d["video_exists"] else ""), markup=False, soft_wrap=True)

    run(go)


@app.command()
def locate(
    file: Path = typer.Argument(..., help="keyframe file (.toml): its model, and its first keyframe as the start"),
    depth: str = typer.Option("1e-6", "--depth", help="stop once the span is this small"),
    factor: int = typer.Option(10, "--factor", help="zoom factor per level"),
    size: int = typer.Option(48, "--size", help="grid per level (pixels per side)"),
    rule: str = typer.Option("balanced", "--rule", help="balanced (half converged around it) | busiest (the most boundary around it)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="cache the levels under this folder instead of outputs/"),
    ray: Optional[str] = ray_option(),
):
    """Find a point on the boundary to zoom into, by zooming with the engine itself."""

    def go():
        from .. import locate as loc
        from .. import preflight
        from ..view import View
        from ..work import scene_cache

        s = _scene(file)
        d = _decimal(depth, "--depth", "depth", "a positive span, e.g. 1e-6", positive=True)
        if rule not in loc.RULES:
            raise UserError(f"unknown rule {rule!r}", "--rule", "use " + " or ".join(loc.RULES))
        if factor < 2 or not 16 <= size <= 512:
            raise UserError("factor or size out of range", "--factor/--size", "use a factor >= 2 and a size of 16 to 512")
        k = s.keyframes[0]
        start = View(k.center, k.span, (size, size))
        preflight.check_view(s.model, View(k.center, d, (size, size)), "--depth")  # the deepest level, before any training

        def show(lv):
            p = loc.places(lv.view)
            print(f"span {float(lv.view.span):.3g}  converged {lv.converged:.0%}  {lv.dtype} resolved {lv.resolved:.1%}  "
                  f"centre ({lv.view.center[0]:.{p}f}, {lv.view.center[1]:.{p}f})", flush=True)

        levels = _train_with(_executor(ray), lambda ex: loc.locate(
            s.model, start, d, factor, size, show, rule, s.video.precision, where=s.keyframes_where,
            cache=scene_cache(out_dir, s.stem), executor=ex))
        last = levels[-1].view
        p = loc.places(last)
        print(f'center = ["{last.center[0]:.{p}f}", "{last.center[1]:.{p}f}"]')

    run(go)


@app.command()
def dimension(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft", help="use the draft render's frames"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder instead of outputs/"),
    frames: Optional[int] = typer.Option(None, "--frames", help="use this many frames, evenly spread (default: every frame)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write box counts and dimension against depth to this PNG"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    precision: Optional[str] = typer.Option(None, "--precision", help=PRECISION_HELP),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP + "; pyramid fits each level once"),
    estimator: str = typer.Option("fit", "--estimator", help="fit (least squares over powers of two) | paper (the paper's median of local slopes)"),
    levels: bool = typer.Option(False, "--levels", help="measure the paper's sequence instead of the video: one frame per 2x level, centred on the last keyframe, from a span of 6 down"),
    ray: Optional[str] = ray_option(),
):
    """Box-counting dimension of the boundary, frame by frame (cached frames reused)."""

    def go():
        from .. import dimension as dm
        from .. import plan

        if frames is not None and frames < 1:
            raise UserError(f"--frames {frames} is not a positive count", "--frames", "give 1 or more, or leave it out for every frame")
        if estimator not in dm.ESTIMATORS:
            raise UserError(f"unknown estimator {estimator!r}", "--estimator", "use " + " or ".join(dm.ESTIMATORS))
        s = _scene(file, None, precision, mode)
        p = plan.make_plan(s, draft, out_dir)
        if levels:
            p = dm.levels_plan(p)
        idx = dm.frame_indices(p.n_frames, frames)
        if plot:  # fail before training, not after
            _writable(plot, "--plot")
        executor = _executor(ray)
        rep = WorkProgress(quiet or as_json, p.unit)
        try:
            res = _train_with(executor, lambda ex: dm.measure_render(p, idx, rep=rep, executor=ex, estimator=estimator))
        finally:
            rep.stop()
        if plot:
            try:
                dm.plot(res, plot)
            except OSError as e:
                raise _disk_error(e, plot) from None
        stream = _summary_stream(plot)  # stderr when the plot itself goes to stdout
        if as_json:
            print(json.dumps(res.to_json()), file=stream)
            return
        W, H = res.size
        if not quiet:
            from rich.table import Table

            t = Table("frame", "time s", "depth", "span", "boundary px", "dimension", "r2")
            for f in res.frames:
                d = f"{f.fit.dimension:.3f}" if f.fit else f"skipped: {f.skipped}"
                r2 = f"{f.fit.r2:.4f}" if isinstance(f.fit, dm.Fit) else ""
                t.add_row(str(f.frame), f"{f.time:g}", f"{f.depth:.2f}", f"{f.span:.3g}", str(f.boundary_pixels), d, r2)
            Console(file=stream).print(t)
        m = res.summary
        how = "median of all local slopes" if estimator == "paper" else "median"
        print(printable(
            f"dimension {m['dimension']:.3f} ({how} of {m['fitted']} frames; frame quartiles {m['q1']:.3f}-{m['q3']:.3f}, "
            f"std {m['std']:.3f}) {Path(res.file).name} {W}x{H} {res.steps} steps"
            + (f"; plot {plot}" if plot else "")
        ), file=stream)

    run(go)


@app.command()
def explore(
    file: Optional[Path] = typer.Argument(None, help="keyframe file (.toml): its model, first view and keyframes (default: the default model)"),
    port: int = typer.Option(8765, "--port", help="port to listen on (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (default: this machine only)"),
    no_browser: bool = typer.Option(False, "--no-browser", help="only print the URL"),
    size: int = typer.Option(256, "--size", help="view width in pixels (the height follows the file's video size)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="view cache and drafts under this folder instead of outputs/"),
    max_pixel_steps: float = typer.Option(2e9, "--max-pixel-steps", help="most pixel-steps one request (a view, a locate, a draft) may train"),
    max_draft_frames: int = typer.Option(600, "--max-draft-frames", help="most frames a draft may have"),
):
    """Explore the plane in the browser: zoom, add keyframes, save them, watch a draft."""

    def go():
        from .. import explore as ex

        ex.serve(file, host, port, not no_browser, size, out_dir, max_pixel_steps, max_draft_frames)

    run(go)
