#!/usr/bin/env bash
# Set up (idempotent) and materialise the whole asset graph on the embedded default instance
# (SQLite under .dagster_home, in-process executor, the cpu-default model: about 5 minutes of CPU
# training for HRM and 3 for the baseline; docs/training.md, "The default run").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh
exec .venv/bin/hrm materialize "$@"
