"""zoomreel: zoom videos into the fractal boundary of neural-network trainability."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# One XLA CPU device per core: the engine spreads chunks of pixels over them
# (measured faster than one device, see docs/benchmarks.md); XLA's own
# threading is left as it is, so code that uses one device keeps every core. Only possible before JAX starts, and only if the user
# has not chosen XLA flags of their own. GPUs are unaffected.
if "jax" not in _sys.modules and "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    try:
        _cores = len(_os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        _cores = _os.cpu_count() or 1
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={_cores}"
    ).strip()
