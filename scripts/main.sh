#!/usr/bin/env bash
# Set up (idempotent) and materialise the whole asset graph on the embedded default instance
# (SQLite under .dagster_home, in-process executor, tiny CPU model).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"
# Offline machines clone the Polyglot benchmark from the local bundle when one sits beside the repo.
BUNDLE="$ROOT/../shared/mirrors/polyglot-benchmark.bundle"
if [ -z "${HRM_POLYGLOT_SOURCE:-}" ] && [ -f "$BUNDLE" ]; then
  export HRM_POLYGLOT_SOURCE="$BUNDLE"
fi
exec .venv/bin/hrm materialize "$@"
