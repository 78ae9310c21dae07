"""Ctrl-C: whenever it comes, the run stops with one line and exit status 130.

Python's default turns SIGINT into a KeyboardInterrupt wherever the main
thread happens to be. While modules are imported and JAX starts its backends
that can be inside an extension's initialisation (seen to crash the process)
or inside a finaliser or callback, where Python prints "Exception ignored ...
KeyboardInterrupt" and carries on as if nothing had happened.

So :func:`install` (the first thing the command line does) replaces the
handler with one that always records the interrupt, and raises it only while
it is safe to (:func:`arm`); while :func:`deferred` start-up runs, the
interrupt waits and is raised as soon as the start-up is over. An interrupt
that a finaliser swallowed anyway is still recorded, and :func:`raise_pending` (called
at every progress step) raises it then.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

MESSAGE = "interrupted: finished frames are cached; run the same command again to resume"

_pending = False
_armed = False
_installed = False


def _handler(signum, frame) -> None:
    global _pending
    _pending = True
    if _armed:
        raise KeyboardInterrupt


def _unraisable(hook):
    def quiet(unraisable) -> None:
        global _pending
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _pending = True  # swallowed where it was raised; raise_pending() raises it again
            return
        hook(unraisable)

    return quiet


def install() -> None:
    """Take over SIGINT for this process (the command line only; idempotent).
    Interrupts wait until :func:`arm`."""
    global _installed, _armed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    sys.unraisablehook = _unraisable(sys.unraisablehook)
    _installed = True
    _armed = False


def pending() -> bool:
    return _pending


def clear() -> None:
    """Forget an interrupt that was handled as a normal stop (a server's Ctrl-C)."""
    global _pending
    _pending = False


def raise_pending() -> None:
    """Raise the interrupt now if one came and was not raised yet (on the
    main thread only: a progress hook another thread calls leaves it to the
    main thread's next check)."""
    if _pending and _installed and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


def arm() -> None:
    """From now on an interrupt is raised where it lands (and one that waited, now)."""
    global _armed
    if _installed:
        _armed = True
        raise_pending()


def disarm() -> None:
    """Further interrupts are only recorded (while the run winds down)."""
    global _armed
    _armed = False


@contextlib.contextmanager
def deferred():
    """Run the block with interrupts held back; one that came is raised after it."""
    global _armed
    was = _armed
    _armed = False
    try:
        yield
    finally:
        _armed = was
    raise_pending()


SIGNAL_AT_ENV = "ZOOMREEL_SIGNAL_AT"
SIGNAL_ARMED_ENV = "ZOOMREEL_SIGNAL_ARMED"


def signal_point(point: str) -> None:
    """A deterministic place for the suite's kill and Ctrl-C tests to strike.

    With ``ZOOMREEL_SIGNAL_AT="<SIGNAL> <point>"`` (e.g. ``"INT startup"``,
    ``"KILL unit 2"``) this process sends itself that signal when it reaches
    ``point``: ``startup`` (before JAX starts), ``devices`` (JAX started),
    ``unit N`` (the N-th unit of work written to the cache), ``encoded N``
    (the N-th frame encoded), ``task`` (a Ray worker starting a job). With
    ``ZOOMREEL_SIGNAL_ARMED=<file>`` as well, only the one process that
    claims that file (renaming it) does. Unset, nothing happens.
    """
    want = os.environ.get(SIGNAL_AT_ENV)
    if not want:
        return
    name, _, at = want.partition(" ")
    if at != point:
        return
    armed = os.environ.get(SIGNAL_ARMED_ENV)
    if armed:
        try:
            os.rename(armed, armed + ".fired")
        except OSError:
            return
    os.kill(os.getpid(), getattr(signal, "SIG" + name))
