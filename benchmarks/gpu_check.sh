#!/usr/bin/env bash
# The GPU check: the whole suite on CuPy, JAX and PyTorch with a CUDA GPU as the device,
# then the benchmark's GPU rows. Run from the repository root on a machine with an NVIDIA
# GPU; results go to ${OUT:-gpu-results}/. CI never has a GPU: nothing depends on this.
#
# Where array-api-compat / array-api-strict are not installed, put their wheels in .whl/
# (pip download --no-deps --only-binary=:all: -d .whl array-api-compat array-api-strict).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    pip install -q --no-index --no-deps --target /tmp/anynet-site .whl/*.whl
    export PYTHONPATH=/tmp/anynet-site:$PWD
else
    export PYTHONPATH=$PWD
fi
# Exact float32: no TF32 matmuls (cuBLAS/cuDNN and JAX's default precision).
export NVIDIA_TF32_OVERRIDE=0 JAX_DEFAULT_MATMUL_PRECISION=highest
export JAX_ENABLE_X64=1 MPLBACKEND=Agg XLA_PYTHON_CLIENT_PREALLOCATE=false
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python - <<'PY'
import importlib
for name in ("numpy", "cupy", "jax", "torch", "array_api_compat", "array_api_strict"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:  # report, do not stop
        print(name, "not importable:", exc)
PY
} > "$OUT/versions.txt" 2>&1
# The suite minus what needs no GPU (optional extras, subprocess-heavy CLI/fuzz runs).
SKIP="--ignore=tests/test_fuzz.py --ignore=tests/test_cli.py --ignore=tests/test_examples.py
      --ignore=tests/test_sklearn.py --ignore=tests/test_plot.py --ignore=tests/test_onnx.py
      --ignore=tests/test_dask.py --ignore=tests/test_parallel.py --ignore=tests/test_memory.py
      --ignore=tests/test_structure.py --ignore=tests/test_packaging.py"
status=0
for backend in cupy jax torch; do
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout "${SUITE_TIMEOUT:-170}" python -m pytest --backend "$backend" --device gpu -q \
        -p no:cacheprovider $SKIP > "$OUT/suite_$backend.txt" 2>&1
    code=$?
    echo "$backend: exit $code in $(( $(date +%s) - start )) s" >> "$OUT/summary.txt"
    [ "$code" -eq 0 ] || status=1
done
timeout "${BENCH_TIMEOUT:-100}" python benchmarks/run.py --quick --backends numpy,cupy,jax,torch \
    > "$OUT/benchmark.txt" 2>&1
echo "benchmark: exit $?" >> "$OUT/summary.txt"
exit $status
