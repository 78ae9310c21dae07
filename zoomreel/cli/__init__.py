"""The command line: the typer app, how every command runs, and ``main``.

A thin layer: :mod:`.commands` wires the stages together for each command,
:mod:`.progress` shows the work; neither holds any orchestration of its own.
"""

from __future__ import annotations

import sys

import typer

from .. import interrupt
from ..errors import UserError, printable

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Zoom videos into the fractal boundary of neural-network trainability.")


def run(fn):
    """Run a command's body: JAX started first (a Ctrl-C during its start-up
    waits for it), a UserError as one line and exit 2, Ctrl-C as one line and exit 130."""
    try:
        with interrupt.deferred():  # a Ctrl-C during imports and JAX's start-up waits for their end
            interrupt.signal_point("startup")
            import jax

            from .. import engine

            engine.configure()
            jax.devices()
            interrupt.signal_point("devices")
        interrupt.arm()
        result = fn()
        interrupt.disarm()
        interrupt.raise_pending()  # one that something swallowed
        return result
    except UserError as e:
        interrupt.disarm()
        print(printable(e.line()), file=sys.stderr)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        interrupt.disarm()
        print(interrupt.MESSAGE, file=sys.stderr)
        raise typer.Exit(130)


def main():
    interrupt.install()  # when started as zoomreel.cli:main
    app()


from . import commands  # noqa: E402,F401  (registers the commands on app)
