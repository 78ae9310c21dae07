"""How close XLA's tanh loop is to hand-written vector code on this CPU.

A diagnostic for engine work, not a speed claim: tanh is about a third of
the CPU step (benchmarks/profile_step.py), so this asks whether a better tanh
loop is left to write. One XLA device pinned to one core times the engine's
float64 tanh (`engine.tanh64`, XLA's own rational function spelt out) and
float32 `jnp.tanh` on one chunk's activations. In the same run, a small C
program (AVX2 and FMA intrinsics, compiled here with the system's C compiler)
evaluates the same float64 rational function two ways, Horner as XLA does and
with each polynomial split into even and odd halves (shorter chains of
dependent operations), and measures the core's fused multiply-add throughput
and latency, which bound any such loop.

    python benchmarks/tanh_limit.py

Prints ns per element for each (XLA timed before and after the C program,
its best kept) and the ratio of XLA's loop to the best hand-written one. Needs `cc` and an x86-64 CPU with AVX2 and FMA for the C
half; without them it prints XLA's figures only.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from one_core import pin  # noqa: E402

pin()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from zoomreel import engine  # noqa: E402

# One float64 chunk's pre-activations: 64 pixels x 16 units x 272 points.
ROWS, POINTS = 64 * 16, 272
REPEATS = 5

C_SOURCE = r"""
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static const double P[10] = {%(P)s};
static const double Q[10] = {%(Q)s};
#define CLAMP %(CLAMP)s
#define ONE %(ONE)s
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
#define S(v) _mm256_set1_pd(v)
static inline __m256d tanh4(__m256d u, int split) {
  __m256d x = _mm256_min_pd(_mm256_max_pd(u, S(-CLAMP)), S(CLAMP)), y = _mm256_mul_pd(x, x), p, q;
  if (!split) {
    p = S(P[0]); q = S(Q[0]);
    for (int k = 1; k < 10; k++) { p = _mm256_fmadd_pd(p, y, S(P[k])); q = _mm256_fmadd_pd(q, y, S(Q[k])); }
  } else {
    __m256d y2 = _mm256_mul_pd(y, y), po = S(P[0]), pe = S(P[1]), qo = S(Q[0]), qe = S(Q[1]);
    for (int k = 2; k < 10; k += 2) {
      po = _mm256_fmadd_pd(po, y2, S(P[k])); pe = _mm256_fmadd_pd(pe, y2, S(P[k + 1]));
      qo = _mm256_fmadd_pd(qo, y2, S(Q[k])); qe = _mm256_fmadd_pd(qe, y2, S(Q[k + 1]));
    }
    p = _mm256_fmadd_pd(po, y, pe); q = _mm256_fmadd_pd(qo, y, qe);
  }
  __m256d one = _mm256_cmp_pd(_mm256_andnot_pd(S(-0.0), u), S(ONE), _CMP_GE_OQ);
  __m256d sgn = _mm256_or_pd(_mm256_and_pd(u, S(-0.0)), S(1.0));
  return _mm256_div_pd(_mm256_blendv_pd(_mm256_mul_pd(x, p), sgn, one), _mm256_blendv_pd(q, S(1.0), one));
}
int main(void) {
  long n = %(N)s; int reps = %(REPS)s;
  double *a = aligned_alloc(64, n * 8), *b = aligned_alloc(64, n * 8);
  srand(1);
  for (long i = 0; i < n; i++) a[i] = ((double)rand() / RAND_MAX - 0.5) * 8;
  for (int split = 0; split < 2; split++) {
    double best = 1e9, err = 0;
    for (int r = 0; r < reps; r++) {
      double t = now();
      for (int k = 0; k < 20; k++)
        for (long i = 0; i < n; i += 4) _mm256_storeu_pd(b + i, tanh4(_mm256_loadu_pd(a + i), split));
      t = (now() - t) / 20; if (t < best) best = t;
    }
    for (long i = 0; i < n; i++) { double e = fabs(b[i] - tanh(a[i])) / fabs(tanh(a[i])); if (e > err) err = e; }
    printf("c %%s %%.4f %%.3g\n", split ? "split" : "horner", best / n * 1e9, err);
  }
  __m256d m = S(0.999999), c = S(1e-7);
  __m256d f0 = S(0), f1 = S(1), f2 = S(2), f3 = S(3), f4 = S(4), f5 = S(5), f6 = S(6), f7 = S(7), f8 = S(8), f9 = S(9);
  long N = 50000000; double t = now();
  for (long k = 0; k < N; k++) {
#define F(v) v = _mm256_fmadd_pd(v, m, c);
    F(f0) F(f1) F(f2) F(f3) F(f4) F(f5) F(f6) F(f7) F(f8) F(f9)
    __asm__ volatile("" : "+x"(f0), "+x"(f1), "+x"(f2), "+x"(f3), "+x"(f4), "+x"(f5), "+x"(f6), "+x"(f7), "+x"(f8), "+x"(f9));
  }
  printf("fma_throughput %%.4f\n", (now() - t) / (N * 10.0) * 1e9);
  t = now();
  for (long k = 0; k < N; k++) { F(f0) __asm__ volatile("" : "+x"(f0)); }
  printf("fma_latency %%.4f\n", (now() - t) / N * 1e9);
  return 0;
}
"""


def time_xla(fn, a) -> float:
    """Best ns per element of the jitted ``fn`` over ``a``."""
    f = jax.jit(fn)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(20):
            f(a).block_until_ready()
        best = min(best, (time.perf_counter() - t) / 20)
    return best / a.size * 1e9


def run_c() -> dict | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or platform.machine() not in ("x86_64", "AMD64"):
        print("C half skipped: no C compiler, or not x86-64")
        return None
    src = C_SOURCE % {
        "P": ", ".join(c.hex() for c in engine.TANH64_P),
        "Q": ", ".join(c.hex() for c in engine.TANH64_Q),
        "CLAMP": engine.TANH64_CLAMP.hex(),
        "ONE": repr(engine.TANH64_ONE),
        "N": ROWS * POINTS,
        "REPS": REPEATS,
    }
    with tempfile.TemporaryDirectory() as d:
        c, exe = os.path.join(d, "tanh.c"), os.path.join(d, "tanh")
        with open(c, "w") as f:
            f.write(src)
        built = subprocess.run([cc, "-O3", "-mavx2", "-mfma", c, "-o", exe, "-lm"], capture_output=True, text=True)
        if built.returncode != 0:
            print("C half skipped: it did not compile:", built.stderr.strip().splitlines()[-1:])
            return None
        out = subprocess.run([exe], capture_output=True, text=True)
        if out.returncode != 0:
            print("C half skipped: it did not run (no AVX2 or FMA?)")
            return None
    res = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts[0] == "c":
            res[parts[1]] = (float(parts[2]), float(parts[3]))
        else:
            res[parts[0]] = float(parts[1])
    return res


def main():
    rng = np.random.default_rng(0)
    a64 = jnp.asarray(rng.normal(size=(ROWS, POINTS)) * 2)
    a32 = jnp.asarray((rng.normal(size=(2 * ROWS, POINTS)) * 2).astype(np.float32))
    print(f"machine: {platform.node()} {platform.machine()}; one core; jax {jax.__version__}")
    # XLA is timed before and after the C program and keeps its best, so that
    # a slow moment of a shared host does not fall on one side only.
    x64, x32 = time_xla(engine.tanh64, a64), time_xla(jnp.tanh, a32)
    c = run_c()
    x64, x32 = min(x64, time_xla(engine.tanh64, a64)), min(x32, time_xla(jnp.tanh, a32))
    print(f"XLA float64 tanh (engine.tanh64): {x64:.3f} ns per element")
    print(f"XLA float32 tanh (jnp.tanh):      {x32:.3f} ns per element")
    if c is None:
        return
    for k in ("horner", "split"):
        ns, err = c[k]
        print(f"C float64, same rational, {k:6s}: {ns:.3f} ns per element (max relative error against libm {err:.2g})")
    fma, lat = c["fma_throughput"], c["fma_latency"]
    # Horner, as XLA's object code has it: 18 multiply-adds and 2 multiplies
    # (x^2, and x times the numerator) per 4 elements; the division not counted.
    bound = 20 * fma / 4
    print(f"core: one 4-wide fused multiply-add every {fma:.3f} ns (throughput), {lat:.3f} ns (latency)")
    print(f"float64 bound from its 20 multiply-adds and multiplies alone: {bound:.3f} ns per element")
    best_c = min(c["horner"][0], c["split"][0])
    print(f"ratio XLA / best C {x64 / best_c:.2f}; XLA / bound {x64 / bound:.2f}")


if __name__ == "__main__":
    sys.exit(main())
