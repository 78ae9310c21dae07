"""Keyframe files: parse and validate a TOML file into a :class:`Scene`.

Every problem a user can fix raises :class:`UserError` naming the file, the
key and the fix. Plane coordinates are read as exact decimals.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from .errors import UserError
from .model import KINDS, NONLINEARITIES, PLANES, Model

PRECISIONS = ("auto", "float32", "float64", "dd")
PALETTES = ("spectral", "coolwarm")  # see color.py

SIZE_MIN, SIZE_MAX = 16, 8192
STEPS_MIN, STEPS_MAX = 20, 100_000
WIDTH_MIN, WIDTH_MAX = 1, 256


@dataclass(frozen=True)
class Video:
    size: tuple[int, int] = (1280, 720)
    fps: int = 30
    precision: str = "auto"
    palette: str = "spectral"
    overlay: bool = False
    quality: int = 18  # x264 CRF: lower is better


@dataclass(frozen=True)
class Keyframe:
    time: Decimal
    center: tuple[Decimal, Decimal]
    span: Decimal


@dataclass(frozen=True)
class Scene:
    path: Path
    title: str
    model: Model
    video: Video
    keyframes: tuple[Keyframe, ...]

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def duration(self) -> Decimal:
        return self.keyframes[-1].time

    @property
    def keyframes_where(self) -> str:
        """Where an error about the zoom path points: ``<file>:keyframe``."""
        return f"{self.path.name}:keyframe"

    def with_video(self, **changes) -> "Scene":
        return replace(self, video=replace(self.video, **changes))


_TOP = {"title", "model", "video", "keyframe"}
_MODEL = {"kind", "nonlinearity", "width", "dataset", "batch", "plane", "steps", "seed"}
_VIDEO = {"size", "fps", "precision", "palette", "overlay", "quality"}
_KEYFRAME = {"time", "center", "span"}


class _Reader:
    def __init__(self, path: Path):
        self.path = path
        self.name = path.name

    def fail(self, where: str, what: str, fix: str):
        raise UserError(what, f"{self.name}:{where}", fix)

    def keys(self, table: dict, allowed: set, where: str):
        for k in table:
            if k not in allowed:
                near = difflib.get_close_matches(k, sorted(allowed), n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"allowed keys: {', '.join(sorted(allowed))}"
                self.fail(f"{where}{k}", f"unknown key '{k}'", hint)

    def table(self, doc: dict, key: str) -> dict:
        v = doc.get(key, {})
        if not isinstance(v, dict):
            self.fail(key, f"'{key}' must be a table", f"write it as [{key}]")
        return v

    def number(self, v, where: str, *, integer=False, lo=None, hi=None):
        if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
            self.fail(where, f"expected a number, got {type(v).__name__} {v!r}", "write a plain number")
        if isinstance(v, str):
            if integer:
                self.fail(where, f"expected a whole number, got the string {v!r}", "remove the quotes")
            try:
                v = Decimal(v.strip())
            except Exception:
                self.fail(where, f"not a number: {v!r}", 'write a decimal number such as "2.1298"')
        d = Decimal(v)
        if not d.is_finite():
            self.fail(where, f"value is {v}", "use a finite number")
        if integer:
            if isinstance(v, Decimal):
                self.fail(where, f"expected a whole number, got {v}", "write it without a decimal point")
            d = int(v)
        if lo is not None and d < lo:
            self.fail(where, f"{v} is below the minimum {lo}", f"use a value from {lo} to {hi}")
        if hi is not None and d > hi:
            self.fail(where, f"{v} is above the maximum {hi}", f"use a value from {lo} to {hi}")
        return d

    def choice(self, v, where: str, options):
        if not isinstance(v, str) or v not in options:
            near = difflib.get_close_matches(str(v), options, n=1)
            hint = f"did you mean '{near[0]}'?" if near else "use one of " + ", ".join(f"'{o}'" for o in options)
            self.fail(where, f"unknown value {v!r}", hint)
        return v


def parse_size(text: str, where: str) -> tuple[int, int]:
    """Parse a WxH size from the command line."""
    try:
        w, h = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise UserError(f"bad size {text!r}", where, "write it as WIDTHxHEIGHT, e.g. 256x256") from None
    for v in (w, h):
        if not SIZE_MIN <= v <= SIZE_MAX:
            raise UserError(f"size {text} out of range", where, f"each side must be {SIZE_MIN} to {SIZE_MAX}")
    return w, h


def load(path: str | Path) -> Scene:
    path = Path(path)
    r = _Reader(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", str(path), "check the path to the keyframe file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read file: {e}", str(path), "check the file") from None
    try:
        doc = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        where = "toml"
        if "(at line" in msg:
            where = "line " + msg.split("(at line", 1)[1].split(",")[0].strip()
            msg = msg.split("(at line", 1)[0].strip()
        raise UserError(f"malformed TOML: {msg}", f"{path.name}:{where}", "fix the TOML syntax") from None
    return _validate(r, doc)


def _validate(r: _Reader, doc: dict) -> Scene:
    r.keys(doc, _TOP, "")
    title = doc.get("title", r.path.stem)
    if not isinstance(title, str):
        r.fail("title", "title must be a string", 'write title = "..."')

    m = r.table(doc, "model")
    r.keys(m, _MODEL, "model.")
    kind = r.choice(m.get("kind", "network"), "model.kind", KINDS)
    if kind == "mandelbrot":
        extra = sorted(set(m) - {"kind", "steps"})
        if extra:
            r.fail(f"model.{extra[0]}", f"'{extra[0]}' does not apply to the Mandelbrot set", 'a kind = "mandelbrot" model takes only steps (the iteration limit)')
    nl = r.choice(m.get("nonlinearity", "tanh"), "model.nonlinearity", NONLINEARITIES)
    width = r.number(m.get("width", 16), "model.width", integer=True, lo=WIDTH_MIN, hi=WIDTH_MAX)
    ds = m.get("dataset", Decimal("1.0"))
    if isinstance(ds, str):
        if ds != "single":
            r.fail("model.dataset", f"unknown value {ds!r}", "use a positive number or \"single\"")
    else:
        ds = float(r.number(ds, "model.dataset", lo=Decimal("1e-6"), hi=1000))
    batch = m.get("batch", "full")
    if isinstance(batch, str):
        if batch != "full":
            r.fail("model.batch", f"unknown value {batch!r}", 'use "full" or a minibatch size such as 16')
    else:
        batch = r.number(batch, "model.batch", integer=True, lo=1, hi=1_000_000)
    plane = r.choice(m.get("plane", "lr-lr"), "model.plane", PLANES)
    steps = r.number(m.get("steps", 500), "model.steps", integer=True, lo=STEPS_MIN, hi=STEPS_MAX)
    seed = r.number(m.get("seed", 0), "model.seed", integer=True, lo=0, hi=2**31 - 1)
    model = Model(kind=kind, nonlinearity=nl, width=width, dataset=ds, batch=batch, plane=plane, steps=steps, seed=seed)

    v = r.table(doc, "video")
    r.keys(v, _VIDEO, "video.")
    size = v.get("size", [1280, 720])
    if not isinstance(size, list) or len(size) != 2:
        r.fail("video.size", f"expected [width, height], got {size!r}", "write size = [1280, 720]")
    size = tuple(r.number(s, "video.size", integer=True, lo=SIZE_MIN, hi=SIZE_MAX) for s in size)
    fps = r.number(v.get("fps", 30), "video.fps", integer=True, lo=1, hi=240)
    precision = r.choice(v.get("precision", "auto"), "video.precision", PRECISIONS)
    palette = r.choice(v.get("palette", "spectral"), "video.palette", PALETTES)
    overlay = v.get("overlay", False)
    if not isinstance(overlay, bool):
        r.fail("video.overlay", f"expected true or false, got {overlay!r}", "write overlay = true")
    quality = r.number(v.get("quality", 18), "video.quality", integer=True, lo=0, hi=51)
    video = Video(size=size, fps=fps, precision=precision, palette=palette, overlay=overlay, quality=quality)

    kfs = doc.get("keyframe")
    if kfs is None or (isinstance(kfs, list) and not kfs):
        r.fail("keyframe", "no keyframes", "add at least one [[keyframe]] with time, center and span")
    if not isinstance(kfs, list) or not all(isinstance(k, dict) for k in kfs):
        r.fail("keyframe", "keyframes must be an array of tables", "write each one as [[keyframe]]")
    out = []
    for i, k in enumerate(kfs):
        w = f"keyframe[{i}]."
        r.keys(k, _KEYFRAME, w)
        for need in ("time", "center", "span"):
            if need not in k:
                r.fail(w + need, f"keyframe {i} has no '{need}'", f"add {need} = ...")
        t = r.number(k["time"], w + "time", lo=0)
        c = k["center"]
        if not isinstance(c, list) or len(c) != 2:
            r.fail(w + "center", f"expected [x, y], got {c!r}", 'write center = [1.5, 1.5] or ["2.5", "2.1298"]')
        c = tuple(r.number(cc, w + "center") for cc in c)
        span = r.number(k["span"], w + "span")
        if span <= 0:
            r.fail(w + "span", f"span must be positive, got {span}", "use a width greater than 0")
        if i == 0 and t != 0:
            r.fail(w + "time", f"the first keyframe is at {t}", "start the first keyframe at time = 0.0")
        if out and t <= out[-1].time:
            r.fail(w + "time", f"time {t} is not after the previous keyframe's {out[-1].time}", "make times strictly increasing")
        out.append(Keyframe(time=Decimal(t), center=c, span=span))
    return Scene(path=r.path, title=title, model=model, video=video, keyframes=tuple(out))
