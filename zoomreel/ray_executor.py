"""Train on a Ray cluster: one Ray task per job.

:class:`RayExecutor` implements :meth:`zoomreel.executor.Executor.run` over
Ray (an optional extra, ``pip install 'zoomreel[ray]'``). Each job (a frame,
a tile: ``job.id`` is the caller's and opaque here) becomes one Ray task that
runs :func:`zoomreel.training.train_job` on a worker, precision decision
included, and returns the raw measure through Ray's object store. This
process, the driver, stays the only writer of the cache and of the video.

What a task asks for:

- where the cluster has GPUs: one GPU (and one CPU to drive it). Ray sets
  ``CUDA_VISIBLE_DEVICES`` to that GPU before the task starts, so the JAX the
  worker opens sees exactly one GPU. Ray starts a fresh worker process for
  each GPU task (its default for GPU tasks): a reused process would keep the
  GPU its JAX opened first while Ray hands it another.
- otherwise ``cpus_per_task`` CPUs (default 1). Ray never runs more tasks on
  a node than its CPUs allow, so a node's cores are not oversubscribed.

How a worker configures the engine: the first task a worker process runs
calls :func:`zoomreel.engine.configure` with ``cpu_devices`` = the task's CPU
share, before JAX starts; later tasks in the same process find it done. Ray
also sets ``OMP_NUM_THREADS`` to that share.

The local runtime (``--ray`` alone) is a ``ray start --head --block``
that a small supervisor process starts, not ``ray.init``'s own: ``ray.init``
would start Ray's processes with a fork that runs Python in the child (Ray's
``preexec_fn``) from this process, where JAX's threads already run, and JAX
warns, rightly, that such a fork can deadlock. The supervisor is started with
a plain fork+exec (no Python in the child), Ray's processes start from it,
and their output stays in its pipe, so none of it reaches this terminal. It
stops the runtime when this process closes the executor, or when this
process dies in any way (its stdin, a pipe from here, then ends). The runtime
gets a token of its own (Ray's token authentication), so no other program on
the network can submit work to it and nothing is written to ~/.ray.

Faults: a worker that dies mid-task (killed, out of memory) is retried by Ray
(``max_retries``); a :class:`~zoomreel.errors.UserError` inside a task comes
back as a value and is raised here with the text a local run gives; an
unreachable cluster, or workers that cannot import zoomreel (or run another
version of it), is one UserError.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import UserError
from .cancel import Cancel, stop_if
from .executor import Executor
from .training import Job, Trained, train_job

INSTALL_FIX = "install it with pip install 'zoomreel[ray]' (in a clone: pip install -e '.[ray]')"
NODE_FIX = "install the same zoomreel, with its dependencies, on every node of the cluster (see README, On a cluster)"
CONNECT_SECONDS = 5.0  # a cluster address that does not answer a TCP connection in this time is unreachable
HEAD_SECONDS = 180.0  # the local runtime's start-up, at most

# The supervisor of the local runtime: starts ``ray start --head --block``
# (argv[1:]), says "ready" once it is up (or relays why it failed), then
# waits for its stdin to end and stops the runtime. Runs in a fresh
# interpreter: no JAX there.
_SUPERVISOR = r"""
import signal, subprocess, sys, threading
head = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, errors="replace")
def relay():
    ready = False
    for line in head.stdout:
        if not ready:
            ready = "Ray runtime started" in line
            print("ready" if ready else "log " + line.rstrip(), flush=True)
    print("exited", flush=True)
threading.Thread(target=relay, daemon=True).start()
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.read()
if head.poll() is None:
    head.send_signal(signal.SIGTERM)  # ray start --block stops every process of its runtime
    try:
        head.wait(60)
    except subprocess.TimeoutExpired:
        head.kill()
"""


def import_ray():
    """The ``ray`` module, or the UserError telling how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("Ray is not installed", "--ray", INSTALL_FIX) from None
    return ray


# --------------------------------------------------------------------------
# The worker side (runs in a Ray worker process)

_worker_cpus: int | None = None


def _configure_worker(cpus: int) -> None:
    """The engine's runtime configuration, once per worker process."""
    global _worker_cpus
    if _worker_cpus is None:
        from . import engine

        engine.configure(cpu_devices=cpus)
        _worker_cpus = cpus


def _worker_name() -> str:
    name = f"{socket.gethostname()}:{os.getpid()}"
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{socket.gethostname()}:gpu{gpus}" if gpus and _uses_gpu() else name


def _uses_gpu() -> bool:
    import jax

    return jax.devices()[0].platform != "cpu"


