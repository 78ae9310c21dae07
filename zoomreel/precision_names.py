"""The names of the precision settings, without JAX: one source for the
keyframe file, the CLI, the cache's counts and the engine's arithmetics.

``ARITHMETICS`` names the engine's arithmetics cheapest first, the order of
:data:`zoomreel.engine.arith.LADDER` (the suite checks that the two agree);
``MODES`` names the ways of training that are not an arithmetic of their
own: ``perturb``, every pixel a float64 difference from a reference trained
in many digits (zoomreel.engine.perturb). ``PRECISIONS`` is what
``[video] precision`` and ``--precision`` accept: ``auto`` (the precision
decision walks float32, float64, then perturbation, with dd where
perturbation does not train the model, :mod:`zoomreel.precision`), one
arithmetic's name, or a mode's. ``DTYPES`` is what a frame can be trained
in: an arithmetic or a mode.
"""

from __future__ import annotations

AUTO = "auto"
ARITHMETICS = ("float32", "float64", "dd")  # dd: double-double, an unevaluated sum of two float64 (zoomreel.engine.dd)
PERTURB = "perturb"
MODES = (PERTURB,)
PRECISIONS = (AUTO,) + ARITHMETICS + MODES
DTYPES = ARITHMETICS + MODES

