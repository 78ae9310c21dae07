#!/bin/bash
# The engine on a GPU machine: environment, kernel throughput by chunk size,
# the engine's scheduling options, the engine benchmark (bench_engine.py), and
# the science tests on the GPU. Logs go to ./gpu-logs (LOGS=DIR puts them
# elsewhere). Usage: bash benchmarks/gpu.sh [parts], parts a comma-separated
# subset of env,step,options,bench,render,tests (default all but render).
# KERNEL=fused times that implementation of the network step instead of xla.
LOGS=${LOGS:-gpu-logs}; mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
parts=${1:-env,step,options,bench,tests}
KERNEL=${KERNEL:-xla}
run() { local name=$1 limit=$2; shift 2; echo "=== $name: $*"; timeout "$limit" "$@" 2>&1 | tee "$LOGS/$name.log" | grep -v "^W0000\|^I0000"; echo "=== $name exit ${PIPESTATUS[0]}"; }
if [[ $parts == *env* ]]; then
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,driver_version --format=csv
  python3 -c "import jax, numpy; print('jax', jax.__version__, 'numpy', numpy.__version__, jax.devices())"
  nproc; python3 --version
fi
[[ $parts == *step* ]] && run step 200 python3 benchmarks/step_throughput.py --kernel $KERNEL --chunks 2048,8192,16384,32768,65536 --calls 4 --profile 16384
[[ $parts == *options* ]] && run options 110 python3 benchmarks/engine_options.py --size 512 --steps 500 --dtype float32 --chunks 32768 --repeats 2
[[ $parts == *bench* ]] && run bench 280 python3 benchmarks/bench_engine.py --kernels $KERNEL --size 512 --steps 500 --repeats 2
[[ $parts == *render* ]] && run render 120 bash -c "time python3 -m zoomreel render keyframes/quick.toml --draft"
[[ $parts == *tests* ]] && run tests 170 python3 -m pytest -q -p no:cacheprovider tests/test_science.py
true
