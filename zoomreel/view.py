"""A view of the plane: the value type every stage from the path on shares.

A :class:`View` is a centre and a span in exact decimals and a size in
pixels; it knows its pixel spacing and the fields that identify its pixels in
cache keys, and nothing of scenes, files or JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

PREC = 60  # significant digits for every path computation
KEY_DIGITS = 40  # digits that identify a view (cache keys)


@dataclass(frozen=True)
class View:
    center: tuple[Decimal, Decimal]
    span: Decimal  # width along x, in plane units
    size: tuple[int, int]  # (W, H)

    @property
    def spacing(self) -> Decimal:
        with localcontext(prec=PREC):
            return self.span / self.size[0]

    @property
    def pixels(self) -> int:
        return self.size[0] * self.size[1]

    def key_fields(self) -> dict:
        f = lambda d: f"{d:.{KEY_DIGITS}e}"  # noqa: E731
        return {"center": [f(self.center[0]), f(self.center[1])], "span": f(self.span), "size": list(self.size)}

    def describe(self) -> str:
        return f"centre ({self.center[0]:.15g}, {self.center[1]:.15g}) span {float(self.span):.4g}"
