#!/usr/bin/env bash
# Wheels for a GPU machine whose Python (3.12) already holds PyTorch, NumPy, SciPy, h5py and
# pytest but none of the project's other needs, and which cannot reach a package index:
# the packages that bench/gpu_check.sh's tests and benches import beyond those, at the versions
# of requirements.lock, downloaded here into .whl/ (about 50 MB; git ignores it).
set -euo pipefail
cd "$(dirname "$0")/.."
NEEDED="rasterio affine cligj click-plugins pydantic pydantic_core annotated-types typing-inspection typing_extensions
netCDF4 cftime pystac pystac-core $(grep -o '^pystac-ext-[a-z-]*' requirements.lock | tr '\n' ' ')"
pins=()
for name in $NEEDED; do
    pin=$(grep -i "^${name}==" requirements.lock) || { echo "gpu_wheels: $name is not in requirements.lock" >&2; exit 2; }
    pins+=("$pin")
done
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "${pins[@]}"
du -sh .whl
