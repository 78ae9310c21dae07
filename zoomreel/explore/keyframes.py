"""The page's keyframes as a keyframe file: TOML text, then the CLI's own parser.

:func:`compose` writes the text from the model and video of the file being
explored and the keyframes as the page holds them (exact decimal strings;
times as the user typed them). Nothing here validates: the text goes through
:func:`zoomreel.scene.loads`, so the page shows the errors ``zoomreel render``
would.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from decimal import Decimal

from .. import kinds
from ..model import Model
from ..scene import Video

_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")
_BARE = 40  # longer numbers go as strings: the parser checks them without TOML's integer limits


def _string(v) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(v))


def _time(v) -> str:
    """A time as the user typed it: a bare number when it is a short one, else a string (which the parser reads as a number or rejects)."""
    if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
        v = str(v)
    if isinstance(v, str) and len(v.strip()) <= _BARE and _NUMBER.fullmatch(v.strip()):
        return v.strip()
    return _string(v)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def model_table(model: Model) -> dict:
    """The ``[model]`` keys that reproduce ``model`` (its kind's spec says which)."""
    return kinds.spec(model.kind).table(model)


def _key(k: str) -> str:
    """A TOML key: bare, or quoted when it holds a dot (``"lr.0"``)."""
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _string(k)


def compose(title: str, model: Model, video: Video, keyframes: list) -> str:
    """Keyframe-file text; ``keyframes``: items with ``time``, ``center`` [x, y] and ``span``."""
    lines = [f"title = {_string(title)}", "", "[model]"]
    table = model_table(model)
    lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for k, v in table.items():  # the plane's axes, as a table of its own
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items()]
    lines += ["", "[video]"]
    lines += [f"{f.name} = {_value(getattr(video, f.name))}" for f in fields(Video)]
    for k in keyframes:
        k = k if isinstance(k, dict) else {}
        c = k.get("center")
        c = "[" + ", ".join(_string(x) for x in c) + "]" if isinstance(c, (list, tuple)) else _string(c)
        lines += ["", "[[keyframe]]", f"time = {_time(k.get('time'))}", f"center = {c}", f"span = {_string(k.get('span'))}"]
    return "\n".join(lines) + "\n"
