"""The one error type a user can fix, and how user text is shown.

Every stage raises :class:`UserError` for input the user can correct. The CLI
prints it as one line, ``error: <what> (<where>): <how to fix>``, and exits 2.

Text that comes from a file or a cache record (titles, file and folder
names, values, warnings) is data, printed literally: :func:`printable` drops
control and format characters (an ANSI escape, an OSC 8 link or a U+202E
bidi override in a title would otherwise reach the terminal), :func:`literal`
also escapes rich markup for text printed through a rich console, and
:func:`shown` writes a value as the user wrote it (a very long number in
short).
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal


class UserError(Exception):
    def __init__(self, what: str, where: str, fix: str):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        return printable(f"error: {self.what} ({self.where}): {self.fix}")


def printable(text: str) -> str:
    """``text`` without control and format characters (tabs and line breaks
    become spaces; a lone surrogate, such as an undecodable byte of a file
    name, which no terminal encoding can print, becomes U+FFFD)."""
    out = []
    for ch in str(text):
        if ch in "\t\n\r\v\f":
            out.append(" ")
        elif unicodedata.category(ch) == "Cs":
            out.append("\ufffd")
        elif unicodedata.category(ch) not in ("Cc", "Cf") or ch == "\u200d":
            out.append(ch)
    return "".join(out)


def literal(text: str) -> str:
    """``text`` from a file or a record for a rich console: :func:`printable`,
    and rich's markup escaped, so ``[/bold]`` in a title or a warning prints
    as written instead of being read as markup (or failing as bad markup)."""
    from rich.markup import escape

    return escape(printable(text))


def shown(v) -> str:
    """A value from a TOML file as the user would write it (``[1.5, 2]``, not ``[Decimal('1.5'), 2]``)."""
    if isinstance(v, Decimal):
        text = str(v)
        return text if len(text) <= 40 else f"{v:.6e}"  # a number of 300 digits would fill the line
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(shown(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {shown(x)}" for k, x in v.items()) + "}"
    return str(v)
