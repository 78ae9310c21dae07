"""The explorer's web server: a Starlette app over the training stages.

The page (``static/``) asks for views as exact decimal strings; the server
validates every request with the keyframe file's own parser
(:func:`zoomreel.scene.validate`), so a bad request gets a 4xx JSON body
with the line the CLI would print. Views are trained off the event loop by a
:class:`~.worker.Worker` (one thread, bounded queue, superseded views
dropped) and come from :func:`~.images.image_for`.

API (JSON in, JSON out):

- ``GET /api/start``: the model, first view, view size, keyframes of the file;
- ``POST /api/view``: one view trained (PNG) with its readout;
- ``POST /api/navigate``: a rectangle of the view (pixels) -> the new exact view;
- ``POST /api/locate``: zoom towards a boundary point (:mod:`zoomreel.locate`);
- ``POST /api/save``: the keyframes as a keyframe file, validated, written;
- ``POST /api/draft``: the keyframes' draft video, rendered; played from ``/drafts/``;
- ``GET /api/progress``: what the workers are doing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal, DecimalException, localcontext
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import atomic, color, overlay, path, precision, scene
from ..cache import disk_error
from ..errors import UserError
from ..model import Model
from . import images, keyframes
from .worker import Busy, Superseded, Worker

STATIC = Path(__file__).parent / "static"
MAX_SIDE = 1024  # largest view side the server trains
LOCATE_SIZE, LOCATE_LEVELS, LOCATE_FACTOR = 48, 2, 10  # one locate click: two tenfold zooms on a 48x48 grid
QUEUE = 8


@dataclass
class Explorer:
    """What the server knows: the file explored and where things go."""

    start: scene.Scene  # the file explored (or the default scene)
    size: tuple[int, int]  # the page's view size (W, H)
    save_dir: Path  # saved keyframe files go here
    out_dir: Path  # view cache and drafts


def default_scene() -> scene.Scene:
    """The default model at the paper's standard view."""
    kf = {"time": 0, "center": [Decimal("1.5"), Decimal("1.5")], "span": Decimal(9)}
    return scene.validate({"keyframe": [kf]}, "explore.toml")


def view_size(video_size: tuple[int, int], width: int) -> tuple[int, int]:
    """The page's view: ``width`` wide, the video's aspect ratio."""
    W, H = video_size
    return width, max(scene.SIZE_MIN, round(width * H / W))


# -- requests -> validated values, with the CLI's error text


def _where(where: str) -> str:
    return where.replace("keyframe[0].", "").replace("video.", "")


def _body(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data or b"null", parse_float=Decimal)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise UserError("the request body is not a JSON object", where, 'send a JSON object such as {"span": "9"}')
    return doc


def parse_view(doc: dict, where: str) -> tuple[Model, path.View, str]:
    """The model, exact view and precision mode of a request, validated as a keyframe file would be."""
    test = {
        "model": doc.get("model", {}),
        "video": {"size": doc.get("size", [256, 256]), "precision": doc.get("precision", "auto")},
        "keyframe": [{"time": 0, "center": doc.get("center"), "span": doc.get("span")}],
    }
    try:
        s = scene.validate(test, where)
    except UserError as e:
        raise UserError(e.what, _where(e.where), e.fix) from None
    W, H = s.video.size
    if W > MAX_SIDE or H > MAX_SIDE:
        raise UserError(f"size {W}x{H} is too large for the explorer", f"{where}:size", f"use at most {MAX_SIDE} pixels per side")
    k = s.keyframes[0]
    return s.model, path.View(k.center, k.span, (W, H)), s.video.precision


def check_trainable(model: Model, view: path.View, where: str) -> None:
    """Refuse, before queueing, a view the deepest arithmetic cannot train."""
    from .. import engine

    A = engine.LADDER[-1]
    hx, hy = path.hyper_axes(model, view, A)
    precision.check_representable(model, view, hx, hy, where, A)


def _fmt(d: Decimal) -> str:
    d = d.normalize()
    if d == 0:
        return "0"
    return format(d, "f") if Decimal("1e-4") <= abs(d) < Decimal("1e6") else format(d, "g")


def exact(view: path.View) -> dict:
    """A view's centre and span as decimal strings, every digit."""
    return {"center": [_fmt(c) for c in view.center], "span": _fmt(view.span)}


def _digits(d: Decimal) -> int:
    return max(0, -d.normalize().as_tuple().exponent)


