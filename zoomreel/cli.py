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

from . import interrupt
from .errors import UserError, literal, printable
from .precisions import PRECISIONS, spelled

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Zoom videos into the fractal boundary of neural-network trainability.")
err = Console(stderr=True)
out = Console()


def _run(fn):
    try:
        with interrupt.deferred():  # a Ctrl-C during imports and JAX's start-up waits for their end
            import jax

            from . import engine

            engine.configure()
            jax.devices()
        interrupt.arm()
        result = fn()
        interrupt.disarm()
        interrupt.check()  # one that something swallowed
        return result
    except UserError as e:
        interrupt.disarm()
        print(printable(e.line()), file=sys.stderr)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        interrupt.disarm()
        print(interrupt.MESSAGE, file=sys.stderr)
        raise typer.Exit(130)


RAY_HELP = "train on Ray: alone, a local Ray runtime; or an address: auto, host:port, ray://host:10001"


def _executor(ray: Optional[str]):
    """Who trains: this process, or Ray (``--ray [ADDRESS]``)."""
    if ray is None:
        return None
    from .ray_executor import RayExecutor

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


def _ray_argv(argv: list[str]) -> list[str]:
    """``--ray`` with no address (last, or before another option or the keyframe file) means ``--ray local``."""
    out = []
    for i, a in enumerate(argv):
        out.append(a)
        if a == "--ray":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is None or nxt.startswith("-") or nxt.endswith(".toml") or Path(nxt).is_file():
                out.append("local")
    return out


def _scene(file: Path, size: Optional[str], precision: Optional[str], mode: Optional[str] = None):
    from . import scene as sc

    s = sc.load(file)
    if size:
        s = s.with_video(size=sc.parse_size(size, "--size"))
    if precision:
        if precision not in sc.PRECISIONS:
            raise UserError(f"unknown precision {precision!r}", "--precision", f"use {spelled()}")
        s = s.with_video(precision=precision)
    if mode:
        if mode not in sc.MODES:
            raise UserError(f"unknown mode {mode!r}", "--mode", "use frames or pyramid")
        s = s.with_video(mode=mode)
    return s


MODE_HELP = "frames (each pixel trained at its own centre) | pyramid (composed from shared tiles); overrides [video] mode"


@app.command()
def frame(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    time: str = typer.Option("0", "--time", help="seconds into the video"),
    size: Optional[str] = typer.Option(None, "--size", help="WxH, overrides [video] size"),
    precision: Optional[str] = typer.Option(None, "--precision", help=" | ".join(PRECISIONS)),
    png: Optional[Path] = typer.Option(None, "--png", help="write the coloured frame here"),
    npy: Optional[Path] = typer.Option(None, "--npy", help="write the raw float64 measure here (pyramid: the converged fraction per pixel)"),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="pyramid mode: the output folder whose pyramid/ caches the tiles (default outputs/)"),
):
    """Train and write the single frame the video shows at --time."""

    def go():
        import numpy as np

        from . import color, path, render

        s = _scene(file, size, precision, mode)
        try:
            t = Decimal(time)
            if not t.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise UserError(f"bad time {time!r}", "--time", "give seconds as a number, e.g. 4.5") from None
        view = path.view_at(s, t)
        if npy:  # fail before training, not after
            _writable(npy, "--npy")
        if png:
            _writable(png, "--png")
        if s.video.mode == "pyramid":
            return _pyramid_frame(s, t, out_dir, png, npy)
        res = render.compute_frame(s, view, s.video.precision)
        if res.decision.warning:
            print(printable(f"warning: {res.decision.warning}"), file=sys.stderr)
        if npy:
            _write(npy, lambda f: np.save(f, res.raw))
        if png:
            from PIL import Image

            img = color.colorize(res.raw, None, s.video.palette)
            _write(png, lambda f: Image.fromarray(img).save(f, format="PNG"))
        print(printable(render.frame_summary(t, res, s.model)), file=_summary_stream(png, npy))

    _run(go)


def _summary_stream(*outputs: Optional[Path]):
    """Where a summary line goes: stderr when a file is written to stdout itself."""
    from . import atomic

    return sys.stderr if any(p is not None and atomic.is_stdout(p) for p in outputs) else sys.stdout


