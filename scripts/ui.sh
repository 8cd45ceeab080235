#!/usr/bin/env bash
# Set up (idempotent) and open the Dagster UI on the embedded default instance, with scripts/main.sh's
# environment: `dagster dev` (webserver and daemon) on http://127.0.0.1:${PORT:-3000}. "Materialize all" on
# the global asset lineage builds the whole graph from the UI alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/env.sh
exec .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "${PORT:-3000}"