def navigate(view: path.View, rect, where: str) -> path.View:
    """The view that shows ``rect`` = [x0, y0, x1, y1] (pixels of ``view``, y down) at
    ``view``'s aspect ratio: the larger of its two extents fills the view."""
    if not isinstance(rect, list) or len(rect) != 4:
        raise UserError(f"expected [x0, y0, x1, y1], got {rect!r}", f"{where}:rect", "send the rectangle in pixels of the view")
    vals = []
    for v in rect:
        if isinstance(v, bool) or not isinstance(v, (int, Decimal)) or not Decimal(v).is_finite():
            raise UserError(f"not a number: {v!r}", f"{where}:rect", "send the rectangle as four numbers")
        vals.append(Decimal(v))
    x0, y0, x1, y1 = vals
    if x1 <= x0 or y1 <= y0:
        raise UserError("the rectangle is empty", f"{where}:rect", "drag a rectangle wider and taller than zero")
    W, H = view.size
    try:
        with localcontext(prec=path.PREC):
            s = view.spacing
            f = max((x1 - x0) / W, (y1 - y0) / H)
            span = view.span * f
            span = +span.quantize(Decimal(1).scaleb(span.adjusted() - 7))  # 8 significant digits
            cx = view.center[0] + ((x0 + x1) / 2 - Decimal(W) / 2) * s
            cy = view.center[1] + (Decimal(H) / 2 - (y0 + y1) / 2) * s
            # a thousandth of the new view's pixel, or the digits the centre had
            fine = -((span / W).adjusted()) + 3
            cx, cy = (c.quantize(Decimal(1).scaleb(-max(fine, _digits(old)))) for c, old in zip((cx, cy), view.center))
    except DecimalException:  # digits beyond any precision: a rectangle no view can show
        raise UserError("the rectangle is out of range", f"{where}:rect", "drag a rectangle inside the view") from None
    return path.View((cx, cy), span, view.size)


# -- responses


