#!/bin/bash
# The fused kernel on a GPU machine, in at most 5 minutes, on a python3 that
# has JAX with the CUDA plugin, pytest and the project's dependencies: the
# kernel the GPU picks and its check, the kernel compiled natively and compared
# with the XLA step, the engine benchmark for both kernels (% of the FP32 /
# FP64 peak) and a 1920x1080 500-step frame, then, with the time left, the
# tests that hold the kernel natively.
# Logs go to ./gpu-logs (LOGS=DIR puts them elsewhere).
# Usage: bash benchmarks/gpu_check.sh  (PYTHON=..., SIZE=... STEPS=... for a dry run elsewhere)
LOGS=${LOGS:-gpu-logs}; mkdir -p "$LOGS"
PY=${PYTHON:-python3}  # python3 on the GPU machine has JAX with the CUDA plugin
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export ZOOMREEL_JAX_CACHE=${TMPDIR:-/tmp}/zoomreel-jax
start=$SECONDS
run() { local name=$1 limit=$2; shift 2; echo "=== $name ($((SECONDS - start)) s in): $*"; timeout "$limit" "$@" 2>&1 | tee "$LOGS/$name.log" | grep --line-buffered -v "^W0000\|^I0000"; local rc=${PIPESTATUS[0]}; echo "=== $name exit $rc"; return "$rc"; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader
"$PY" -c "import jax, numpy; print('jax', jax.__version__, 'numpy', numpy.__version__, jax.devices())"
# 1. compile and run the kernel natively on a few pixels, against the XLA step
kernels=xla
if run smoke 90 "$PY" - <<'PY'
import time, numpy as np
from zoomreel import engine
from zoomreel.model import Model
engine.configure()
t = time.perf_counter(); print("chosen by default:", engine.describe_kernel(Model()), f"(its check on this GPU: {time.perf_counter() - t:.1f} s)")
from zoomreel.engine import fused
fused._checking.set(True)  # below, the kernel itself, unchecked: a failure shows its whole traceback
hx = 10.0 ** np.repeat(np.linspace(-1, 4, 8), 8); hy = 10.0 ** np.tile(np.linspace(-1, 4, 8), 8)
for m, dt in ((Model(steps=25), "float32"), (Model(steps=25), "float64"), (Model(batch=16, steps=25), "float32")):
    t = time.perf_counter(); f = engine.train(m, hx, hy, dt, impl="fused").values; t = time.perf_counter() - t
    x = engine.train(m, hx, hy, dt, impl="xla").values
    rel = np.abs(f - x) / np.abs(x)
    print(f"batch={m.batch} {dt}: first call (compiles) {t:.1f} s; same class {np.mean((f < 0) == (x < 0)):.3f}, median rel {np.median(rel):.2g}, max {rel.max():.2g}")
PY
then kernels=xla,fused; fi
# 2. the engine benchmark, both kernels, and a 1920x1080 frame of 500 steps with the fused one
hd=""; [[ $kernels == *fused* ]] && hd="--hd fused"
run bench 150 "$PY" benchmarks/bench_engine.py --size ${SIZE:-512} --steps ${STEPS:-500} --repeats 1 --no-frame --no-baseline --kernels $kernels $hd
# 3. with the time left, the fused kernel's tests, then the science tests with
#    it, natively (each test compiles its own kernels; the limit may cut the
#    last ones: -vv logs each result as it comes)
[[ $kernels == *fused* ]] && run tests $(( (left = 295 - (SECONDS - start)) > 10 ? left : 10 )) "$PY" -m pytest -vv -p no:cacheprovider tests/test_fused.py tests/test_science.py -k "(test_fused or fused]) and not compiles_for_an_h100"
echo "=== total $((SECONDS - start)) s"
