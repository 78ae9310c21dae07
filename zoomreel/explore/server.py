"""The explorer's web server: a Starlette app over the training stages.

The page (``static/``) asks for views as exact decimal strings; the server
validates every request with the keyframe file's own parser
(:func:`zoomreel.scene.validate`), so a bad request gets a 4xx JSON body
with the line the CLI would print. Views are trained off the event loop by a
:class:`~.worker.Worker` (one thread, lanes in turn, superseded views
dropped), coarse to fine (:mod:`.levels`), and end in
:func:`~.images.image_for`'s picture.

Only the page of the URL the command printed gets in (:mod:`.guard`): a
random token in that URL (then a cookie), the Host header of this machine's
addresses while listening on one, and the page's own Origin on every request
that changes something. Drafts train through :mod:`.drafts`.

API (JSON in, JSON out):

- ``GET /api/start``: the model, first view, view size, keyframes of the file;
- ``POST /api/view``: the view coarse to fine, one JSON line per picture, the
  last its own with the readout;
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
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException, localcontext
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import atomic, color, overlay, path, preflight, pyramid, render, scene, work
from ..cache import disk_error
from ..errors import UserError
from ..model import Model
from ..plan import make_plan
from ..training import kernel_fields
from . import images, keyframes, levels
from .drafts import DraftReporter, draft_work
from .guard import Guard, Refused, error_body, error_response, new_token, read_json
from .worker import Busy, Superseded, Task, Worker

STATIC = Path(__file__).parent / "static"
MAX_SIDE = 1024  # largest view side the server trains
LOCATE_SIZE, LOCATE_LEVELS, LOCATE_FACTOR = 48, 2, 10  # one locate click: two tenfold zooms on a 48x48 grid
QUEUE = 8  # lanes a worker holds at once
MAX_BODY = 1_000_000  # bytes of a request body
MAX_PIXEL_STEPS = 2_000_000_000  # training one request may ask for (--max-pixel-steps)
MAX_DRAFT_FRAMES = 600  # frames of a draft (--max-draft-frames)
PICTURE_EVERY = 0.5  # seconds between two partial pictures of a view (a level's last tile always shows)
PREVIEWS = 16  # previews kept in memory


@dataclass
class Limits:
    """What one request may ask for."""

    max_pixel_steps: int = MAX_PIXEL_STEPS
    max_draft_frames: int = MAX_DRAFT_FRAMES
    max_body: int = MAX_BODY


@dataclass
class Explorer:
    """What the server knows: the file explored, where things go, who may ask."""

    start: scene.Scene  # the file explored (or the default scene)
    size: tuple[int, int]  # the page's view size (W, H)
    save_dir: Path  # saved keyframe files go here
    out_dir: Path  # view cache and drafts
    token: str = field(default_factory=lambda: new_token())
    limits: Limits = field(default_factory=Limits)
    hosts: set[str] | None = None  # Host headers accepted (None: any; set once the port is known)
    port: int | None = None  # the port listened on, once known

    @property
    def cookie(self) -> str:
        return f"zoomreel-explore-{self.port}" if self.port else "zoomreel-explore"


def default_scene() -> scene.Scene:
    """The default model at the paper's standard view."""
    kf = {"time": 0, "center": [Decimal("1.5"), Decimal("1.5")], "span": Decimal(9)}
    return scene.validate({"keyframe": [kf]}, "explore.toml")


def view_size(video_size: tuple[int, int], width: int) -> tuple[int, int]:
    """The page's view: ``width`` wide at the video's aspect ratio, each side
    within 16 .. :data:`MAX_SIDE` (a very tall or wide video gets a narrower view)."""
    W, H = video_size
    w, h = width, round(width * H / W)
    if h > MAX_SIDE:
        w, h = round(MAX_SIDE * W / H), MAX_SIDE
    return min(MAX_SIDE, max(scene.SIZE_MIN, w)), min(MAX_SIDE, max(scene.SIZE_MIN, h))


def view_work(model: Model, view: path.View) -> int:
    """Pixel-steps of every tile a view is drawn through, cached or not (its cost at most)."""
    return len(levels.chain_tiles(view)) * pyramid.TILE**2 * model.steps