def _pyramid_frame(s, t: Decimal, out_dir: Optional[Path], png: Optional[Path], npy: Optional[Path]) -> None:
    import time as clock

    import numpy as np

    from . import render

    t0 = clock.perf_counter()
    plan = render.single_frame_plan(s, t, out_dir)
    units, trained = render.train_tiles(plan, [0], False, render.Reporter())
    rgb, frac, _ = render.pyramid_frame(plan, 0, render.TileReader(units))
    if npy:
        _write(npy, lambda f: np.save(f, frac))
    if png:
        from PIL import Image

        _write(png, lambda f: Image.fromarray(rgb).save(f, format="PNG"))
    fp = plan.frame_plan(0)
    W, H = plan.size
    print(
        f"t={t}s {plan.view(0).describe()} size {W}x{H} pyramid level {fp.fine.level}"
        + (f" blended {fp.blend:.2f} with level {fp.coarse.level}" if fp.coarse is not None else "")
        + f", {len(plan.tiles([0]))} tiles ({trained} trained) in {printable(units.cache.root)}, {clock.perf_counter() - t0:.2f} s"
        + f", kernel {plan.kernel_label}",
        file=_summary_stream(png, npy),
    )


def _disk_error(e: OSError, p: Path) -> UserError:
    from .cache import disk_error

    return disk_error(e, p)


def _write(p: Path, writer) -> None:
    """``writer(f)`` into ``p`` whole or not at all (into a pipe or device as it is: zoomreel.atomic)."""
    import io

    from . import atomic

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _disk_error(e, p) from None
    buf = io.BytesIO()  # encoded in memory first: a pipe cannot seek, as NumPy's writer would
    writer(buf)
    atomic.write_bytes(p, buf.getvalue(), on_error=_disk_error)


def _writable(p: Path, option: str) -> None:
    from . import atomic

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        ok = atomic.can_write(p)
    except OSError:
        ok = False
    if not ok:
        raise UserError("cannot write this file", str(p), f"give {option} a file path in a writable folder")


class _RichReporter:
    def __init__(self, quiet: bool, steps_per_frame: int, noun: str = "frames"):
        self.quiet = quiet
        self.noun = noun
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
        self.task = self.progress.add_task(self.noun, total=total, info="")

    def _info(self):
        import time

        rate = self.done_steps / max(time.perf_counter() - self.t0, 1e-9)
        return f"cached {self.skipped} | {rate:.3g} px-steps/s | {self.dtype}"

    def pixel_steps(self, n):
        interrupt.check()
        self.done_steps += n
        self.progress.update(self.task, info=self._info())

    def frame_done(self, k, reused, warning, dtype=None):
        interrupt.check()
        self.dtype = dtype or self.dtype
        if reused:
            self.skipped += 1
        if warning and not self.quiet:
            name = k.name() if hasattr(k, "name") else f"frame {k}"
            self.progress.console.print(literal(f"warning: {name}: {warning}"))
        self.progress.update(self.task, advance=1, info=self._info())

    def encoding(self, total):
        self.enc = self.progress.add_task("encode", total=total, info="")

    def encoded(self, k):
        interrupt.check()
        self.progress.update(self.enc, advance=1)

    def stop(self):
        self.progress.stop()


@app.command("render")
def render_cmd(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft", help="quarter size per axis, same path and timing"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder instead of outputs/"),
    force: bool = typer.Option(False, "--force", help="retrain every frame (pyramid: every tile this video reads)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    precision: Optional[str] = typer.Option(None, "--precision", help=" | ".join(PRECISIONS)),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP),
):
    """Render the whole video (resumes from cached frames or tiles)."""

    def go():
        from . import render

        s = _scene(file, None, precision, mode)
        plan = render.make_plan(s, draft, out_dir)
        executor = _executor(ray)
        rep = _RichReporter(quiet, plan.pixel_steps_per_frame, "tiles" if plan.video_mode == "pyramid" else "frames")
        try:
            res = _train_with(executor, lambda ex: render.render(plan, force, rep, ex))
        finally:
            rep.stop()
        rest = res.seconds - res.engine_seconds
        damaged = f", {res.damaged} cache records failed verification and were redone" if res.damaged else ""
        print(printable(
            f"rendered {res.rendered}, reused {res.reused}" + (" tiles" if res.unit == "tiles" else "") + f"{damaged}, {res.seconds:.1f} s "
            f"(training {res.engine_seconds:.1f} s, everything else {rest:.1f} s): {res.video}"
        ))

    _run(go)


@app.command("info")
def info_cmd(
    file: Path = typer.Argument(..., help="keyframe file (.toml)"),
    draft: bool = typer.Option(False, "--draft"),
    out_dir: Optional[Path] = typer.Option(None, "--out"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    precision: Optional[str] = typer.Option(None, "--precision", help=" | ".join(PRECISIONS)),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP),
):
    """The plan of a render and what is cached, without training anything."""

    def go():
        from . import render

        s = _scene(file, None, precision, mode)
        d = render.info(render.make_plan(s, draft, out_dir))
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

    _run(go)


