#!/usr/bin/env bash
# GPU check for the paper profile (≤ 5 minutes on one H100): step time, peak memory, seconds per volume.
#   bash benchmarks/gpu_check.sh            # CUDA machine, after `make install TORCH_SPEC=...cuda...`
#   bash benchmarks/gpu_check.sh --device cpu --quick --steps 2   # code-path check on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec timeout 300 "$PY" benchmarks/gpu_check.py "$@"
