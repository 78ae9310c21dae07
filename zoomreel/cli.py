"""The command line: a thin layer that wires the stages and shows progress."""

from __future__ import annotations

import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Zoom videos into the fractal boundary of neural-network trainability.")
err = Console(stderr=True)
out = Console()


def _run(fn):
    try:
        from . import engine

        engine.configure()
        return fn()
    except UserError as e:
        print(e.line(), file=sys.stderr)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished frames are cached; run the same command again to resume", file=sys.stderr)
        raise typer.Exit(130)


def _scene(file: Path, size: Optional[str], precision: Optional[str]):
    from . import scene as sc

    s = sc.load(file)
    if size:
        s = s.with_video(size=sc.parse_size(size, "--size"))
    if precision:
        if precision not in sc.PRECISIONS:
            raise UserError(f"unknown precision {precision!r}", "--precision", "use auto, float32, float64 or dd")
        s = s.with_video(precision=precision)
    return s


@app.command()
def frame(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    time: str = typer.Option("0", "--time", help="seconds into the video"),
    size: Optional[str] = typer.Option(None, "--size", help="WxH, overrides [video] size"),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto | float32 | float64 | dd"),
    png: Optional[Path] = typer.Option(None, "--png", help="write the coloured frame here"),
    npy: Optional[Path] = typer.Option(None, "--npy", help="write the raw float64 measure here"),
):
    """Train and write the single frame the video shows at --time."""

    def go():
        import numpy as np

        from . import color, path, render

        s = _scene(file, size, precision)
        try:
            t = Decimal(time)
            if not t.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise UserError(f"bad time {time!r}", "--time", "give seconds as a number, e.g. 4.5") from None
        view = path.view_at(s, t)
        res = render.compute_frame(s, view, s.video.precision)
        if res.decision.warning:
            print(f"warning: {res.decision.warning}", file=sys.stderr)
        if npy:
            _write(npy, lambda f: np.save(f, res.raw))
        if png:
            from PIL import Image

            img = color.colorize(res.raw, None, s.video.palette)
            _write(png, lambda f: Image.fromarray(img).save(f, format="PNG"))
        print(render.frame_summary(t, res, s.model.steps))

    _run(go)


def _disk_error(e: OSError, p: Path) -> UserError:
    from .cache import disk_error

    return disk_error(e, p)


def _write(p: Path, writer) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            writer(f)
    except OSError as e:
        raise _disk_error(e, p) from None


def _writable(p: Path, option: str) -> None:
    import os

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        ok = os.access(p.parent, os.W_OK) and not p.is_dir()
    except OSError:
        ok = False
    if not ok:
        raise UserError("cannot write this file", str(p), f"give {option} a file path in a writable folder")


class _RichReporter:
    def __init__(self, quiet: bool, steps_per_frame: int):
        self.quiet = quiet
        self.spf = steps_per_frame
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
        )
        self.task = None
        self.done_steps = 0
        self.t0 = None
        self.skipped = 0
        self.dtype = "-"

    def start(self, total, cached):
        import time

        self.t0 = time.perf_counter()
        self.progress.start()
        self.task = self.progress.add_task("frames", total=total, info="")

    def _info(self):
        import time

        rate = self.done_steps / max(time.perf_counter() - self.t0, 1e-9)
        return f"cached {self.skipped} | {rate:.3g} px-steps/s | {self.dtype}"

    def pixel_steps(self, n):
        self.done_steps += n
        self.progress.update(self.task, info=self._info())

    def frame_done(self, k, reused, warning, dtype=None):
        self.dtype = dtype or self.dtype
        if reused:
            self.skipped += 1
        if warning and not self.quiet:
            self.progress.console.print(f"warning: frame {k}: {warning}")
        self.progress.update(self.task, advance=1, info=self._info())

    def encoding(self, total):
        self.enc = self.progress.add_task("encode", total=total, info="")

    def encoded(self, k):
        self.progress.update(self.enc, advance=1)

    def stop(self):
        self.progress.stop()


@app.command("render")
def render_cmd(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft", help="quarter size per axis, same path and timing"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder instead of outputs/"),
    force: bool = typer.Option(False, "--force", help="retrain every frame"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto | float32 | float64 | dd"),
):
    """Render the whole video (resumes from cached frames)."""

    def go():
        from . import render

        s = _scene(file, None, precision)
        plan = render.make_plan(s, draft, out_dir)
        rep = _RichReporter(quiet, plan.pixel_steps_per_frame)
        try:
            res = render.render(plan, force, rep)
        finally:
            rep.stop()
        rest = res.seconds - res.engine_seconds
        print(
            f"rendered {res.rendered}, reused {res.reused}, {res.seconds:.1f} s "
            f"(training {res.engine_seconds:.1f} s, everything else {rest:.1f} s): {res.video}"
        )

    _run(go)