@app.command()
def locate(
    file: Path = typer.Argument(..., help="keyframe file (.toml): its model, and its first keyframe as the start"),
    depth: str = typer.Option("1e-6", "--depth", help="stop once the span is this small"),
    factor: int = typer.Option(10, "--factor", help="zoom factor per level"),
    size: int = typer.Option(48, "--size", help="grid per level (pixels per side)"),
    rule: str = typer.Option("balanced", "--rule", help="balanced (half converged around it) | busiest (the most boundary around it)"),
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
        if rule not in loc.RULES:
            raise UserError(f"unknown rule {rule!r}", "--rule", "use " + " or ".join(loc.RULES))
        if factor < 2 or not 16 <= size <= 512:
            raise UserError("factor or size out of range", "--factor/--size", "use a factor >= 2 and a size of 16 to 512")
        k = s.keyframes[0]
        loc.check_depth(s.model, k.center, d, size)
        from .path import View

        def places(view):  # decimals enough to place the centre within a ten-thousandth of the span
            return max(6, -int(view.span.adjusted()) + 4)

        def show(lv):
            p = places(lv.view)
            print(f"span {float(lv.view.span):.3g}  converged {lv.converged:.0%}  {lv.dtype} resolved {lv.resolved:.1%}  "
                  f"centre ({lv.view.center[0]:.{p}f}, {lv.view.center[1]:.{p}f})", flush=True)

        levels = loc.locate(s.model, View(k.center, k.span, (size, size)), d, factor, size, show, rule)
        last = levels[-1].view
        p = places(last)
        print(f'center = ["{last.center[0]:.{p}f}", "{last.center[1]:.{p}f}"]')

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
    precision: Optional[str] = typer.Option(None, "--precision", help=" | ".join(PRECISIONS)),
    mode: Optional[str] = typer.Option(None, "--mode", help=MODE_HELP + "; pyramid fits each level once"),
    estimator: str = typer.Option("fit", "--estimator", help="fit (least squares over powers of two) | paper (the paper's median of local slopes)"),
    levels: bool = typer.Option(False, "--levels", help="measure the paper's sequence instead of the video: one frame per 2x level, centred on the last keyframe, from a span of 6 down"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP),
):
    """Box-counting dimension of the boundary, frame by frame (cached frames reused)."""

    def go():
        from . import dimension as dm
        from . import render

        if frames is not None and frames < 1:
            raise UserError(f"--frames {frames} is not a positive count", "--frames", "give 1 or more, or leave it out for every frame")
        if estimator not in dm.ESTIMATORS:
            raise UserError(f"unknown estimator {estimator!r}", "--estimator", "use " + " or ".join(dm.ESTIMATORS))
        s = _scene(file, None, precision, mode)
        plan = render.make_plan(s, draft, out_dir)
        if levels:
            plan = dm.levels_plan(plan)
        idx = dm.frame_indices(plan.n_frames, frames)
        if plot:  # fail before training, not after
            _writable(plot, "--plot")
        executor = _executor(ray)
        rep = _RichReporter(quiet or as_json, plan.pixel_steps_per_frame, "tiles" if plan.video_mode == "pyramid" else "frames")
        try:
            res = _train_with(executor, lambda ex: dm.measure_render(plan, idx, rep=rep, executor=ex, estimator=estimator))
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
                r2 = f"{f.fit.r2:.4f}" if isinstance(f.fit, dm.Fit) else ""
                t.add_row(str(f.frame), f"{f.time:g}", f"{f.depth:.2f}", f"{f.span:.3g}", str(f.boundary_pixels), d, r2)
            out.print(t)
        m = res.summary
        how = "median of all local slopes" if estimator == "paper" else "median"
        print(printable(
            f"dimension {m['dimension']:.3f} ({how} of {m['fitted']} frames; frame quartiles {m['q1']:.3f}-{m['q3']:.3f}, "
            f"std {m['std']:.3f}) {Path(res.file).name} {W}x{H} {res.steps} steps"
            + (f"; plot {plot}" if plot else "")
        ))

    _run(go)


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
        from . import explore as ex

        ex.serve(file, host, port, not no_browser, size, out_dir, max_pixel_steps, max_draft_frames)

    _run(go)


def main():
    interrupt.install()  # when started as zoomreel.cli:main
    sys.argv[1:] = _ray_argv(sys.argv[1:])
    app()
