"""The command line's progress display (rich, on stderr).

:class:`WorkProgress` implements the work layer's hooks
(:class:`zoomreel.work.Reporter`): units (frames or tiles) done, cached,
pixel-steps per second, the arithmetic, an ETA, then the encoding.
:class:`PixelProgress` shows one view's pixel-steps with an ETA. Every hook
is where a pending Ctrl-C is raised (:func:`zoomreel.interrupt.raise_pending`).
"""

from __future__ import annotations

import time

from rich.console import Console
from ..errors import literal
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .. import interrupt
from ..work import Reporter

err = Console(stderr=True)


def _progress(quiet: bool, *columns) -> Progress:
    """A progress display on stderr, shown only where stderr is a terminal:
    piped into a file or another program, the output holds no bars."""
    return Progress(TextColumn("{task.description}"), BarColumn(), *columns, TimeRemainingColumn(),
                    console=err, disable=quiet or not err.is_terminal)


class WorkProgress(Reporter):
    def __init__(self, quiet: bool, noun: str = "frames"):
        self.quiet, self.noun = quiet, noun
        self.progress = _progress(quiet, MofNCompleteColumn(), TextColumn("{task.fields[info]}"))
        self.task = None
        self.done_steps = 0
        self.t0 = time.perf_counter()
        self.skipped = 0
        self.dtype = "-"

    def start(self, total, cached):
        self.t0 = time.perf_counter()
        self.progress.start()
        self.task = self.progress.add_task(self.noun, total=total, info="")

    def _info(self):
        rate = self.done_steps / max(time.perf_counter() - self.t0, 1e-9)
        return f"cached {self.skipped} | {rate:.3g} px-steps/s | {self.dtype}"

    def pixel_steps(self, n):
        interrupt.raise_pending()
        self.done_steps += n
        if self.task is not None:
            self.progress.update(self.task, info=self._info())

    def frame_done(self, k, reused, warning, dtype=None):
        interrupt.raise_pending()
        self.dtype = dtype or self.dtype
        if reused:
            self.skipped += 1
        if warning and not self.quiet:
            name = k.name() if hasattr(k, "name") else f"frame {k}"
            self.progress.console.print(literal(f"warning: {name}: {warning}"))
        if self.task is not None:
            self.progress.update(self.task, advance=1, info=self._info())

    def encoding(self, total):
        self.enc = self.progress.add_task("encode", total=total, info="")

    def encoded(self, k):
        interrupt.raise_pending()
        self.progress.update(self.enc, advance=1)

    def stop(self):
        self.progress.stop()


class PixelProgress:
    """One view's pixel-steps: ``advance`` is an engine progress callback."""

    def __init__(self, quiet: bool, total: int, label: str = "frame"):
        self.progress = _progress(quiet, TextColumn("{task.completed:.3g}/{task.total:.3g} px-steps"))
        self.progress.start()
        self.task = self.progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        interrupt.raise_pending()
        self.progress.update(self.task, advance=n)

    def stop(self):
        self.progress.stop()
