"""The fused kernel as GPU code, made on any machine: no GPU needed.

A GPU's run of the kernel starts with two compilers this machine can also
run: Pallas lowers the kernel to Triton IR, and Triton compiles that IR to
PTX and a cubin (``ptxas``). Both run here, for any NVIDIA architecture:

- :func:`lower_for_cuda`: the XLA program (with its Triton kernel) that a
  CUDA GPU would run for one segment, and the Triton IR in it;
- :func:`compile_cuda`: that IR compiled by the ``triton`` package (the
  ``gpucheck`` extra: ``pip install -e '.[gpucheck]'``), with what ptxas
  allocated per thread (registers, stack: a spill) and the instruction mix
  of the kernel's hottest loop, from the cubin's SASS.

What only a GPU can say is the speed. The ``triton`` package is not the copy
of Triton inside jaxlib's CUDA plugin, which compiles the kernel on a GPU;
the two read the same IR, and their code generators are close, not equal.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .devices import SEGMENT_STEPS

@contextlib.contextmanager
def _triton_modules(into: list):
    """Within the block, each Triton module Pallas lowers is appended to
    ``into`` as text (without debug locations, which Triton can't read back).

    Pallas has no public hook for this; it is read where Pallas's Triton
    lowering builds the module (JAX 0.10; a JAX that moves it fails here,
    loudly, not silently).
    """
    from jax._src.pallas.triton import pallas_call_registration as registration

    lowering = registration.lowering
    build = lowering.lower_jaxpr_to_triton_module

    def keep(*args, **kwargs):
        result = build(*args, **kwargs)
        into.append(result.module.operation.get_asm(enable_debug_info=False))
        return result

    lowering.lower_jaxpr_to_triton_module = keep
    try:
        yield into
    finally:
        lowering.lower_jaxpr_to_triton_module = build


def lower_for_cuda(model, dtype: str, B: int = 64) -> tuple[str, str]:
    """(HLO text, Triton IR text) of one segment of ``B`` pixels of the fused
    kernel, lowered for a CUDA GPU."""
    import jax

    from . import arithmetic, fused
    from .formulation import get

    A = arithmetic(dtype)
    form = get("network", "fused")
    fn = fused.build_fused_segment(model, A, B, SEGMENT_STEPS, True, interpret=False)
    a = A.cast(np.ones(B))
    idx = form.schedule(model)
    args = (form.initial_state(model, a, A), a, a, np.full(B, np.nan, A.dtype), form.consts(model, A),
            None if idx is None else idx[:SEGMENT_STEPS])
    with _triton_modules([]) as modules:
        hlo = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    if len(modules) != 1:
        raise RuntimeError(f"lowering the fused kernel gave {len(modules)} Triton modules, not 1")
    return hlo, modules[0]


@dataclass
class Compiled:
    cc: int  # compute capability, e.g. 90 for an H100 or H200
    num_warps: int
    ptx: str
    cubin: bytes
    registers: int  # per thread, as ptxas allocated them
    stack: int  # bytes of local memory per thread: registers spilled
    shared: int  # bytes of shared memory per block (Triton's own staging)
    sass: list  # [(address, opcode, branch target or None)]

    def loops(self) -> list[tuple[int, int]]:
        """(first, last) address of each loop (a backward branch), innermost first."""
        spans = {(t, a) for a, _, t in self.sass if t is not None and t < a}
        return sorted(spans, key=lambda s: s[1] - s[0])

    def hottest_loop_mix(self) -> collections.Counter:
        """Opcode counts of the innermost loop of more than 16 instructions:
        the pass over one tile of points, which runs 17 times a step."""
        for first, last in self.loops():
            body = [op for a, op, _ in self.sass if first <= a <= last]
            if len(body) > 16:
                return collections.Counter(body)
        return collections.Counter(op for _, op, _ in self.sass)


def _triton():
    try:
        import triton
        from triton.backends.compiler import GPUTarget
    except ImportError:
        raise UserError("the triton package is not installed", "gpucheck extra",
                        "pip install -e '.[gpucheck]' to compile the kernel for a GPU here") from None
    return triton, GPUTarget


def _tool(name: str) -> str:
    triton, _ = _triton()
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def compile_cuda(ttir: str, cc: int = 90, num_warps: int | None = None) -> Compiled:
    """Compile Triton IR to a cubin for compute capability ``cc``, as the
    kernel's compiler parameters ask (``fused.NUM_WARPS``, one stage)."""
    from . import fused

    triton, GPUTarget = _triton()
    warps = fused.NUM_WARPS if num_warps is None else num_warps
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ttir")
        with open(src, "w") as f:
            f.write(ttir)
        k = triton.compile(src, target=GPUTarget("cuda", cc, 32), options={"num_warps": warps, "num_stages": 1})
        cub = os.path.join(tmp, "kernel.cubin")
        with open(cub, "wb") as f:
            f.write(k.asm["cubin"])
        usage = subprocess.run([_tool("cuobjdump"), "-res-usage", cub], capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([_tool("cuobjdump"), "-sass", cub], capture_output=True, text=True, check=True).stdout
    m = re.search(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)", usage)
    if m is None:
        raise RuntimeError(f"cuobjdump gave no resource usage: {usage[:200]!r}")
    return Compiled(cc, warps, k.asm["ptx"], k.asm["cubin"], int(m.group(1)), int(m.group(2)), int(m.group(3)),
                    _parse_sass(sass))


def _parse_sass(text: str) -> list:
    out = []
    for line in text.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if not m:
            continue
        words = m.group(2).split()
        op = (words[1] if words[0].startswith("@") else words[0]).split(".")[0]  # without predicate, modifiers
        target = re.search(r"0x([0-9a-f]+)", m.group(2)) if op == "BRA" else None
        out.append((int(m.group(1), 16), op, int(target.group(1), 16) if target else None))
    return out