def start_size(start: scene.Scene, width: int, limits: Limits) -> tuple[int, int]:
    """The page's view size: :func:`view_size`, halved until the first view fits the caps."""
    size = view_size(start.video.size, width)
    k = start.keyframes[0]
    while view_work(start.model, path.View(k.center, k.span, size)) > limits.max_pixel_steps:
        if max(size) <= scene.SIZE_MIN:
            raise UserError(
                f"the first view needs {view_work(start.model, path.View(k.center, k.span, size)):.3g} pixel-steps, "
                f"more than the explorer's limit of {limits.max_pixel_steps:.3g}",
                "--max-pixel-steps", "raise --max-pixel-steps, or explore a model with fewer steps")
        size = tuple(max(scene.SIZE_MIN, s // 2) for s in size)
    return size


# -- requests -> validated values, with the CLI's error text


def _where(where: str) -> str:
    return where.replace("keyframe[0].", "").replace("video.", "")


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
    """Refuse, before queueing, a view the deepest arithmetic the model trains
    in cannot train (the explorer's levels stop at dd's depth, or float64's
    for a model the generic step trains; perturbation goes deeper in renders
    and frames)."""
    from .. import engine

    preflight.check_view(model, view, where, engine.arithmetics_for(model)[-1])


def check_work(limits: Limits, work: int, where: str, what: str) -> None:
    """Refuse a request over the pixel-steps cap."""
    if work > limits.max_pixel_steps:
        raise UserError(f"{what} needs {work:.3g} pixel-steps, more than the explorer's limit of {limits.max_pixel_steps:.3g}",
                        where, "use fewer steps or pixels, or start zoomreel explore with a larger --max-pixel-steps")


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


def failure(e: BaseException, where: str) -> tuple[int, dict]:
    """The status and JSON body that answer an exception a request ended in."""
    if isinstance(e, Refused):
        return e.status, error_body(e.error)
    if isinstance(e, UserError):
        return 400, error_body(e)
    if isinstance(e, Superseded):
        return 409, {"error": "cancelled: a newer request replaced it, or the server is stopping", "superseded": True}
    if isinstance(e, Busy):
        return 429, error_body(UserError("the explorer is busy", where, "wait for the views in progress to finish"))
    if isinstance(e, (ValueError, ArithmeticError, RecursionError, TypeError)):  # a value no check foresaw
        return 400, error_body(UserError(f"the request cannot be served: {type(e).__name__}: {str(e)[:200]}", where,
                                         "check the values sent"))
    return 500, error_body(UserError(f"{type(e).__name__}: {str(e)[:200]}", where, "please report it"))


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


# -- who may ask


@dataclass
class State:
    explorer: Explorer
    cache: object  # the pyramid's tile cache
    drafts_dir: Path
    workers: dict[str, Worker] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # pixel-steps a second, per model, as measured
    previews: dict = field(default_factory=dict)  # (model, tiles) -> the preview's stand-ins, the latest few

    def worker(self, name: str) -> Worker:
        if name not in self.workers:
            self.workers[name] = Worker(name, QUEUE)
        return self.workers[name]

    def preview(self, model: Model, view: path.View, level: int, task: Task) -> dict:
        """:func:`.levels.preview` of a view, kept in memory (a preview is never cached on disk)."""
        key = (_model_key(model), level, pyramid.footprint(view, level))
        if key not in self.previews:
            got = levels.preview(model, view, level, lambda n: task.check())
            while len(self.previews) >= PREVIEWS:
                self.previews.pop(next(iter(self.previews)))
            self.previews[key] = got
        return self.previews[key]


def _state(request: Request) -> State:
    return request.app.state.zoomreel


def _lane(doc: dict, kind: str) -> str:
    return f"{kind}:{str(doc.get('client', ''))[:64]}"


def _model_key(model: Model) -> str:
    return json.dumps(keyframes.model_table(model), sort_keys=True, default=str)


def endpoint(where: str):
    """A handler whose every failure is a JSON answer with the error line."""

    def wrap(fn):
        async def handler(request: Request):
            try:
                return await fn(request, _state(request))
            except Exception as e:
                status, body = failure(e, where)
                return JSONResponse(body, status_code=status)

        handler.__name__ = fn.__name__
        return handler

    return wrap


async def run_task(st: State, name: str, lane: str, fn, total: int, label: str, priority: int = 0):
    """A task's result (a response), once the worker has run it."""
    task = st.worker(name).submit(lane, fn, total, label, priority)
    try:
        return await asyncio.shield(asyncio.wrap_future(task.future))
    except asyncio.CancelledError:  # the client went away
        st.worker(name).cancel_task(task)
        raise


@endpoint("index")
async def index(request: Request, st: State):
    return FileResponse(STATIC / "index.html")


@endpoint("start")
async def start(request: Request, st: State):
    ex = st.explorer
    s = ex.start
    k = s.keyframes[0]
    first = path.View(k.center, k.span, ex.size)
    return JSONResponse({
        "title": s.title,
        "file": str(s.path) if s.path.exists() else None,
        "name": f"{s.stem}-explored.toml",
        "model": keyframes.model_table(s.model),
        "size": list(ex.size),
        "max_side": MAX_SIDE,
        "max_pixel_steps": ex.limits.max_pixel_steps,
        "precision": s.video.precision,
        "palette": s.video.palette,
        "legend": legend(s.video.palette),
        "view": exact(first),
        "keyframes": [{"time": str(kf.time), "center": [str(c) for c in kf.center], "span": str(kf.span)} for kf in s.keyframes],
        "video": {"size": list(s.video.size), "fps": s.video.fps},
    })


def view_steps(st: State, model: Model, view: path.View, mode: str, task: Task, emit):
    """The steps of one view (a generator for the worker): pictures coarse to
    fine through ``emit``, then the view's own picture (returned)."""
    ex = st.explorer
    palette = ex.start.video.palette
    units = work.TileUnits(model, st.cache, mode, "view", **kernel_fields(model))
    order = levels.chain_tiles(view)
    chain = levels.chain(view)
    have: dict[int, dict] = {n: {} for n in range(chain[0] - levels.CACHED_ABOVE, chain[-1] + 1 + levels.CACHED_BELOW)}
    for n in have:
        for t in pyramid.footprint(view, n).tiles():
            got = units.read(t)
            if got is not None:
                have[n][t] = got.raw
    todo = [t for t in order if t not in have[t.level]]
    task.total = len(todo) * pyramid.TILE**2 * model.steps
    t_train = time.monotonic()
    last = [0.0]

    def show(preview: bool = False, force: bool = True) -> None:
        if not force and time.monotonic() - last[0] < PICTURE_EVERY:
            return
        rgb, whole, painted = levels.paint(view, layers(), palette)
        last[0], shown[0] = time.monotonic(), whole
        real = max((n for n in have if have[n] and all(t in have[n] for t in pyramid.footprint(view, n).tiles())), default=None)
        emit({"image": png_data_url(rgb) if painted > 0 else None, "level": real, "levels": chain,
              "tiles": len(order), "trained": sum(t in have[t.level] for t in order), "eta": task.eta(),
              "preview": preview, "final": False})

    shown = [None]  # the finest level covering the whole view, as last painted
    rough: dict = {}  # the preview's stand-ins for the coarsest level's tiles

    def layers() -> dict:
        out = dict(have)
        out[chain[0]] = {**rough, **have[chain[0]]}  # a trained tile replaces its stand-in
        return out

    show()
    yield
    if shown[0] is None:  # nothing covers the view yet: a preview of the coarsest level first
        rough.update(st.preview(model, view, chain[0], task))
        show(preview=True)
        yield
    for k, t in enumerate(todo):
        work.train_missing(units, [t], False, _Progress(task), cancel=task.check)
        have[t.level][t] = units.fetch(t, cancel=task.check).raw
        last_of_level = k + 1 == len(todo) or todo[k + 1].level != t.level
        show(force=last_of_level)
        yield
    if todo and task.done:
        st.rates[_model_key(model)] = task.done / max(1e-9, time.monotonic() - t_train)
    img = images.image_for(st.cache, model, view, mode, "view", None, palette)
    return {**readout(ex, model, view, img), "level": chain[-1], "levels": chain, "tiles": len(order),
            "trained": len(order), "eta": 0, "preview": False, "final": True, "cached": not todo}


class _Progress(work.Reporter):
    """Pixel-steps to the task (which may cancel through them)."""

    def __init__(self, task: Task):
        self.task = task

    def pixel_steps(self, n: int) -> None:
        self.task.report(n)


@endpoint("view")
async def view(request: Request, st: State):
    ex = st.explorer
    doc = await read_json(request, "view")
    model, v, mode = parse_view(doc, "view")
    check_trainable(model, v, "view")
    check_work(ex.limits, view_work(model, v), "view", f"a {v.size[0]}x{v.size[1]} view")
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    end = object()

    def emit(item) -> None:
        loop.call_soon_threadsafe(q.put_nowait, item)

    W, H = v.size
    worker = st.worker("views")
    task = worker.submit(_lane(doc, "view"), lambda task: view_steps(st, model, v, mode, task, emit), 0, f"{W}x{H} view",
                         rate=st.rates.get(_model_key(model)))
    task.future.add_done_callback(lambda f: loop.call_soon_threadsafe(q.put_nowait, end))

    async def first():
        try:
            return await q.get()
        except asyncio.CancelledError:
            worker.cancel_task(task)
            raise

    item = await first()
    if item is end:  # over before its first picture: the answer is the result or the error, as one JSON
        e = task.future.exception()
        if e is not None:
            raise e
        return JSONResponse(task.future.result())

    async def lines():
        nonlocal item
        try:
            while item is not end:
                yield json.dumps(item) + "\n"
                item = await q.get()
            e = task.future.exception()
            yield json.dumps(task.future.result() if e is None else {**failure(e, "view")[1], "status": failure(e, "view")[0]}) + "\n"
        finally:
            if not task.future.done():  # the page went away
                worker.cancel_task(task)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@endpoint("navigate")
async def navigate_(request: Request, st: State):
    doc = await read_json(request, "navigate")
    _, v, _ = parse_view(doc, "navigate")
    return JSONResponse(exact(navigate(v, doc.get("rect"), "navigate")))


@endpoint("locate")
async def locate_(request: Request, st: State):
    doc = await read_json(request, "locate")
    model, v, mode = parse_view(doc, "locate")
    check_trainable(model, v, "locate")
    with localcontext(prec=path.PREC):
        depth = v.span / Decimal(LOCATE_FACTOR) ** LOCATE_LEVELS
    check_trainable(model, path.View(v.center, depth, (LOCATE_SIZE, LOCATE_SIZE)), "locate")  # its deepest level
    total = (LOCATE_LEVELS + 1) * LOCATE_SIZE**2 * model.steps
    check_work(st.explorer.limits, total, "locate", "a locate click")

    def job(task):
        from .. import locate

        levels_ = locate.locate(model, v, depth, LOCATE_FACTOR, LOCATE_SIZE, lambda lv: task.report(LOCATE_SIZE**2 * model.steps),
                                precision=mode, cancel=task.check)
        last = levels_[-1].view
        found = path.View(last.center, last.span, v.size)
        return JSONResponse({**exact(found), "levels": len(levels_), "converged": levels_[-1].converged})

    return await run_task(st, "views", _lane(doc, "view"), job, total, "locate")


def keyframe_scene(ex: Explorer, doc: dict, where: str) -> tuple[str, scene.Scene]:
    """The page's keyframes as keyframe-file text, and that text parsed as the CLI parses it."""
    name = doc.get("name")
    if (not isinstance(name, str) or not name.endswith(".toml") or Path(name).name != name or name.startswith(".")
            or "\\" in name or len(name.encode("utf-8", "replace")) > 200):
        raise UserError(f"bad file name {name!r}", f"{where}:name", "give a plain file name ending in .toml, e.g. zoom.toml")
    model, _, _ = parse_view({"model": doc.get("model", {}), "center": ["0", "0"], "span": "1"}, where)
    kfs = doc.get("keyframes")
    if not isinstance(kfs, list):
        raise UserError("keyframes must be a list", f"{where}:keyframes", "add keyframes on the page")
    text = keyframes.compose(ex.start.title, model, ex.start.video, kfs)
    return text, scene.loads(text, name)


def write_new(target: Path, data: bytes) -> None:
    """Write ``target`` whole, only if no file of that name exists (even one made meanwhile)."""
    tmp = atomic.temp_path(target)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, target)  # fails if the name exists: never replaces
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


@endpoint("save")
async def save(request: Request, st: State):
    ex = st.explorer
    doc = await read_json(request, "save")
    text, s = keyframe_scene(ex, doc, "save")
    target = ex.save_dir / s.path.name
    overwrite = doc.get("overwrite") is True
    explored = ex.start.path.exists() and target.resolve() == ex.start.path.resolve()
    if (target.exists() or target.is_symlink()) and not overwrite:
        what = "it is the file being explored" if explored else "a file of that name exists"
        raise Refused(409, UserError(f"{what}: {target.name}", "save:name", "choose another name, or tick overwrite to replace it"))
    if (target.exists() or target.is_symlink()) and not target.is_file():
        raise Refused(409, UserError(f"{target.name} is not a regular file", "save:name", "choose another name"))
    try:
        if overwrite:
            atomic.write_bytes(target, text.encode(), on_error=lambda e, p: disk_error(e, p.parent))
        else:
            write_new(target, text.encode())
    except FileExistsError:
        raise Refused(409, UserError(f"a file of that name exists: {target.name}", "save:name",
                                     "choose another name, or tick overwrite to replace it")) from None
    except OSError as e:
        raise disk_error(e, target.parent) from None
    return JSONResponse({"path": str(target.resolve()), "text": text, "keyframes": len(s.keyframes)})


@endpoint("draft")
async def draft(request: Request, st: State):
    ex = st.explorer
    doc = await read_json(request, "draft")
    text, s = keyframe_scene(ex, doc, "draft")
    plan = make_plan(s, True, st.drafts_dir)
    if plan.n_frames > ex.limits.max_draft_frames:
        raise UserError(f"the draft would have {plan.n_frames} frames, more than the explorer's limit of {ex.limits.max_draft_frames}",
                        "draft", "shorten the keyframes' times, or start zoomreel explore with a larger --max-draft-frames")
    total = draft_work(plan)
    check_work(ex.limits, total, "draft", f"a draft of {plan.n_frames} frames")

    def job(task):
        t0 = time.perf_counter()
        res = render.render(plan, False, DraftReporter(task), cancel=task.check)
        rel = res.video.relative_to(st.drafts_dir).as_posix()
        return JSONResponse({"video": f"/drafts/{rel}?v={time.time_ns()}", "frames": plan.n_frames,
                             "rendered": res.rendered, "unit": res.unit, "seconds": time.perf_counter() - t0})

    return await run_task(st, "drafts", _lane(doc, "draft"), job, total, f"draft, {plan.n_frames} frames")


@endpoint("progress")
async def progress(request: Request, st: State):
    return JSONResponse({name: w.progress() for name, w in st.workers.items()})


def prefetch(st: State) -> None:
    """Make the first view's preview (and warm the compiled programs for it)
    before the page asks: the page's first picture is then at once. Behind
    any request of a page."""
    ex = st.explorer
    s = ex.start
    k = s.keyframes[0]
    v = path.View(k.center, k.span, ex.size)

    def job(task):
        st.preview(s.model, v, levels.chain(v)[0], task)

    try:
        check_trainable(s.model, v, "view")
    except UserError:
        return  # the page shows why
    st.worker("views").submit("prefetch", job, 0, "first view", priority=1)


async def _http_error(request: Request, exc: HTTPException):
    return error_response(UserError(f"{exc.status_code} {exc.detail}", request.url.path[:100], "see docs/explore.md for the API"),
                          exc.status_code)


def make_app(ex: Explorer) -> Starlette:
    """The explorer's ASGI app, behind its :class:`Guard`."""
    ex.out_dir = Path(ex.out_dir)
    drafts_dir = ex.out_dir / "explore" / "drafts"
    drafts_dir.mkdir(parents=True, exist_ok=True)
    st = State(ex, images.view_cache(ex.out_dir), drafts_dir)

    @asynccontextmanager
    async def lifespan(app):
        yield
        for w in st.workers.values():
            w.close(30)

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
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error},
                    middleware=[Middleware(Guard, ex=ex)])
    app.state.zoomreel = st
    app.state.explorer = ex
    app.state.workers = st.workers
    return app
