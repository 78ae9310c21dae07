"""Stopping work on request: the ``cancel`` argument of the work layer.

Every stage that trains (the precision probe, the pixels, a list of units,
a whole render) takes ``cancel``: None, or a callable that returns True once
the caller no longer wants the result (a view the explorer's page has moved
away from, say). It is asked between stages and after every segment of
steps; when it says True the work stops by raising :class:`Cancelled`.
Nothing half-done is written: the cache holds only finished units.
"""

from __future__ import annotations

from typing import Callable, Optional

Cancel = Optional[Callable[[], bool]]


class Cancelled(Exception):
    """The caller's ``cancel()`` said True: the work was abandoned."""


def stop_if(cancel: Cancel) -> None:
    """Raise :class:`Cancelled` when ``cancel`` (if any) says so."""
    if cancel is not None and cancel():
        raise Cancelled()
