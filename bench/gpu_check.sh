#!/usr/bin/env bash
# The one-GPU check (bench/gpu_check.py): bf16 cache exactness, FlexAttention against SDPA, MFU of the
# gpu-100m preset (packed, compiled), a 300-step run whose loss must fall, torchrun with NCCL on every GPU
# present. Sized for 8 minutes on one H100; sections finished before the limit keep their figures.
# Needs torch with CUDA, numpy, pyarrow and safetensors. Prints one JSON line (also written to $1).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${1:-/tmp/gpu_check.json}
rm -f "$OUT"
PYTHONPATH=$PWD timeout 470 "$PY" bench/gpu_check.py --out "$OUT" >&2
[ -s "$OUT" ] && cat "$OUT" || echo '{"bench": "gpu_check", "error": "no section finished"}'
echo
