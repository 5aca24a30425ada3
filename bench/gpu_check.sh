#!/usr/bin/env bash
# The GPU check, one command on a machine with a CUDA GPU (what `make gpu-check` runs):
#
#     bash bench/gpu_check.sh
#
# 1. installs the wheels in .whl/ (`make gpu-wheels` fetched them where PyPI is reachable:
#    dask and what it needs beyond the machine's own packages) into a folder under /tmp,
#    never from the network and never into a virtual environment;
# 2. runs the GPU tests (tests/test_gpu.py, with its CPU stand-ins) and tests/test_ops.py,
#    whose device="auto" computes on the GPU there;
# 3. runs bench/gpu.py, which prints one markdown table last.
#
# Exit status: 0 when the tests passed and the benchmark's checks held; else the first
# failure's (tests: pytest's; benchmark: 1; no GPU: 3). Variables: GPU_PYTHON (python3),
# GPU_SITE (/tmp/ndstack-gpu-site), GPU_TEST_TIMEOUT (240 s), GPU_BENCH_TIMEOUT (330 s),
# and bench/gpu.py's NDSTACK_GPU_* (its docstring). When OUT is set (the device tool's
# folder), the whole log is also written to $OUT/gpu-check.log.
set -u
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
PY=${GPU_PYTHON:-python3}
SITE=${GPU_SITE:-/tmp/ndstack-gpu-site}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ -n "${OUT:-}" ] && [ -d "${OUT}" ] && [ -z "${GPU_CHECK_LOGGING:-}" ]; then
  export GPU_CHECK_LOGGING=1
  set -o pipefail
  bash "$self" "$@" 2>&1 | tee "$OUT/gpu-check.log"
  exit $?
fi
start=$(date +%s)

echo "== setup"
if compgen -G ".whl/*.whl" >/dev/null; then
  rm -rf "$SITE"
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl; then
    echo "gpu-check: installing .whl/*.whl failed" >&2
    exit 2
  fi
  export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed $(ls .whl | tr '\n' ' ')into $SITE"
else
  echo "no .whl/ (make gpu-wheels): only what $PY has"
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ["numpy", "scipy", "skimage", "xarray", "pandas", "dask", "toolz", "tifffile",
             "cupy", "pytest", "pytest_timeout", "threadpoolctl", "ndstack"]:
    try:
        m = importlib.import_module(name)
        print(f"  {name} {getattr(m, '__version__', '?')} ({m.__file__})")
    except Exception as exc:
        print(f"  {name}: NOT IMPORTABLE ({type(exc).__name__}: {exc})")
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    p = cupy.cuda.runtime.getDeviceProperties(0)
    print(f"  GPU: {n} device(s), {p['name'].decode() if isinstance(p['name'], bytes) else p['name']}")
except Exception as exc:
    print(f"  GPU: none ({type(exc).__name__}: {exc})")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader

echo "== tests ($(($(date +%s) - start)) s)"
# Plugins: only pytest-timeout (the ini sets timeout=300), not whatever the image has.
# -W default: warnings are shown, not raised as pyproject's filterwarnings=error would:
# this machine's NumPy, xarray and CuPy are newer than ours and may deprecate things;
# such warnings are not what this check is about (the summary still lists them).
plugins=()
if "$PY" -c "import pytest_timeout" 2>/dev/null; then plugins=(-p pytest_timeout); fi
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout "${GPU_TEST_TIMEOUT:-240}" \
  "$PY" -m pytest -p no:cacheprovider ${plugins[@]+"${plugins[@]}"} -W default -q \
  tests/test_gpu.py tests/test_ops.py
tests=$?
echo "== tests: exit $tests ($(($(date +%s) - start)) s)"

echo "== benchmark"
timeout "${GPU_BENCH_TIMEOUT:-330}" "$PY" bench/gpu.py --require-gpu
bench=$?
echo "== benchmark: exit $bench; tests: exit $tests; $(($(date +%s) - start)) s in all"
if [ "$tests" -ne 0 ]; then exit "$tests"; fi
exit "$bench"
