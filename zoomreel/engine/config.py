"""Runtime configuration: what the engine needs of JAX, set explicitly.

Importing zoomreel changes nothing global. :func:`configure` is called once per
process by whoever runs the engine (the CLI, a cluster worker, the test suite),
before the first training:

- the XLA CPU devices: one per core, so the scheduler can spread chunks of
  pixels over them (measured faster than one device, docs/benchmarks.md);
  only possible before JAX starts its backends, and GPUs are unaffected;
- 64-bit mode, which float64 (and double-double) training needs;
- the compiled-program cache (:func:`compile_cache_dir`).

:func:`ensure` is what :func:`zoomreel.engine.train` calls: it configures with
the defaults unless someone already did.
"""

from __future__ import annotations

import os

import jax

_configured: dict | None = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def compile_cache_dir() -> str | None:
    """Where XLA's compiled programs are kept between runs, or None.

    Compiling the engine's programs (both precisions for the precision probe,
    a few chunk sizes as pixels retire) takes several seconds, more than a
    small frame's training; kept on disk, the next run loads them instead.
    Programs loaded from the cache compute the same bits (the tests check it).
    The folder's ``draws/`` keeps each model's reference draws (see
    :mod:`zoomreel.engine.randoms`).

    ``ZOOMREEL_JAX_CACHE``: a folder, or ``off``. Unset: the user's cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``), ``zoomreel/jax``. A cache
    folder the user set for JAX itself wins; one that cannot be written is
    skipped.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return None  # the user's own choice stands
    where = os.environ.get("ZOOMREEL_JAX_CACHE", "").strip()
    if where.lower() in ("off", "0", "no", "false"):
        return None
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        where = os.path.join(base, "zoomreel", "jax")
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return None
    return where if os.access(where, os.W_OK) else None


def configure(cpu_devices: int | None = None, compile_cache: bool = True) -> dict:
    """Set up JAX for the engine in this process; returns what was set.

    ``cpu_devices``: XLA CPU devices (default: one per core this process may
    use). A cluster worker passes its share of the node's cores. Ignored when
    JAX's backends have already started, or when the user's XLA_FLAGS choose
    a device count. Calling again changes nothing that JAX has already used.
    """
    global _configured
    n = cpu_devices or _cores()
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        try:
            jax.config.update("jax_num_cpu_devices", n)
        except RuntimeError:  # the backends have started: the count is what it is
            pass
    jax.config.update("jax_enable_x64", True)
    cache = compile_cache_dir() if compile_cache else None
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        # The engine's programs compile in about 0.5 s each: keep them all
        # (about 20 kB each; the folder can be deleted at any time).
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _configured = {"cpu_devices": n, "compile_cache": cache}
    return _configured


def ensure() -> dict:
    """The configuration in force, made with the defaults if nobody configured."""
    return _configured if _configured is not None else configure()


def cache_folder() -> str | None:
    """The compile cache folder in use (after :func:`ensure`), or None."""
    return ensure()["compile_cache"]
