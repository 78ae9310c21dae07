"""``zoomreel explore``: the plane in the browser, served from this machine.

:func:`serve` runs the web server (:mod:`.server`) until Ctrl-C. The web
stack (Starlette, uvicorn) is the ``explore`` extra; without it, :func:`serve`
raises one :class:`~zoomreel.errors.UserError`.
"""

from __future__ import annotations

import ipaddress
import re
import sys
import threading
from pathlib import Path

from .. import interrupt
from ..errors import UserError, printable

LOOPBACK = "127.0.0.1"


def _stack():
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise UserError(
            "the explorer needs Starlette and uvicorn, which are not installed",
            "zoomreel explore",
            "install them with pip install 'zoomreel[explore]'",
        ) from None
    return uvicorn


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


_ESCAPES = re.compile(r"\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b\[[0-?]*[ -/]*[@-~]?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]?|\x9d[^\x07\x1b\x9c]*[\x07\x9c]?")


def literal(text: str) -> str:
    """``text`` safe to print as it is: terminal escape sequences (colours,
    OSC 8 links, titles) removed whole, then every control and bidi-format
    character (U+202E ...) dropped (:func:`zoomreel.errors.printable`)."""
    return printable(_ESCAPES.sub("", str(text)))


def serve(file: Path | None, host: str = LOOPBACK, port: int = 8765, open_browser: bool = True,
          width: int = 256, out: Path | None = None, max_pixel_steps: float | None = None,
          max_draft_frames: int | None = None) -> None:
    """Serve the explorer for ``file`` (or the default model) until Ctrl-C."""
    uvicorn = _stack()
    from .. import scene
    from . import guard, server

    if not 16 <= width <= server.MAX_SIDE:
        raise UserError(f"--size {width} out of range", "--size", f"use 16 to {server.MAX_SIDE} pixels")
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} out of range", "--port", "use 1 to 65535, or 0 for any free port")
    limits = server.Limits()
    if max_pixel_steps is not None:
        if not 1 <= max_pixel_steps < 1e30:  # NaN too
            raise UserError(f"--max-pixel-steps {max_pixel_steps} out of range", "--max-pixel-steps", "use a positive number such as 2e9")
        limits.max_pixel_steps = int(max_pixel_steps)
    if max_draft_frames is not None:
        if max_draft_frames < 1:
            raise UserError(f"--max-draft-frames {max_draft_frames} out of range", "--max-draft-frames", "use a positive number")
        limits.max_draft_frames = max_draft_frames
    start = scene.load(file) if file is not None else server.default_scene()
    save_dir = Path(file).resolve().parent if file is not None else Path.cwd()
    ex = server.Explorer(start, server.start_size(start, width, limits), save_dir, Path(out) if out else Path("outputs"),
                         limits=limits)
    app = server.make_app(ex)
    state = app.state.zoomreel
    if not _loopback(host):
        ex.hosts = None  # any address may name this machine; the token still guards every request
    else:
        ex.hosts = set()  # nothing gets in until the port is known

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            for w in state.workers.values():  # requests waiting on training answer at once
                w.cancel()
            await super().shutdown(sockets)

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if not self.started:
                return
            bound = self.servers[0].sockets[0].getsockname()[1]
            ex.port = bound
            if ex.hosts is not None:
                ex.hosts = guard.loopback_hosts(bound)
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{bound}/?token={ex.token}"
            print(f"explore {literal(start.title)} at {url}  (Ctrl-C stops)", flush=True)
            if not _loopback(host):
                print(literal(f"warning: listening on {host}: anyone who can reach it and has the URL can train views "
                              f"and write keyframe files in {save_dir}"), flush=True)
            server.prefetch(state)
            if open_browser:
                import webbrowser

                threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    # Ctrl-C: the training in progress is cancelled (Server.shutdown), the requests waiting on it answer, then it stops
    srv = Server(uvicorn.Config(app, host=host, port=port, log_level="critical", lifespan="on", timeout_graceful_shutdown=10))
    try:
        srv.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after shutting down
        pass
    except SystemExit:  # uvicorn's answer to an address it cannot bind
        pass
    finally:
        for w in state.workers.values():
            w.close(30)
    interrupt.clear()  # for a server, Ctrl-C is the normal way to stop
    if not srv.started:
        raise UserError(f"cannot listen on {host}:{port}", "--host/--port", "choose another --port (0 picks a free one)")
    print("stopped", file=sys.stderr, flush=True)
