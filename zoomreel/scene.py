"""Keyframe files: parse and validate a TOML file into a :class:`Scene`.

Every problem a user can fix raises :class:`UserError` naming the file, the
key and the fix. Plane coordinates are read as exact decimals.
"""

from __future__ import annotations

import difflib
import re
import sys
import tomllib
import unicodedata
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from .color import DEFAULT_PALETTE, PALETTE_NAMES as PALETTES
from . import preflight
from .errors import UserError, shown
from . import kinds
from .kinds import KINDS
from .model import Model
from .path import frame_count
from .precision_names import AUTO, PRECISIONS

MODES = ("frames", "pyramid")  # frames: each trained at its own pixels; pyramid: composed from shared tiles

SIZE_MIN, SIZE_MAX = 16, 8192
STEPS_MIN, STEPS_MAX = 20, 100_000
WIDTH_MIN, WIDTH_MAX = 1, 256
# A path is at most an hour, and a video at most this many frames: past
# that, planning alone (one exact view per frame) would take minutes.
TIME_MAX = 3600
FRAMES_MAX = 100_000
# The plane float64 can hold: on log axes 10**x must be a positive finite
# float64, on linear axes x itself. Spans below SPAN_MIN leave neighbouring
# pixels equal in float64 at any size and place.
SPAN_MIN = Decimal("1e-324")
_COARSE = Decimal("1e400")  # beyond this no check needs exact arithmetic
# Every number in a keyframe file is 0 or has a magnitude of at least
# 1e-EXP_MAX: far below anything drawable (spans stop at SPAN_MIN), and far
# enough above Decimal's smallest exponent that the path's exact arithmetic
# (differences and quotients of times) never underflows. The large side is
# every key's own range (times, counts) or the plane's (centres and spans, _COARSE).
EXP_MAX = 1000

# The range of each bounded key (keyframe times: every keyframe's).
RANGES = {
    "model.width": (WIDTH_MIN, WIDTH_MAX),
    "model.dataset": (Decimal("1e-6"), 1000),
    "model.batch": (1, 1_000_000),
    "model.steps": (STEPS_MIN, STEPS_MAX),
    "model.seed": (0, 2**31 - 1),
    "video.size": (SIZE_MIN, SIZE_MAX),
    "video.fps": (1, 240),
    "video.quality": (0, 51),
    "keyframe.time": (0, TIME_MAX),
}


@dataclass(frozen=True)
class Video:
    size: tuple[int, int] = (1280, 720)
    fps: int = 30
    precision: str = AUTO
    palette: str = DEFAULT_PALETTE
    overlay: bool = False
    quality: int = 18  # x264 CRF: lower is better
    mode: str = "frames"


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
        """The name of this scene's output folder and video, always one plain
        name inside the output folder: the file's stem without path
        separators, control characters or leading dots ("scene" if nothing is left)."""
        return safe_stem(self.path.stem)

    @property
    def duration(self) -> Decimal:
        return self.keyframes[-1].time

    @property
    def keyframes_where(self) -> str:
        """Where an error about the zoom path points: ``<file>:keyframe``."""
        return f"{self.path.name}:keyframe"

    def with_video(self, **changes) -> "Scene":
        scene = replace(self, video=replace(self.video, **changes))
        if "precision" in changes:
            check_precision(scene.model, scene.video.precision, "--precision")
        preflight.check_keyframes(scene.model, scene.keyframes, scene.video.size, scene.path.name)
        return scene


def safe_stem(stem: str) -> str:
    """A file stem as a name that stays inside the folder it is joined to."""
    out = []
    for ch in stem:
        bad = ch in "/\\:" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        out.append("_" if bad else ch)
    name = "".join(out).lstrip(". \t").rstrip()  # never ".", "..", hidden or blank
    return name or "scene"


_TOP = {"title", "model", "plane", "video", "keyframe"}
_VIDEO = {"size", "fps", "precision", "palette", "overlay", "quality", "mode"}
_KEYFRAME = {"time", "center", "span"}


