"""The device policy: which devices train, in what chunks, groups and segments.

Resolved once per call of :func:`zoomreel.engine.train` (:func:`policy`), so
the scheduler reads plain numbers.

- chunk: pixels per jitted call. A network pixel works on (n x points)
  matrices, so 128 float32 pixels (64 in float64) keep a chunk's activations
  in a CPU core's cache (docs/benchmarks.md), and 32 dd pixels (their
  products XLA materialises; 32 was the fastest of 8 to 64); a kind may ask for
  its own (:meth:`zoomreel.kinds.KindSpec.chunk`: a Mandelbrot pixel is two
  scalars, so it takes far more). On a GPU the products run faster the larger
  the chunk, flattening out near 32768 pixels.
- group: pixels trained together from the first step to the last. A group's
  starting state is built on the host (1 to 2 kB a pixel); on a CPU 16384
  pixels bound memory, and a GPU's group holds eight chunks per device, so
  the host reads one chunk's losses while the device trains the next.
- segment: steps between two looks at the losses (retirement, progress).
- shrink: on a CPU a pixel's bits do not depend on its chunk's size (the
  suite checks it), so chunks shrink to fit the pixels left. A GPU's
  libraries pick their kernels, and so their order of summation, by the size
  of the product: there a call keeps one chunk size, so that early exit
  cannot change a value.

``ZOOMREEL_CHUNK`` overrides the chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax

from .. import kinds

SEGMENT_STEPS = 25


@dataclass(frozen=True)
class Policy:
    devices: tuple
    chunk: int
    group: int
    segment: int
    shrink: bool

    @property
    def platform(self) -> str:
        return self.devices[0].platform


def default_chunk(model=None, dtype: str = "float32", platform: str | None = None) -> int:
    env = os.environ.get("ZOOMREEL_CHUNK")
    if env:
        return max(1, int(env))
    platform = platform or jax.devices()[0].platform
    hint = None if model is None else kinds.spec(model.kind).chunk(model, dtype, platform)
    if hint:
        return hint
    if platform != "cpu":
        return 32768
    if dtype == "dd":
        return 32  # per dd pixel-step: 593 us in chunks of 8, 521 of 16, 502 of 32, 548 of 64 (docs/benchmarks.md)
    return 128 if dtype == "float32" else 64


def default_group(chunk: int, n_devices: int | None = None) -> int:
    return max(16384, 8 * chunk * (n_devices or len(jax.local_devices())))


def policy(model, dtype: str, chunk: int | None = None, group: int | None = None) -> Policy:
    devices = tuple(jax.local_devices())
    platform = devices[0].platform
    B0 = chunk or default_chunk(model, dtype, platform)
    return Policy(
        devices=devices,
        chunk=B0,
        group=group or default_group(B0, len(devices)),
        segment=SEGMENT_STEPS,
        shrink=platform == "cpu",
    )


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')} x{len(jax.devices())}"
