#!/usr/bin/env bash
# The one prepared GPU run of issue 25, in two steps.
#
#   benchmarks/device_run.sh prepare [DATA]   here, before the call: copies MNIST and Fruits-360 from DATA
#                                             (default ../shared/data) into .device-data/, which git ignores, so
#                                             that it travels with the checkout when the call carries it
#   benchmarks/device_run.sh                  on the CUDA machine: installs this checkout without dependencies
#                                             (the machine has them and no network), runs
#                                             `python3 -m benchmarks --sections gpu` under a timeout, and leaves
#                                             <machine>/results.{json,md}, the charts and device_run.log in $OUT
#
# Wheels in .whl/ (git-ignored; carry it) are installed first, ahead of the machine's packages. The image's NumPy 2.5
# has no np.row_stack, which numba-cuda 0.30.4 registers, so the GPU is unusable there: carry a NumPy 2.4 wheel
# (python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
#  --platform manylinux_2_28_x86_64 -d .whl 'numpy>=2.4,<2.5'), as the cuda extras require.
#
# The section bounds each of its parts (benchmarks/gpu.py: 450 s from the start of Python); LIMIT_S (default 500)
# bounds the whole Python run, charts included. Numba's low-occupancy warnings are off (one per small launch). Exit status: the benchmark's (0 ok, 1 a part failed, 2 no usable
# GPU, 124 killed at LIMIT_S), or 3 when the install failed.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA="$ROOT/.device-data"

prepare() {
  local source="${1:-$ROOT/../shared/data}"
  for folder in mnist fruits-360; do
    if [ ! -d "$source/$folder" ]; then
      echo "device_run.sh: $source/$folder is missing; name the data folder: benchmarks/device_run.sh prepare DIR" >&2
      return 2
    fi
  done
  rm -rf "$DATA.tmp" && mkdir -p "$DATA.tmp" && cp -r "$source/mnist" "$source/fruits-360" "$DATA.tmp/" &&
    rm -rf "$DATA" && mv "$DATA.tmp" "$DATA" || return 1
  echo "copied $(du -sh "$DATA" | cut -f1) of data into $DATA: name .device-data in the call's carry list"
}

device_run() {
  if [ ! -d "$DATA/mnist" ]; then
    echo "device_run.sh: $DATA has no data; run benchmarks/device_run.sh prepare before the call and carry .device-data"
    return 2
  fi
  cd "$ROOT" || return 1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  if compgen -G "$ROOT/.whl/*.whl" > /dev/null; then  # carried wheels replace the machine's versions of theirs
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$ROOT"/.whl/*.whl ||
      { echo "device_run.sh: installing the carried wheels failed"; return 3; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    echo "carried wheels: $(cd "$ROOT/.whl" && echo *.whl)"
  fi
  python3 -m pip install -q -e . --no-deps --no-build-isolation || { echo "device_run.sh: pip install failed"; return 3; }
  python3 -m xpnet info
  export XPNET_DATA=/tmp/xpnet-data PYTHONUNBUFFERED=1 NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0
  timeout -k 15 "${LIMIT_S:-500}" python3 -m benchmarks --sections gpu --data-dir "$DATA" --out "$OUT"
  local status=$?
  echo "device_run.sh: python3 -m benchmarks --sections gpu ended with exit status $status"
  return $status
}

if [ "${1:-}" = prepare ]; then
  prepare "${2:-}"
  exit $?
fi
OUT="${OUT:-$ROOT/benchmarks/device-out}"
mkdir -p "$OUT"
device_run 2>&1 | tee "$OUT/device_run.log"
exit "${PIPESTATUS[0]}"