class _Reader:
    """Reads values of a keyframe file (``path``) or, with ``path`` None, of
    the command line's overrides; every message names where the value was."""

    def __init__(self, path: Path | None):
        self.path = path
        self.name = path.name if path is not None else ""

    def fail(self, where: str, what: str, fix: str):
        raise UserError(what, f"{self.name}:{where}" if self.name else where, fix)

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

    def number(self, v, where: str, *, integer=False, lo=None, hi=None, tiny=False):
        """``v`` as a checked number (``tiny``: magnitudes below 1e-EXP_MAX are
        left to a later, more specific check)."""
        if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
            self.fail(where, f"expected a number, got {shown(v)}", "write a plain number")
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
        if lo is not None and hi is not None:
            fix = f"use a value from {lo} to {hi}"
        else:
            fix = f"use a value of at least {lo}" if lo is not None else f"use a value of at most {hi}"
        if lo is not None and d < lo:
            self.fail(where, f"{shown(v)} is below the minimum {lo}", fix)
        if hi is not None and d > hi:
            self.fail(where, f"{shown(v)} is above the maximum {hi}", fix)
        if d == 0:  # as written ("0.0"), but 0E-2000000 as plain 0: an exponent no arithmetic needs
            return d if integer or -EXP_MAX <= d.as_tuple().exponent <= EXP_MAX else Decimal(0)
        if not tiny and Decimal(d).adjusted() < -EXP_MAX:
            self.fail(where, f"{shown(v)} is too small a magnitude", f"use 0 or a magnitude of at least 1e-{EXP_MAX}")
        return d

    def ranged(self, v, key: str, *, integer: bool = False, where: str | None = None):
        """``v`` checked as a number in ``key``'s range (:data:`RANGES`); ``where`` names it (default: ``key``)."""
        return self.number(v, where or key, integer=integer, **_range(key))

    def choice(self, v, where: str, options):
        if not isinstance(v, str) or v not in options:
            near = difflib.get_close_matches(str(v), options, n=1)
            hint = f"did you mean '{near[0]}'?" if near else "use one of " + ", ".join(f"'{o}'" for o in options)
            self.fail(where, f"unknown value {v!r}", hint)
        return v


def _range(key: str) -> dict:
    lo, hi = RANGES[key]
    return {"lo": lo, "hi": hi}


def _size(r: _Reader, size, where: str) -> tuple[int, int]:
    if not isinstance(size, list) or len(size) != 2:
        r.fail(where, f"expected [width, height], got {shown(size)}", "write size = [1280, 720]")
    return tuple(r.number(s, where, integer=True, **_range("video.size")) for s in size)


def with_overrides(scene: Scene, size: str | None = None, precision: str | None = None, mode: str | None = None) -> Scene:
    """The scene with the command line's ``--size WxH``, ``--precision`` and
    ``--mode``, each checked by the code that checks the file's ``[video]``
    value, with the same messages (naming the option)."""
    r = _Reader(None)
    changes = {}
    if size is not None:
        parts = size.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            r.fail("--size", f"bad size {size!r}", "write it as WIDTHxHEIGHT, e.g. 256x256")
        changes["size"] = _size(r, [int(p) for p in parts], "--size")
    if precision is not None:
        changes["precision"] = r.choice(precision, "--precision", PRECISIONS)
    if mode is not None:
        changes["mode"] = r.choice(mode, "--mode", MODES)
    return scene.with_video(**changes) if changes else scene


def load(path: str | Path) -> Scene:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is allowed
    except FileNotFoundError:
        raise UserError("file not found", str(path), "check the path to the keyframe file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read file: {e}", str(path), "check the file") from None
    return loads(text, path, base=path.parent)


def loads(text: str, name: str | Path, base: Path | None = None) -> Scene:
    """Parse and validate keyframe-file text; ``name`` (a file name) names it in errors.
    ``base``: the folder files it names (a data set, a Python module) are read
    from; None reads none, and such a file must be one a keyframe file loaded
    before named (:func:`zoomreel.kinds.read_beside`)."""
    path = Path(name)
    try:
        doc = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        where = "toml"
        if "(at line" in msg:
            where = "line " + msg.split("(at line", 1)[1].split(",")[0].strip()
            msg = msg.split("(at line", 1)[0].strip()
        raise UserError(f"malformed TOML: {msg}", f"{path.name}:{where}", "fix the TOML syntax") from None
    except ValueError as e:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise _long_integer(text, path.name) or UserError(f"malformed TOML: {e}", f"{path.name}:toml", "fix the TOML syntax") from None
    return validate(doc, path, base)


