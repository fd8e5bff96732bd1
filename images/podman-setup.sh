#!/usr/bin/env bash
# Makes Podman usable as root on a Debian machine without a Docker daemon (CI, development
# machines): installs podman, runc and mmdebstrap, configures the runtime, and serves the Docker
# API on a socket for the docker SDK and kfp.local.DockerRunner.
#   images/podman-setup.sh [SOCKET]     default SOCKET: /run/eo-podman/podman.sock
# Prints the DOCKER_HOST value to use. Idempotent.
set -euo pipefail
socket=${1:-/run/eo-podman/podman.sock}
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null
fi
# crun and the systemd cgroup manager fail in these sandboxes; raising RLIMIT_NPROC or
# RLIMIT_NOFILE past what the sandbox allows makes runc fail with "setrlimit ... operation not
# permitted", so containers get explicit, modest limits.
mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
mkdir -p "$(dirname "$socket")"
if ! DOCKER_HOST="unix://$socket" podman --remote info >/dev/null 2>&1; then
  rm -f "$socket"
  nohup podman system service --time=0 "unix://$socket" >"$(dirname "$socket")/service.log" 2>&1 &
  for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
fi
echo "unix://$socket"
