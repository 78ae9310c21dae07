"""The one error type a user can fix.

Every stage raises :class:`UserError` for input the user can correct. The CLI
prints it as one line, ``error: <what> (<where>): <how to fix>``, and exits 2.
"""

from __future__ import annotations


class UserError(Exception):
    def __init__(self, what: str, where: str, fix: str):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"error: {self.what} ({self.where}): {self.fix}"
