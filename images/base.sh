#!/usr/bin/env bash
# Builds the local Python base image from Debian alone (bookworm, Debian's Python 3.11) with
# mmdebstrap and loads it into Podman or Docker, for machines that reach Debian's mirror and the
# Python package index but no container registry.
#   images/base.sh [TAG]      default TAG: localhost/eo-python-base:bookworm
set -euo pipefail
tag=${1:-localhost/eo-python-base:bookworm}
engine=${CONTAINER_ENGINE:-$(command -v podman || command -v docker)}
if "$engine" image exists "$tag" 2>/dev/null || "$engine" image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"; exit 0
fi
command -v mmdebstrap >/dev/null || { echo "images/base.sh: error: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-venv,python-is-python3,ca-certificates,passwd \
  bookworm "$tmp/rootfs.tar"
"$engine" import "$tmp/rootfs.tar" "$tag" >/dev/null
echo "base image $tag built"
