"""One XLA CPU device on one core, for per-core diagnostics.

Call :func:`pin` before JAX is imported: XLA reads its flags when it starts.
"""

from __future__ import annotations

import os
import re


def pin(extra_flags: str = "") -> None:
    flags = re.sub(r"--xla_force_host_platform_device_count=\S*", "", os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=1 {extra_flags}".strip()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
