#!/usr/bin/env bash
# Makes sure a Docker engine answers: starts Debian's dockerd (as root) when none does, and waits for it.
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
  echo "[deploy] no Docker engine answers, and this user cannot start one (root and docker.io are needed)" >&2
  exit 2
fi
mkdir -p /var/log
nohup dockerd >/var/log/hrm-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "[deploy] dockerd did not start in 60 s; see /var/log/hrm-dockerd.log" >&2
exit 1
