"""Training off the event loop: one thread, lanes taken in turn, superseded work dropped.

Each task belongs to a lane (one browser tab's views, its locate clicks, the
server's own prefetch). A lane holds one task: a newer one supersedes it, so
a waiting task is dropped at once and a running one is cancelled at its next
check. A task is a function of its :class:`Task` (``task.check`` raises
:class:`Superseded` once it is cancelled; ``task.report(n)`` counts
pixel-steps and checks); one that returns a generator runs a step (a tile) at
a time, and between steps the worker takes the lanes in turn, the page's
views first (``priority`` 0), so that no lane waits behind another's long
request. The server awaits each task's future, so the event loop never trains.
"""

from __future__ import annotations

import inspect
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable


class Superseded(Exception):
    """A newer request in the same lane replaced this one, or the server is stopping."""


class Busy(Exception):
    """Every lane the worker holds is taken."""


@dataclass(eq=False)
class Task:
    lane: str
    fn: Callable  # fn(task) -> result, or a generator whose return value is the result
    total: int  # pixel-steps the task expects to train (for the progress bar)
    label: str
    priority: int = 0  # lower runs first; equal priorities take turns
    future: Future = field(default_factory=Future)
    cancelled: bool = False
    done: int = 0
    started: float | None = None  # when its first step began (monotonic)
    steps: object = None  # the generator of a stepped task, once started
    rate: float | None = None  # pixel-steps a second expected before it has measured its own

    def eta(self) -> float | None:
        """Seconds left at the rate measured so far (or the expected one)."""
        left = max(0, self.total - self.done)
        if self.started is not None and self.done > 0:
            return left * (time.monotonic() - self.started) / self.done
        return left / self.rate if self.rate else None

    def check(self) -> None:
        """Raise :class:`Superseded` once the task is cancelled: the cancel
        callable every stage of its training calls (the precision probe too)."""
        if self.cancelled:
            raise Superseded(self.label)

    def report(self, n: int) -> None:
        """Pixel-steps trained (a progress hook); checks for a cancel first."""
        self.check()
        self.done += int(n)


class Worker:
    def __init__(self, name: str, maxsize: int = 8):
        self.name = name
        self.maxsize = maxsize  # lanes at once
        self.cond = threading.Condition()
        self.lanes: dict[str, Task] = {}  # lane -> its task (waiting or between steps), in turn order
        self.current: Task | None = None  # the task whose step runs now
        self.closing = False
        self.thread = threading.Thread(target=self._loop, name=f"zoomreel-{name}", daemon=True)
        self.thread.start()

    def submit(self, lane: str, fn: Callable, total: int = 0, label: str = "", priority: int = 0,
               rate: float | None = None) -> Task:
        """Queue ``fn``; the lane's older task is superseded. Raises :class:`Busy`
        when ``maxsize`` other lanes hold work."""
        task = Task(lane, fn, total, label, priority, rate=rate)
        with self.cond:
            if self.closing:
                raise Superseded(label)
            old = self.lanes.pop(lane, None)
            if old is None and len(self.lanes) >= self.maxsize:
                raise Busy(self.name)
            if old is not None:
                self._cancel(old)
            if self.current is not None and self.current.lane == lane:
                self.current.cancelled = True
            self.lanes[lane] = task
            self.cond.notify()
        return task

    def cancel_task(self, task: Task) -> None:
        """Cancel one task (its client went away)."""
        with self.cond:
            if self.lanes.get(task.lane) is task:
                del self.lanes[task.lane]
            self._cancel(task)

    def cancel(self) -> None:
        """Supersede every task: the waiting ones answer at once, the running one at its next check."""
        with self.cond:
            for t in list(self.lanes.values()):
                self._cancel(t)
            self.lanes.clear()
            if self.current is not None:
                self.current.cancelled = True

    def _cancel(self, task: Task) -> None:
        task.cancelled = True
        if task is not self.current:
            self._finish(task, error=Superseded(task.label))

    def progress(self) -> dict:
        with self.cond:
            t = self.current
            if t is None or t.cancelled:
                t = next((x for x in self.lanes.values() if x.started is not None and not x.cancelled), None)
            waiting = sum(1 for x in self.lanes.values() if x is not t and not x.cancelled)
            if t is None:
                return {"busy": False, "done": 0, "total": 0, "label": "", "queued": waiting, "eta": None}
            return {"busy": True, "done": t.done, "total": t.total, "label": t.label, "queued": waiting, "eta": t.eta()}

    def close(self, timeout: float | None = None) -> None:
        """Cancel everything and wait for the thread to end (a training step
        stops at its next check: a segment of steps, the probe's included)."""
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.cancel()
        self.thread.join(timeout)

    def _next(self) -> Task | None:
        """The next task to step: the lowest priority, lanes in turn (called locked)."""
        while not self.closing:
            if self.lanes:
                best = min(t.priority for t in self.lanes.values())
                lane, task = next((k, t) for k, t in self.lanes.items() if t.priority == best)
                del self.lanes[lane]  # back at the end of the turn if it has more steps
                self.current = task
                return task
            self.cond.wait()
        return None

    def _finish(self, task: Task, result=None, error: BaseException | None = None) -> None:
        if task.steps is not None and error is not None:
            task.steps.close()  # its finally blocks run here, on the worker's thread
            task.steps = None
        if task.future.done():
            return
        if error is not None:
            task.future.set_exception(error)
        else:
            task.future.set_result(result)

    def _step(self, task: Task) -> bool:
        """Run one step of ``task``; True when it has more."""
        if task.started is None:
            task.started = time.monotonic()
            out = task.fn(task)
            if not inspect.isgenerator(out):
                self._finish(task, out)
                return False
            task.steps = out
        try:
            next(task.steps)
        except StopIteration as stop:
            task.steps = None
            self._finish(task, stop.value)
            return False
        return True

    def _loop(self) -> None:
        while True:
            with self.cond:
                task = self._next()
            if task is None:
                return
            more = False
            try:
                task.check()
                more = self._step(task)
            except BaseException as e:  # handed to the awaiting request, which answers it
                self._finish(task, error=Superseded(task.label) if task.cancelled else e)
            with self.cond:
                self.current = None
                if more:
                    if task.cancelled:
                        self._finish(task, error=Superseded(task.label))
                    elif task.lane not in self.lanes:
                        self.lanes[task.lane] = task  # its turn again after the other lanes'
                    else:
                        self._finish(task, error=Superseded(task.label))