def work(job: Job, cpus: int) -> dict:
    """One task: train ``job`` on this worker; the reply is plain data.

    A UserError is a reply, not an exception, so the driver raises the very
    same error a local run raises (not Ray's wrapping of it).
    """
    t0 = time.perf_counter()
    from . import __version__
    from .model import ENGINE_VERSION

    _configure_worker(cpus)
    from . import interrupt

    interrupt.signal_point("task")
    versions = {"zoomreel": __version__, "engine": ENGINE_VERSION}
    try:
        res = train_job(job)
    except UserError as e:
        return {"error": (e.what, e.where, e.fix), "versions": versions}
    return {
        "raw": res.raw,
        "decision": res.decision,
        "seconds": res.seconds,
        "decided": res.decided,
        "task_seconds": time.perf_counter() - t0,
        "worker": _worker_name(),
        "versions": versions,
    }


# --------------------------------------------------------------------------
# The driver side


@dataclass
class WorkerStats:
    tasks: int = 0
    pixel_steps: int = 0
    seconds: float = 0.0  # training time, probe included
    task_seconds: float = 0.0  # time inside the task (setup and packing included)

    @property
    def rate(self) -> float:
        return self.pixel_steps / self.seconds if self.seconds > 0 else 0.0


def check_reachable(address: str) -> None:
    """Refuse at once an address nothing answers at (Ray itself would wait minutes)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    try:
        if not sep or not host:
            raise ValueError
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except ValueError:
        raise UserError(f"bad Ray address {address!r}", "--ray",
                        "give host:port (the head's GCS port, 6379 by default), ray://host:10001, or auto") from None
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})", "--ray",
                        "start it with ray start --head on the head node, or check the address and port") from None


class RayExecutor(Executor):
    """Jobs as Ray tasks, on a local Ray runtime or an existing cluster.

    ``address``: None starts a local Ray runtime over this machine's cores
    and GPUs (``num_cpus``, default the cores this process may use); ``auto``,
    ``host:port`` or ``ray://host:10001`` join an existing cluster.
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_task: int = 1, num_cpus: int | None = None,
                 max_retries: int = 3):
        self.token = None
        if address is None:  # the local runtime's own token, for its supervisor and for this driver
            self.token = secrets.token_hex(32)
            os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        self.ray = import_ray()
        self.head = None  # the local runtime's supervisor process
        self.address = address
        self.where = f"--ray {address}" if address else "--ray"
        if address is not None:
            check_reachable(address)
        self.cpus_per_task, self.num_cpus, self.max_retries = cpus_per_task, num_cpus, max_retries
        self.started = False
        self.cluster = {"CPU": 0, "GPU": 0, "nodes": 0}
        self.workers = 0
        self.stats: dict[str, WorkerStats] = {}
        self.tasks = 0

    def start(self) -> None:
        """Start or join the cluster (done by the first job: a render with every frame cached starts nothing)."""
        if self.started:
            return
        import logging

        ray = self.ray
        kw = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
        try:
            if self.address is None:
                ray.init(address=self._start_head(), **kw)
            else:
                ray.init(address=self.address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"cannot start or join the Ray cluster: {str(e).splitlines()[0]}", self.where,
                            "check the address (ray status on the head node prints it); a cluster with token "
                            "authentication (ray start's default) also needs RAY_AUTH_MODE=token and its token here "
                            "(~/.ray/auth_token or RAY_AUTH_TOKEN)") from None
        self.started = True
        res = ray.cluster_resources()
        self.cluster = {"CPU": int(res.get("CPU", 0)), "GPU": int(res.get("GPU", 0)), "nodes": len(ray.nodes())}
        if self.cluster["GPU"] >= 1:
            self.cpus, opts = 1, {"num_gpus": 1, "num_cpus": 1}
            self.workers = self.cluster["GPU"]
        else:
            self.cpus, opts = self.cpus_per_task, {"num_cpus": self.cpus_per_task}
            self.workers = self.cluster["CPU"] // self.cpus_per_task
        if self.workers < 1:
            raise UserError(f"the cluster has fewer than {self.cpus_per_task} CPUs", self.where,
                            "add nodes or ask fewer CPUs per task")
        self._task = ray.remote(work).options(max_retries=self.max_retries, retry_exceptions=False, **opts)

    def _start_head(self) -> str:
        """Start the local runtime under its supervisor; its address once it is up."""
        from .engine.config import _cores

        port, client_port, agent_port = _free_ports(3)
        head = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port", str(port),
                "--num-cpus", str(self.num_cpus or _cores()), "--include-dashboard=false", "--disable-usage-stats",
                "--ray-client-server-port", str(client_port), "--dashboard-agent-listen-port", str(agent_port)]
        env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        self.head = subprocess.Popen([sys.executable, "-c", _SUPERVISOR, *head], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                     env=env, process_group=0)
        lines: queue.Queue = queue.Queue()

        def read():
            for line in self.head.stdout:
                lines.put(line.rstrip("\n"))
            lines.put("exited")

        threading.Thread(target=read, daemon=True).start()
        said = []
        deadline = time.monotonic() + HEAD_SECONDS
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = "exited"
                said.append(f"not started after {HEAD_SECONDS:.0f} s")
            if line == "ready":
                return f"127.0.0.1:{port}"
            if line == "exited":
                why = next((ln for ln in reversed(said) if ln.strip()), "ray start exited")
                raise UserError(f"cannot start a local Ray runtime: {why}", self.where,
                                "run ray start --head by hand to see why, or train without --ray")
            said.append(line.removeprefix("log ").split(" -- ", 1)[-1])

    def _stop_head(self) -> None:
        """Stop the local runtime: its supervisor stops it when its stdin ends."""
        if self.head is None:
            return
        try:
            self.head.stdin.close()
        except OSError:
            pass
        try:
            self.head.wait(90)
        except subprocess.TimeoutExpired:
            self.head.kill()
            self.head.wait()
        self.head = None

    def run(self, jobs: Iterable[Job], on_progress: Callable[[int], None] | None = None,
            cancel: Cancel = None) -> Iterator[Trained]:
        """``cancel`` is asked as each result comes back; the tasks still out are then cancelled."""
        ray = self.ray
        pending: dict = {}
        todo = iter(jobs)

        def fill():
            for job in todo:
                self.start()
                pending[self._task.remote(job, self.cpus)] = job
                window = 2 * self.workers  # in flight: every worker busy, one more queued each
                if len(pending) >= window:
                    return

        try:
            fill()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                stop_if(cancel)
                for ref in done:
                    job = pending.pop(ref)
                    result = self._result(ref, job)
                    if on_progress is not None:
                        on_progress(job.pixel_steps)
                    yield result
                fill()
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _result(self, ref, job: Job) -> Trained:
        reply = self._get(ref, job)
        from . import __version__
        from .model import ENGINE_VERSION

        mine = {"zoomreel": __version__, "engine": ENGINE_VERSION}
        if reply["versions"] != mine:
            v = reply["versions"]
            raise UserError(f"Ray workers run zoomreel {v['zoomreel']} (engine {v['engine']}), this machine "
                            f"{mine['zoomreel']} (engine {mine['engine']})", self.where, NODE_FIX)
        if "error" in reply:
            raise UserError(*reply["error"])
        raw = np.array(reply["raw"])  # a copy: the object store's buffer is released
        del reply["raw"]
        st = self.stats.setdefault(reply["worker"], WorkerStats())
        st.tasks += 1
        st.pixel_steps += job.pixel_steps
        st.seconds += reply["seconds"]
        st.task_seconds += reply["task_seconds"]
        self.tasks += 1
        return Trained(job, raw, reply["decision"], reply["seconds"], reply["decided"])

    def _get(self, ref, job: Job) -> dict:
        ray = self.ray
        exc = ray.exceptions
        try:
            return ray.get(ref)
        except exc.RayTaskError as e:
            cause = getattr(e, "cause", None)
            # the task's function lives in zoomreel: a worker that cannot import it fails to load it
            if isinstance(cause, ImportError) or re.search(r"\b(ModuleNotFoundError|ImportError)\b", str(e)):
                raise UserError(f"Ray workers cannot import zoomreel: {_last_line(cause or e)}", self.where, NODE_FIX) from None
            raise UserError(f"a Ray task failed on {job.where}, job {job.id}: {_last_line(cause or e)}", self.where,
                            "run the same command without --ray to see the error here") from None
        except (exc.WorkerCrashedError, exc.NodeDiedError, exc.ObjectLostError, exc.OutOfMemoryError) as e:
            raise UserError(f"Ray workers kept dying on job {job.id}: {type(e).__name__}", self.where,
                            "check the nodes' memory and logs (ray logs), then run the same command again to resume") from None
        except exc.RaySystemError as e:
            raise UserError(f"Ray workers cannot run zoomreel: {_last_line(e)}", self.where, NODE_FIX) from None
        except exc.RayError as e:
            raise UserError(f"Ray failed on job {job.id}: {type(e).__name__}: {_last_line(e)}", self.where,
                            "check the cluster (ray status), then run the same command again to resume") from None

    def summary(self) -> list[str]:
        """Workers, tasks, and pixel-steps/s per worker (of training time)."""
        if not self.started:
            return ["ray: 0 tasks (nothing to train: Ray was not started)"]
        c = self.cluster
        share = "1 GPU" if self.cluster["GPU"] else f"{self.cpus} CPU"
        lines = [f"ray: {self.tasks} tasks on {len(self.stats)} workers ({c['nodes']} nodes, {c['CPU']} CPUs, "
                 f"{c['GPU']} GPUs; {share} per task)"]
        for name, st in sorted(self.stats.items()):
            lines.append(f"  {name}: {st.tasks} tasks, {st.rate:.3g} pixel-steps/s")
        return lines

    def close(self) -> None:
        """Leave the cluster; a local runtime started here stops."""
        try:
            if self.started and self.ray.is_initialized():
                self.ray.shutdown()
        finally:
            self._stop_head()


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on this machine now."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _last_line(e) -> str:
    """The last non-empty line of an error's text (a traceback ends with the error itself)."""
    text = str(e).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__
