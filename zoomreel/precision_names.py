"""The names of the precision settings, without JAX: one source for the
keyframe file, the CLI, the cache's counts and the engine's arithmetics.

``ARITHMETICS`` names the engine's arithmetics cheapest first, the order of
:data:`zoomreel.engine.arith.LADDER` (the suite checks that the two agree);
``PRECISIONS`` is what ``[video] precision`` and ``--precision`` accept:
``auto`` (the precision decision walks the arithmetics,
:mod:`zoomreel.precision`) or one arithmetic's name.
"""

from __future__ import annotations

AUTO = "auto"
ARITHMETICS = ("float32", "float64", "dd")  # dd: double-double, an unevaluated sum of two float64 (zoomreel.engine.dd)
PRECISIONS = (AUTO,) + ARITHMETICS