@app.command("info")
def info_cmd(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft"),
    out_dir: Optional[Path] = typer.Option(None, "--out"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto | float32 | float64 | dd"),
):
    """The plan of a render and what is cached, without training anything."""

    def go():
        from . import render

        s = _scene(file, None, precision)
        d = render.info(render.make_plan(s, draft, out_dir))
        if as_json:
            print(json.dumps(d))
            return
        eta = d["estimated_seconds_remaining"]
        out.print(f"[bold]{s.title}[/bold]  {d['file']}")
        out.print(f"frames {d['frames']} ({d['duration']:g} s at {d['fps']} fps), size {d['size'][0]}x{d['size'][1]}, {d['steps']} steps")
        out.print(f"zoom: span {d['span_first']:.3g} -> {d['span_last']:.3g} ({d['decades']:.1f} decades)")
        out.print(f"cached {d['cached']}/{d['frames']}  precision {d['precision']}  mode {d['precision_mode']}")
        out.print(f"work {d['pixel_steps']:.3g} pixel-steps, {d['pixel_steps_remaining']:.3g} to go" + (f", about {eta:.0f} s at the measured rate" if eta else ""))
        out.print(f"video {d['video']}" + (" (exists)" if d["video_exists"] else ""))

    _run(go)


@app.command()
def locate(
    file: Path = typer.Argument(..., help="keyframe file (.toml): its model, and its first keyframe as the start"),
    depth: str = typer.Option("1e-6", "--depth", help="stop once the span is this small"),
    factor: int = typer.Option(10, "--factor", help="zoom factor per level"),
    size: int = typer.Option(48, "--size", help="grid per level (pixels per side)"),
):
    """Find a point on the boundary to zoom into, by zooming with the engine itself."""

    def go():
        from . import locate as loc

        s = _scene(file, None, None)
        try:
            d = Decimal(depth)
            if not d.is_finite() or d <= 0:
                raise InvalidOperation
        except InvalidOperation:
            raise UserError(f"bad depth {depth!r}", "--depth", "give a positive span, e.g. 1e-6") from None
        if factor < 2 or not 16 <= size <= 512:
            raise UserError("factor or size out of range", "--factor/--size", "use a factor >= 2 and a size of 16 to 512")
        k = s.keyframes[0]
        from .path import View

        def show(lv):
            print(f"span {float(lv.view.span):.3g}  converged {lv.converged:.0%}  {lv.dtype}  centre ({lv.view.center[0]:.25f}, {lv.view.center[1]:.25f})", flush=True)

        levels = loc.locate(s.model, View(k.center, k.span, (size, size)), d, factor, size, show)
        last = levels[-1].view
        digits = max(6, -int(last.span.adjusted()) + 4)
        print(f'center = ["{last.center[0]:.{digits}f}", "{last.center[1]:.{digits}f}"]')

    _run(go)


@app.command()
def dimension(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft", help="use the draft render's frames"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder instead of outputs/"),
    frames: Optional[int] = typer.Option(None, "--frames", help="use this many frames, evenly spread (default: every frame)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write box counts and dimension against depth to this PNG"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto | float32 | float64 | dd"),
):
    """Box-counting dimension of the boundary, frame by frame (cached frames reused)."""

    def go():
        from . import dimension as dm
        from . import render

        if frames is not None and frames < 1:
            raise UserError(f"--frames {frames} is not a positive count", "--frames", "give 1 or more, or leave it out for every frame")
        s = _scene(file, None, precision)
        plan = render.make_plan(s, draft, out_dir)
        idx = dm.frame_indices(plan.n_frames, frames)
        rep = _RichReporter(quiet or as_json, plan.pixel_steps_per_frame)
        if plot:  # fail before training, not after
            _writable(plot, "--plot")
        try:
            res = dm.measure_render(plan, idx, rep=rep)
        finally:
            rep.stop()
        if plot:
            try:
                dm.plot(res, plot)
            except OSError as e:
                raise _disk_error(e, plot) from None
        if as_json:
            print(json.dumps(res.to_json()))
            return
        W, H = res.size
        if not quiet:
            from rich.table import Table

            t = Table("frame", "time s", "depth", "span", "boundary px", "dimension", "r2")
            for f in res.frames:
                d = f"{f.fit.dimension:.3f}" if f.fit else f"skipped: {f.skipped}"
                r2 = f"{f.fit.r2:.4f}" if f.fit else ""
                t.add_row(str(f.frame), f"{f.time:g}", f"{f.depth:.2f}", f"{f.span:.3g}", str(f.boundary_pixels), d, r2)
            out.print(t)
        m = res.summary
        print(
            f"dimension {m['median']:.3f} (median of {m['fitted']} frames; quartiles {m['q1']:.3f}-{m['q3']:.3f}, "
            f"std {m['std']:.3f}) {Path(res.file).name} {W}x{H} {res.steps} steps"
            + (f"; plot {plot}" if plot else "")
        )

    _run(go)


def main():
    app()
