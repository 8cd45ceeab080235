#!/usr/bin/env bash
# Idempotent set-up: system packages (as root), the sandbox toolchains, the .venv with the project.
# Re-running it only does what is missing. Without root it says what is missing and goes on;
# languages whose toolchain is missing are then reported as `unsupported` by the evaluators.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLCHAINS="$ROOT/.toolchains"
mkdir -p "$TOOLCHAINS"
log() { echo "[setup] $*" >&2; }

# --- 1. system packages --------------------------------------------------------------------
APT_PACKAGES=(bubblewrap util-linux mount keyutils git cmake make g++
  junit5 libassertj-core-java libbyte-buddy-java libandroid-json-org-java
  libboost-date-time-dev libtbb-dev
  librust-time-dev librust-anyhow-dev librust-rand-dev
  maven libmaven-compiler-plugin-java libmaven-resources-plugin-java libmaven-jar-plugin-java libsurefire-java
  chromium chromium-driver neovim
  docker.io debootstrap docker-compose)
command -v javac >/dev/null || APT_PACKAGES+=(default-jdk-headless)
command -v node >/dev/null || APT_PACKAGES+=(nodejs npm)
command -v cargo >/dev/null || APT_PACKAGES+=(cargo rustc)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "NOT ROOT: missing system packages: ${missing[*]}"
    log "  run as root: apt-get install ${missing[*]}"
    log "  the sandbox needs bubblewrap; languages without a toolchain are marked unsupported"
    log "  the browser test (tests/hrm_assets/test_browser.py) needs chromium and chromium-driver"
    log "  the Docker deployment (deploy/docker/) and its test need docker.io, debootstrap and docker-compose"
  fi
fi

# --- 2. Python environment -----------------------------------------------------------------
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat .venv/.hrm-installed 2>/dev/null)" != "$stamp" ]; then
  log "installing Python dependencies into .venv (about 2-3 minutes on a fresh machine)"
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  # torch first and pinned: the CPU wheel on disk (an unpinned torch pulls several GB of CUDA)
  .venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
  .venv/bin/pip install -q --disable-pip-version-check -e .
  echo "$stamp" > .venv/.hrm-installed
fi

# --- 3. sandbox toolchains that live in the repo ---------------------------------------------
# JavaScript: jest and the Exercism babel preset, one shared node_modules (as the Polyglot harness).
if command -v npm >/dev/null; then
  if [ ! -f "$TOOLCHAINS/npm/node_modules/.bin/jest" ]; then
    log "installing jest into $TOOLCHAINS/npm"
    mkdir -p "$TOOLCHAINS/npm"
    cp scripts/npm-toolchain.json "$TOOLCHAINS/npm/package.json"
    (cd "$TOOLCHAINS/npm" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
else
  log "npm missing: JavaScript exercises will be unsupported"
fi
# Rust: Debian's librust-*-dev crate sources as cargo's offline registry.
mkdir -p "$TOOLCHAINS/home/.cargo"
cat > "$TOOLCHAINS/home/.cargo/config.toml" <<'CARGO'
[source.crates-io]
replace-with = "debian-packages"

[source.debian-packages]
directory = "/usr/share/cargo/registry"

[net]
offline = true
CARGO
# Everything readable by the jails, except the sealed caches (root-only folder; resources/toolcache.py).
find "$TOOLCHAINS" -path "$TOOLCHAINS/caches" -prune -o -exec chmod a+rX {} +
# Prebuilt toolchain caches every jail reads and none can change (Go's standard library: about a minute,
# once per Go release). Root only: they are sealed root-owned.
if [ "$(id -u)" = 0 ] && command -v bwrap >/dev/null; then
  .venv/bin/python -m resources.toolcache
else
  log "not building the prebuilt toolchain caches (root and bubblewrap needed): Go compiles its standard library in every jail"
fi

# --- 4. Dagster home ---------------------------------------------------------------------------
mkdir -p .dagster_home
cp dagster.yaml .dagster_home/dagster.yaml
log "ready: .venv, .toolchains, .dagster_home"
