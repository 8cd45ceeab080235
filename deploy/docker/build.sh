#!/usr/bin/env bash
# Builds the deployment's images locally, from Debian's packages and this checkout (no registry is used):
#   hrm-base:bookworm  a debootstrap of Debian 12, made once
#   hrm-postgres:15    Debian's PostgreSQL 15 (postgres.Dockerfile)
#   hrm-code:latest    the project (Dockerfile): the wheels of .venv's exact versions, the checkout, the
#                      instance config
# Needs root (debootstrap), a running dockerd and the project's .venv (bash scripts/setup.sh).
# HRM_TOOLCHAIN_PACKAGES: the Debian packages of the sandbox's language toolchains in the image (default: all
# of them; an empty value builds a Python-only image, as the deployment test does to save minutes).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="$HERE/.build"
BASE_IMAGE=hrm-base:bookworm
POSTGRES_IMAGE=hrm-postgres:15
IMAGE=hrm-code:latest
# scripts/setup.sh's toolchain packages (Chromium aside)
DEFAULT_TOOLCHAINS="g++ make cmake libboost-date-time-dev libtbb-dev default-jdk-headless junit5 libassertj-core-java
  libbyte-buddy-java libandroid-json-org-java maven libmaven-compiler-plugin-java libmaven-resources-plugin-java
  libmaven-jar-plugin-java libsurefire-java nodejs npm cargo rustc librust-time-dev librust-anyhow-dev
  librust-rand-dev"
HRM_TOOLCHAIN_PACKAGES="${HRM_TOOLCHAIN_PACKAGES-$DEFAULT_TOOLCHAINS}"
log() { echo "[deploy/build] $*" >&2; }

docker info >/dev/null 2>&1 || { log "no Docker engine answers: start one (deploy/docker/dockerd.sh)"; exit 2; }
[ -x "$ROOT/.venv/bin/pip" ] || { log "no .venv: run bash scripts/setup.sh first"; exit 2; }

# --- 1. the base image: Debian 12 from Debian's own mirror --------------------------------------------------
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm from $mirror (about 30 s)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

# --- 2. the build context: exact wheels, the checkout, the instance config ----------------------------------
mkdir -p "$BUILD/wheels"
"$ROOT/.venv/bin/pip" freeze --all --exclude-editable | grep -v '^-e ' > "$BUILD/requirements.lock"
log "collecting $(wc -l < "$BUILD/requirements.lock") wheels (the versions .venv was tested with)"
"$ROOT/.venv/bin/pip" download -q --no-deps --only-binary=:all: -r "$BUILD/requirements.lock" -d "$BUILD/wheels" \
  2> >(grep -v "is ignored" >&2)
rm -rf "$BUILD/src" && mkdir -p "$BUILD/src"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | grep -zv '^deploy/docker/\.build/' \
  | tar -c --null -T - --ignore-failed-read 2>/dev/null) | tar -C "$BUILD/src" -x
cp "$HERE/Dockerfile" "$HERE/postgres.Dockerfile" "$HERE/postgres-entrypoint.sh" "$HERE/dagster.yaml" \
  "$HERE/workspace.yaml" "$BUILD/"

# --- 3. the images ------------------------------------------------------------------------------------------
log "building $POSTGRES_IMAGE"
docker build -q -f "$BUILD/postgres.Dockerfile" --build-arg BASE="$BASE_IMAGE" -t "$POSTGRES_IMAGE" "$BUILD" >/dev/null
log "building $IMAGE (toolchains: ${HRM_TOOLCHAIN_PACKAGES:-none})"
docker build -q -f "$BUILD/Dockerfile" --build-arg BASE="$BASE_IMAGE" \
  --build-arg TOOLCHAIN_PACKAGES="$HRM_TOOLCHAIN_PACKAGES" -t "$IMAGE" "$BUILD" >/dev/null
log "ready: $IMAGE, $POSTGRES_IMAGE"
