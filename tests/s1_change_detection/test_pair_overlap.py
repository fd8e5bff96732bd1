"""S1-CD refuses a pair whose footprints share no area (two frames or crops of one track, 12
days apart, pass every manifest check): one line naming both products, nothing written."""

from __future__ import annotations

import re
import shutil

import pytest
from shapely.geometry import box

from components.common.errors import ServiceError
from components.s1_change_detection.cli import main
from components.s1_change_detection.pair import require_overlap
from tests.fixtures import s1_products


def _refusal(capsys, args, out) -> str:
    code = main(args + ["--outdir", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(err) == 1 and err[0].startswith("S1-CD: error: "), err
    assert not out.exists()
    return err[0]


def _other_frame(safe, dest):
    """``safe`` with its manifest footprint moved 3 degrees north, as the next-but-one frame."""
    copy = dest / safe.name
    shutil.copytree(safe, copy)
    manifest = copy / "manifest.safe"

    def north(m):
        points = [p.split(",") for p in m.group(2).split()]
        return m.group(1) + " ".join(f"{float(lat) + 3:.6f},{lon}" for lat, lon in points) + m.group(3)
    manifest.write_text(re.sub(r"(<gml:coordinates>)([^<]+)(</gml:coordinates>)", north, manifest.read_text()))
    return copy


def test_crops_that_do_not_overlap_are_refused(real_slc, slc_pair, tmp_path, capsys):
    a, _ = slc_pair
    far = s1_products.write_slc(tmp_path / "far", source=real_slc, samples=(15000, 240), date=1, shift_days=12)
    line = _refusal(capsys, ["--input1", str(a), "--input2", str(far), "--resolution", "40"], tmp_path / "out")
    assert "the pair does not overlap" in line and a.stem in line and far.stem in line


@pytest.mark.parametrize("engine", ["native", "snap"])
def test_frames_that_do_not_overlap_are_refused(engine, slc_pair, tmp_path, capsys):
    a, b = slc_pair
    other = _other_frame(b, tmp_path)
    extra = ["--engine", "snap", "--graph_only", "true"] if engine == "snap" else []
    line = _refusal(capsys, ["--input1", str(a), "--input2", str(other), *extra], tmp_path / "out")
    assert "the pair does not overlap" in line and a.stem in line and other.stem in line


def test_footprints_across_the_antimeridian_overlap():
    east, west = box(179.5, 10, 180, 11), box(-180, 10, -179.5, 11)
    straddling = box(179.8, 10, 180.2, 11)  # as a footprint written with longitudes beyond 180
    require_overlap(east, straddling, "A", "B")
    require_overlap(straddling, west, "A", "B")
    with pytest.raises(ServiceError, match="the pair does not overlap: the footprints of A .* and B"):
        require_overlap(east, box(-179, 10, -178, 11), "A", "B")


def test_infinite_dem_heights_are_no_heights(tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from components.s1_change_detection.interferometry import DemHeights

    heights = np.full((40, 40), 120.0, np.float32)
    heights[10:12, 10:12] = np.inf
    heights[30, 30] = -np.inf
    dem = tmp_path / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=40, height=40, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(12.0, 42.4, 0.01, 0.01)) as ds:
        ds.write(heights, 1)
    sampled = DemHeights(str(dem), box(12.05, 42.05, 12.35, 42.35), geoid=50.0)
    assert np.isnan(sampled.data).sum() == 5 and np.nanmax(sampled.data) == 170.0
    assert np.isnan(sampled(np.array([[12.105]]), np.array([[42.295]])))[0, 0]  # on the infinite pixels: no height
    assert sampled(np.array([[12.205]]), np.array([[42.195]]))[0, 0] == pytest.approx(170.0)