def _long_integer(text: str, name: str) -> UserError | None:
    """The error for the first integer in ``text`` too long for Python to
    convert, naming its key and the key's range; None if there is none."""
    limit = sys.get_int_max_str_digits()
    long_int = re.compile(r"(?<![\w.])[+-]?[0-9](?:_?[0-9]){%d,}(?![\w.])" % limit)
    table, key, keyframe = "", "", -1
    for n, line in enumerate(text.splitlines(), 1):
        head = re.match(r"\s*(\[\[?)\s*([\w.\-]+)\s*\]", line)
        if head:
            table, key = head.group(2), ""
            keyframe += head.group(1) == "[[" and table == "keyframe"
            continue
        k = re.match(r"\s*([\w\-]+)\s*=", line)
        key = k.group(1) if k else key
        m = long_int.search(line)
        if m is None:
            continue
        digits = sum(c.isdigit() for c in m.group())
        full = f"{table}.{key}" if table else key
        where = f"{name}:{f'keyframe[{keyframe}].{key}' if table == 'keyframe' else full or f'line {n}'}"
        if full in RANGES:
            lo, hi = RANGES[full]
            return UserError(f"an integer of {digits} digits is outside the range", where, f"use a value from {lo} to {hi}")
        return UserError(f"an integer of {digits} digits is too large", where,
                         f"write it with at most {limit} digits (centres and spans: keep within about 1e300)")
    return None


def validate(doc: dict, name: str | Path, base: Path | None = None) -> Scene:
    """Validate an already parsed document (decimals as :class:`Decimal`), as :func:`load` does."""
    return _validate(_Reader(Path(name)), doc, base)


def _validate(r: _Reader, doc: dict, base: Path | None = None) -> Scene:
    r.keys(doc, _TOP, "")
    title = doc.get("title", r.path.stem)
    if not isinstance(title, str):
        r.fail("title", "title must be a string", 'write title = "..."')

    m = r.table(doc, "model")
    kind = r.choice(m.get("kind", "network"), "model.kind", KINDS)
    spec = kinds.spec(kind)
    plane = r.table(doc, "plane") if "plane" in doc else None
    model = spec.parse(r, m, plane, base)

    v = r.table(doc, "video")
    r.keys(v, _VIDEO, "video.")
    size = _size(r, v.get("size", [1280, 720]), "video.size")
    fps = r.number(v.get("fps", 30), "video.fps", integer=True, **_range("video.fps"))
    precision = r.choice(v.get("precision", AUTO), "video.precision", PRECISIONS)
    palette = r.choice(v.get("palette", DEFAULT_PALETTE), "video.palette", PALETTES)
    overlay = v.get("overlay", False)
    if not isinstance(overlay, bool):
        r.fail("video.overlay", f"expected true or false, got {overlay!r}", "write overlay = true")
    quality = r.number(v.get("quality", 18), "video.quality", integer=True, **_range("video.quality"))
    mode = r.choice(v.get("mode", "frames"), "video.mode", MODES)
    video = Video(size=size, fps=fps, precision=precision, palette=palette, overlay=overlay, quality=quality, mode=mode)
    check_precision(model, precision, f"{r.name}:video.precision")

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
        t = r.number(k["time"], w + "time", **_range("keyframe.time"))
        c = k["center"]
        if not isinstance(c, list) or len(c) != 2:
            r.fail(w + "center", f"expected [x, y], got {shown(c)}", 'write center = [1.5, 1.5] or ["2.5", "2.1298"]')
        c = tuple(r.number(cc, w + "center") for cc in c)
        span = r.number(k["span"], w + "span", tiny=True)  # check_plane: "too deep"
        if span <= 0:
            r.fail(w + "span", f"span must be positive, got {span}", "use a width greater than 0")
        if i == 0 and t != 0:
            r.fail(w + "time", f"the first keyframe is at {t}", "start the first keyframe at time = 0.0")
        if out and t <= out[-1].time:
            r.fail(w + "time", f"time {t} is not after the previous keyframe's {out[-1].time}", "make times strictly increasing")
        out.append(Keyframe(time=Decimal(t), center=c, span=span))
    scene = Scene(path=r.path, title=title, model=model, video=video, keyframes=tuple(out))
    n = frame_count(scene)
    if n > FRAMES_MAX:
        r.fail(
            f"keyframe[{len(out) - 1}].time",
            f"the video would have {n} frames ({out[-1].time} s at {fps} fps), more than {FRAMES_MAX}",
            f"end the path by {Decimal(FRAMES_MAX - 1) / fps:.6g} s or lower [video] fps",
        )
    preflight.check_keyframes(scene.model, scene.keyframes, scene.video.size, scene.path.name)
    spec.check(model, out[0].center, r.name)
    return scene


def check_precision(model: Model, precision: str, where: str) -> None:
    """Refuse a precision the model's kind cannot train in."""
    names = kinds.spec(model.kind).arithmetics(model)
    if precision != AUTO and names is not None and precision not in names:
        raise UserError(f"{precision} cannot train this model ({kinds.describe(model)}): it trains in {' and '.join(names)} only",
                        where, f'use precision = "{names[-1]}" (or "auto")')