def error_response(e: UserError, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": e.line(), "what": e.what, "where": e.where, "fix": e.fix}, status_code=status)


def png_data_url(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def legend(palette: str) -> dict:
    """The palette's two halves, as colour stops from slow to fast."""
    table = color.lut(palette)
    at = lambda p: "#%02x%02x%02x" % tuple(int(c) for c in table[int(round(p * (len(table) - 1)))])  # noqa: E731
    lo, hi = (1 - color.GAP) / 2, (1 + color.GAP) / 2
    return {
        "diverged": [at(p) for p in np.linspace(0.0, lo, 9)],  # slow -> fast
        "converged": [at(p) for p in np.linspace(1.0, hi, 9)],  # slow -> fast
    }


def readout(ex: Explorer, model: Model, view: path.View, img: images.Image) -> dict:
    lab = overlay.labels(model, view, ex.start.keyframes[0].span)
    d = img.decision
    return {
        **exact(view),
        "size": list(view.size),
        "image": png_data_url(img.rgb),
        "dtype": d.dtype,
        "resolved": d.resolved,
        "warning": d.warning,
        "converged": img.converged,
        "cached": img.cached,
        "axes": {"x": lab["x"], "y": lab["y"], "depth": lab["depth"]},
    }


class _DraftReporter:
    """render.Reporter hooks that feed (and may cancel through) the worker's progress."""

    def __init__(self, progress):
        self.pixel_steps = progress

    def start(self, total, cached): ...
    def frame_done(self, k, reused, warning, dtype=None): ...
    def encoding(self, total): ...
    def encoded(self, k): ...


def make_app(ex: Explorer) -> Starlette:
    ex.out_dir = Path(ex.out_dir)
    cache = images.view_cache(ex.out_dir)
    drafts_dir = ex.out_dir / "explore" / "drafts"
    workers: dict[str, Worker] = {}

    def worker(name: str) -> Worker:
        if name not in workers:
            workers[name] = Worker(name, QUEUE)
        return workers[name]

    async def run_task(name: str, lane: str, fn, total: int, label: str):
        """Answer a task's result, or the error response it ends in."""
        try:
            fut = worker(name).submit(lane, fn, total, label)
        except Busy:
            return error_response(UserError("the explorer is busy", "server", "wait for the views in progress to finish"), 503)
        try:
            return await asyncio.wrap_future(fut)
        except Superseded:
            return JSONResponse({"error": "cancelled: a newer request replaced it, or the server is stopping", "superseded": True}, status_code=409)
        except UserError as e:
            return error_response(e)
        except Exception as e:  # a bug, not the user's: the page shows it, the server goes on
            return JSONResponse({"error": f"error: {type(e).__name__}: {e} (server): please report it"}, status_code=500)

    def lane(doc: dict, kind: str) -> str:
        return f"{kind}:{doc.get('client', '')}"

    async def start(request: Request):
        s = ex.start
        k = s.keyframes[0]
        first = path.View(k.center, k.span, ex.size)
        name = f"{s.stem}-explored.toml"
        return JSONResponse({
            "title": s.title,
            "file": str(s.path) if s.path.exists() else None,
            "name": name,
            "model": keyframes.model_table(s.model),
            "size": list(ex.size),
            "max_side": MAX_SIDE,
            "precision": s.video.precision,
            "palette": s.video.palette,
            "legend": legend(s.video.palette),
            "view": exact(first),
            "keyframes": [{"time": str(kf.time), "center": [str(c) for c in kf.center], "span": str(kf.span)} for kf in s.keyframes],
            "video": {"size": list(s.video.size), "fps": s.video.fps},
        })

    async def view(request: Request):
        try:
            doc = _body(await request.body(), "view")
            model, v, mode = parse_view(doc, "view")
            check_trainable(model, v, "view")
        except UserError as e:
            return error_response(e)
        palette = ex.start.video.palette

        def job(progress):
            img = images.image_for(cache, model, v, mode, "view", progress, palette)
            return JSONResponse(readout(ex, model, v, img))

        W, H = v.size
        return await run_task("views", lane(doc, "view"), job, images.work(model, v), f"{W}x{H} view")

    async def navigate_(request: Request):
        try:
            doc = _body(await request.body(), "navigate")
            _, v, _ = parse_view(doc, "navigate")
            return JSONResponse(exact(navigate(v, doc.get("rect"), "navigate")))
        except UserError as e:
            return error_response(e)

    async def locate_(request: Request):
        try:
            doc = _body(await request.body(), "locate")
            model, v, _ = parse_view(doc, "locate")
            check_trainable(model, v, "locate")
        except UserError as e:
            return error_response(e)

        def job(progress):
            from .. import locate

            with localcontext(prec=path.PREC):
                depth = v.span / Decimal(LOCATE_FACTOR) ** LOCATE_LEVELS
            levels = locate.locate(model, v, depth, LOCATE_FACTOR, LOCATE_SIZE, lambda lv: progress(LOCATE_SIZE**2 * model.steps))
            last = levels[-1].view
            found = path.View(last.center, last.span, v.size)
            return JSONResponse({**exact(found), "levels": len(levels), "converged": levels[-1].converged})

        total = (LOCATE_LEVELS + 1) * LOCATE_SIZE**2 * model.steps
        return await run_task("views", lane(doc, "view"), job, total, "locate")

    def keyframe_scene(doc: dict, where: str) -> tuple[str, scene.Scene]:
        name = doc.get("name")
        if not isinstance(name, str) or not name.endswith(".toml") or Path(name).name != name or name.startswith("."):
            raise UserError(f"bad file name {name!r}", f"{where}:name", "give a plain file name ending in .toml, e.g. zoom.toml")
        model, _, _ = parse_view({"model": doc.get("model", {}), "center": ["0", "0"], "span": "1"}, where)
        kfs = doc.get("keyframes")
        if not isinstance(kfs, list):
            raise UserError("keyframes must be a list", f"{where}:keyframes", "add keyframes on the page")
        text = keyframes.compose(ex.start.title, model, ex.start.video, kfs)
        return text, scene.loads(text, name)

    async def save(request: Request):
        try:
            doc = _body(await request.body(), "save")
            text, s = keyframe_scene(doc, "save")
            target = ex.save_dir / s.path.name
            atomic.write_bytes(target, text.encode(), on_error=lambda e, p: disk_error(e, p.parent))
        except UserError as e:
            return error_response(e)
        return JSONResponse({"path": str(target.resolve()), "text": text, "keyframes": len(s.keyframes)})

    async def draft(request: Request):
        from .. import render

        try:
            doc = _body(await request.body(), "draft")
            text, s = keyframe_scene(doc, "draft")
            plan = render.make_plan(s, True, drafts_dir)
        except UserError as e:
            return error_response(e)

        def job(progress):
            t0 = time.perf_counter()
            res = render.render(plan, False, _DraftReporter(progress))
            rel = res.video.relative_to(drafts_dir).as_posix()
            return JSONResponse({"video": f"/drafts/{rel}?v={time.time_ns()}", "frames": plan.n_frames,
                                 "rendered": res.rendered, "seconds": time.perf_counter() - t0})

        total = plan.n_frames * plan.pixel_steps_per_frame
        return await run_task("drafts", lane(doc, "draft"), job, total, f"draft, {plan.n_frames} frames")

    async def progress(request: Request):
        return JSONResponse({name: w.progress() for name, w in workers.items()})

    async def index(request: Request):
        return FileResponse(STATIC / "index.html")

    @asynccontextmanager
    async def lifespan(app):
        yield
        for w in workers.values():
            w.close()

    drafts_dir.mkdir(parents=True, exist_ok=True)
    routes = [
        Route("/", index),
        Route("/api/start", start),
        Route("/api/view", view, methods=["POST"]),
        Route("/api/navigate", navigate_, methods=["POST"]),
        Route("/api/locate", locate_, methods=["POST"]),
        Route("/api/save", save, methods=["POST"]),
        Route("/api/draft", draft, methods=["POST"]),
        Route("/api/progress", progress),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Mount("/drafts", StaticFiles(directory=drafts_dir), name="drafts"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.workers = workers
    return app
