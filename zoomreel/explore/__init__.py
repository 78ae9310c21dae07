"""``zoomreel explore``: the plane in the browser, served from this machine.

:func:`serve` runs the web server (:mod:`.server`) until Ctrl-C. The web
stack (Starlette, uvicorn) is the ``explore`` extra; without it, :func:`serve`
raises one :class:`~zoomreel.errors.UserError`.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from pathlib import Path

from .. import interrupt
from ..errors import UserError

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


def serve(file: Path | None, host: str = LOOPBACK, port: int = 8765, open_browser: bool = True,
          width: int = 256, out: Path | None = None) -> None:
    """Serve the explorer for ``file`` (or the default model) until Ctrl-C."""
    uvicorn = _stack()
    from .. import scene
    from . import server

    if not 16 <= width <= server.MAX_SIDE:
        raise UserError(f"--size {width} out of range", "--size", f"use 16 to {server.MAX_SIDE} pixels")
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} out of range", "--port", "use 1 to 65535, or 0 for any free port")
    start = scene.load(file) if file is not None else server.default_scene()
    save_dir = Path(file).resolve().parent if file is not None else Path.cwd()
    ex = server.Explorer(start, server.view_size(start.video.size, width), save_dir, Path(out) if out else Path("outputs"))
    app = server.make_app(ex)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            for w in app.state.workers.values():  # requests waiting on training answer at once
                w.cancel()
            await super().shutdown(sockets)

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if not self.started:
                return
            bound = self.servers[0].sockets[0].getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{bound}/"
            print(f"explore {start.title} at {url}  (Ctrl-C stops)", flush=True)
            if not _loopback(host):
                print(f"warning: listening on {host}: anyone who can reach it can train views and write keyframe files in {save_dir}", flush=True)
            if open_browser:
                import webbrowser

                threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    # Ctrl-C: the training in progress is cancelled (Server.shutdown), the requests waiting on it answer, then it stops
    srv = Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    try:
        srv.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after shutting down
        pass
    except SystemExit:  # uvicorn's answer to an address it cannot bind
        pass
    interrupt.clear()  # for a server, Ctrl-C is the normal way to stop
    if not srv.started:
        raise UserError(f"cannot listen on {host}:{port}", "--host/--port", "choose another --port (0 picks a free one)")
    print("stopped", file=sys.stderr, flush=True)
