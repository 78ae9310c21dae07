"""``python -m zoomreel`` and the ``zoomreel`` command.

Ctrl-C is taken over before anything heavy is imported (zoomreel.interrupt).
"""


def main() -> None:
    from . import interrupt

    interrupt.install()
    from . import cli

    cli.main()


if __name__ == "__main__":
    main()
