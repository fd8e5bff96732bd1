#!/usr/bin/env bash
# Builds the project images with Docker or Podman:  images/build.sh [eo] [ml] [snap]
#   REGISTRY, VERSION   image names: $REGISTRY/<name>:$VERSION (as components/images.py names them)
#   PYTHON_BASE         the Python base image; "debian" (default) builds it from Debian's
#                       packages with images/base.sh, for machines that reach Debian's mirror and
#                       the Python package index but no container registry. Users with a
#                       registry pass the official image, pinned by digest, e.g.
#                       PYTHON_BASE=docker.io/library/python:3.11.7-slim-bookworm@sha256:<digest>
#   CONTAINER_ENGINE    podman or docker (default: whichever is installed, podman first)
#   SNAP_INSTALLER      file name of ESA's SNAP installer in images/snap/ (the snap image only)
#   TORCH_INDEX         another index for torch in the ml image (default: the Python package index)
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}
[ -n "$engine" ] || { echo "images/build.sh: error: neither podman nor docker is installed" >&2; exit 2; }
registry=${REGISTRY:-ghcr.io/eo-kfp-services}
version=${VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' components/__init__.py)}
base=${PYTHON_BASE:-debian}
if [ "$base" = debian ]; then
  base=localhost/eo-python-base:bookworm
  CONTAINER_ENGINE=$engine images/base.sh "$base"
fi
args=(--build-arg "PYTHON_BASE=$base")
case "$(basename "$engine")" in
  # pip inside the build uses the host's network and trusts what the host trusts (a proxy's CA)
  podman) args+=(--network host -v /etc/ssl/certs:/etc/ssl/certs:ro) ;;
  *) args+=(--network host) ;;
esac
[ -z "${SNAP_INSTALLER:-}" ] || args+=(--build-arg "SNAP_INSTALLER=$SNAP_INSTALLER")
[ -z "${TORCH_INDEX:-}" ] || args+=(--build-arg "TORCH_INDEX=$TORCH_INDEX")
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(eo ml)
for name in "${names[@]}"; do
  [ -f "images/$name/Dockerfile" ] || { echo "images/build.sh: error: no image '$name' (images/$name/Dockerfile)" >&2; exit 2; }
  echo "building $registry/$name:$version"
  start=$SECONDS
  "$engine" build "${args[@]}" -f "images/$name/Dockerfile" -t "$registry/$name:$version" .
  echo "built $registry/$name:$version in $((SECONDS - start)) s"
done
