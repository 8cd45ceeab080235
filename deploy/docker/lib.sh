# Shared by up.sh and down.sh: the deployment's name, its compose command and its saved settings.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export HRM_DEPLOYMENT="${HRM_DEPLOYMENT:-hrm}"
[[ "$HRM_DEPLOYMENT" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || { echo "HRM_DEPLOYMENT: lower-case letters, digits, - and _" >&2; exit 2; }
ENV_FILE="$HERE/.build/$HRM_DEPLOYMENT.env"  # the generated Postgres password, kept for the next up/down
log() { echo "[deploy] $*" >&2; }
compose() {
  local files=(-f "$HERE/compose.yaml")
  [ -n "${HRM_DOCKER_GPUS:-}" ] && files+=(-f "$HERE/compose.gpu.yaml")
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$HRM_DEPLOYMENT" "${files[@]}" "$@"
  else
    docker-compose -p "$HRM_DEPLOYMENT" "${files[@]}" "$@"
  fi
}
if [ -f "$ENV_FILE" ]; then
  set -a; . "$ENV_FILE"; set +a
fi
