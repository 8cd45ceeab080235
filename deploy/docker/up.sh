#!/usr/bin/env bash
# Starts the Docker deployment: builds the images (build.sh; HRM_SKIP_BUILD=1 skips), then Postgres, the Dagster
# webserver and daemon (compose.yaml), and waits for the UI. Settings (environment):
#   HRM_DEPLOYMENT (hrm)       names the compose project, network and volumes: several can run side by side
#   HRM_UI_PORT (3000), HRM_UI_BIND (127.0.0.1)   where the UI listens on the host
#   HRM_POSTGRES_PASSWORD      made up and saved in deploy/docker/.build/$HRM_DEPLOYMENT.env when unset
#   HRM_DOCKER_GPUS            all / a count; `all` by default where nvidia-smi sees a GPU
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bash "$HERE/dockerd.sh"
[ "${HRM_SKIP_BUILD:-0}" = 1 ] || bash "$HERE/build.sh"
if [ -z "${HRM_POSTGRES_PASSWORD:-}" ]; then
  mkdir -p "$HERE/.build"
  HRM_POSTGRES_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  (umask 077; echo "HRM_POSTGRES_PASSWORD=$HRM_POSTGRES_PASSWORD" > "$ENV_FILE")
  export HRM_POSTGRES_PASSWORD
fi
if [ -z "${HRM_DOCKER_GPUS+set}" ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  export HRM_DOCKER_GPUS=all
fi
export HRM_UI_PORT="${HRM_UI_PORT:-3000}"
export HRM_DAGSTER_UI_URL="${HRM_DAGSTER_UI_URL:-http://localhost:$HRM_UI_PORT}"
log "starting deployment $HRM_DEPLOYMENT (GPUs: ${HRM_DOCKER_GPUS:-none})"
compose up -d >&2
for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:$HRM_UI_PORT/server_info" >/dev/null 2>&1; then
    log "the Dagster UI is at http://127.0.0.1:$HRM_UI_PORT"
    exit 0
  fi
  sleep 1
done
log "the webserver did not answer in 180 s; its log:"
compose logs --tail 50 webserver >&2
exit 1
