"""``python -m zoomreel`` and the ``zoomreel`` command.

Ctrl-C is taken over before anything heavy is imported (zoomreel.interrupt).
"""

import os
import sys


def main() -> None:
    from . import interrupt

    interrupt.install()
    from . import cli

    try:
        cli.main()
    except SystemExit as e:
        if e.code != 130:
            raise
        # The run stopped on Ctrl-C and said so. If the interrupt landed while
        # an extension ran Python code of its own (PyRun_String), CPython has
        # marked it "unhandled" although zoomreel handled it, and would end the
        # process by SIGINT (status -2) at exit: leave with 130 directly. The
        # cache needs nothing more (its writes are atomic; stale temporary
        # files are swept by the next run).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


if __name__ == "__main__":
    main()
