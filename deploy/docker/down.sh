#!/usr/bin/env bash
# Stops the Docker deployment: its services and the run containers the launcher started (label
# hrm/deployment). The data and Postgres volumes stay unless --volumes is given.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export HRM_POSTGRES_PASSWORD="${HRM_POSTGRES_PASSWORD:-unused-by-down}"
runs="$(docker ps -aq --filter "label=hrm/deployment=$HRM_DEPLOYMENT")"
[ -z "$runs" ] || docker rm -f $runs >/dev/null
if [ "${1:-}" = --volumes ]; then
  compose down -v --remove-orphans >&2
  rm -f "$ENV_FILE"
else
  compose down --remove-orphans >&2
fi
log "deployment $HRM_DEPLOYMENT stopped"
