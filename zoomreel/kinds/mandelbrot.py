"""The Mandelbrot set: z <- z^2 + c per pixel, the classic fractal through
the same pipeline (for comparison with the network's boundary)."""

from __future__ import annotations

from . import Axis, KindSpec


class Mandelbrot(KindSpec):
    name = "mandelbrot"
    keys = frozenset({"steps"})

    def parse(self, r, m, plane, base):
        from ..model import Model

        extra = sorted(set(m) - {"kind", "steps"})
        if extra:
            r.fail(f"model.{extra[0]}", f"'{extra[0]}' does not apply to the Mandelbrot set",
                   'a kind = "mandelbrot" model takes only steps (the iteration limit)')
        if plane is not None:
            r.fail("plane", "the Mandelbrot set's plane is fixed (Re c, Im c)", "remove the [plane] table")
        return Model(kind="mandelbrot", steps=r.ranged(m.get("steps", 500), "model.steps", integer=True))

    def axes(self, model):
        return Axis("re", False, "Re c"), Axis("im", False, "Im c")

    def key_fields(self, model):
        # Only the iteration limit matters for the Mandelbrot set.
        return {"kind": "mandelbrot", "steps": model.steps}

    def chunk(self, model, dtype, platform):
        return 4096  # a pixel is two scalars

    def table(self, model):
        return {"kind": "mandelbrot", "steps": model.steps}


SPEC = Mandelbrot()
