"""The precision names, without JAX: one source for the keyframe file, the
CLI, the cache's counts and the engine's arithmetics.

``ARITHMETICS`` lists the engine's arithmetics cheapest first, the order of
:data:`zoomreel.engine.arith.LADDER` (the suite checks that the two agree);
``auto`` asks the precision probe to walk them (:mod:`zoomreel.precision`).
"""

from __future__ import annotations

AUTO = "auto"
FLOAT32 = "float32"
FLOAT64 = "float64"
DD = "dd"  # double-double: an unevaluated sum of two float64 (zoomreel.engine.dd)
ARITHMETICS = (FLOAT32, FLOAT64, DD)
PRECISIONS = (AUTO,) + ARITHMETICS


def spelled(names=PRECISIONS, last: str = "or") -> str:
    """The names as a user reads them: ``auto, float32 or float64``."""
    return ", ".join(names[:-1]) + f" {last} {names[-1]}" if len(names) > 1 else names[0]
