"""Training off the event loop: one thread, a bounded queue, superseded work dropped.

Each task belongs to a lane (one browser tab's view requests, or its drafts).
A new task in a lane supersedes the older ones: those still queued are
dropped, and the one running is cancelled at its next progress report (the
engine reports after every segment of steps). The server awaits each task's
future, so the event loop never trains.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable


class Superseded(Exception):
    """A newer request in the same lane replaced this one."""


class Busy(Exception):
    """The queue is full."""


@dataclass
class Task:
    lane: str
    fn: Callable  # fn(progress) -> result; progress(pixel_steps) may raise Superseded
    total: int  # pixel-steps the task expects to train (for the progress bar)
    label: str
    future: Future = field(default_factory=Future)
    cancelled: bool = False
    done: int = 0


class Worker:
    def __init__(self, name: str, maxsize: int = 8):
        self.name = name
        self.queue: queue.Queue[Task | None] = queue.Queue(maxsize=maxsize)
        self.lock = threading.Lock()
        self.pending: list[Task] = []  # queued or running, oldest first
        self.current: Task | None = None
        self.thread = threading.Thread(target=self._loop, name=f"zoomreel-{name}", daemon=True)
        self.thread.start()

    def submit(self, lane: str, fn: Callable, total: int = 0, label: str = "") -> Future:
        """Queue ``fn``; older tasks of ``lane`` are superseded. Raises :class:`Busy` when full."""
        task = Task(lane, fn, total, label)
        with self.lock:
            for old in self.pending:
                if old.lane == lane:
                    old.cancelled = True
            try:
                self.queue.put_nowait(task)
            except queue.Full:
                raise Busy(self.name) from None
            self.pending.append(task)
        return task.future

    def progress(self) -> dict:
        with self.lock:
            t = self.current
            waiting = sum(1 for p in self.pending if p is not t and not p.cancelled)
            if t is None or t.cancelled:
                return {"busy": False, "done": 0, "total": 0, "label": "", "queued": waiting}
            return {"busy": True, "done": t.done, "total": t.total, "label": t.label, "queued": waiting}

    def cancel(self) -> None:
        """Supersede every task: the queued ones are dropped, the running one stops at its next report."""
        with self.lock:
            for t in self.pending:
                t.cancelled = True

    def close(self, timeout: float | None = None) -> None:
        """Cancel everything and wait for the thread to end. A training run stops at
        its next progress report; the precision probe before it, which reports
        nothing, runs to its end (a few percent of the view)."""
        self.cancel()
        while True:
            try:
                self.queue.put_nowait(None)
                break
            except queue.Full:
                try:
                    self._drop(self.queue.get_nowait())
                except queue.Empty:
                    pass
        self.thread.join(timeout)

    def _drop(self, task: Task | None) -> None:
        if task is None:
            return
        with self.lock:
            if task in self.pending:
                self.pending.remove(task)
        if not task.future.done():
            task.future.set_exception(Superseded(task.label))

    def _loop(self) -> None:
        while True:
            task = self.queue.get()
            if task is None:
                return
            if task.cancelled:
                self._drop(task)
                continue
            with self.lock:
                self.current = task

            def report(n: int, task=task) -> None:
                if task.cancelled:
                    raise Superseded(task.label)
                task.done += int(n)

            try:
                result = task.fn(report)
            except BaseException as e:  # handed to the awaiting request, which answers it
                if not task.future.done():
                    task.future.set_exception(e)
            else:
                if task.cancelled:
                    task.future.set_exception(Superseded(task.label))
                else:
                    task.future.set_result(result)
            finally:
                with self.lock:
                    self.current = None
                    if task in self.pending:
                        self.pending.remove(task)
