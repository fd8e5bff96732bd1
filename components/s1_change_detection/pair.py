"""The pair check of S1-CD, on the manifests alone (before any work): both SLC, same mode,
relative orbit and pass, the polarisation in both, acquisitions a multiple of 6 days apart
(the Sentinel-1 A/B repeat; 12 days for one satellite). Once the products are open, their
footprints must share an area (:func:`require_overlap`)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from components.common.aoi import unwrapped_lon
from components.common.errors import ServiceError

REPEAT_DAYS = 6
TOLERANCE_DAYS = 0.01  # about 15 minutes: frames of one track start within seconds of each other


def peek(path: Path) -> dict:
    """Manifest attributes of a SAFE folder or zip without extracting it (read as the
    pre-processing reads them: slices across the ascending node included)."""
    from components.s1_preprocess.product import manifest_attributes, manifest_root

    path = Path(path)
    try:
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise ServiceError(f"not a Sentinel-1 product: {path.name} is neither a .SAFE folder nor a zip archive")
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("manifest.safe")]
                if not names:
                    raise ServiceError(f"not a Sentinel-1 product: {path.name} holds no .SAFE/manifest.safe")
                data = zf.read(names[0])
        else:
            manifest = path / "manifest.safe"
            if not manifest.is_file():
                inner = list(path.glob("*.SAFE/manifest.safe"))
                if len(inner) != 1:
                    raise ServiceError(f"not a Sentinel-1 SAFE product: {path.name} has no manifest.safe")
                manifest = inner[0]
            data = manifest.read_bytes()
        attrs, _ = manifest_attributes(manifest_root(data, path.name), path.name)
    except ServiceError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ServiceError(f"corrupt zip archive {path.name}: {' '.join(str(e).split())}") from None
    except Exception as e:
        raise ServiceError(f"not a Sentinel-1 product: {path.name} ({' '.join(str(e).split())})") from None
    attrs["source"] = path.name
    return attrs


def validate_pair(a: dict, b: dict, polarization: str) -> float:
    """ServiceError naming the first reason the two products cannot be paired; else the
    temporal baseline in days (b - a)."""
    for p in (a, b):
        if p["product_type"] != "SLC":
            raise ServiceError(f"S1-CD needs SLC products: {p['source']} is {p['product_type']}")
    if a["mode"] != b["mode"]:
        raise ServiceError(f"the pair has different acquisition modes: {a['mode']} and {b['mode']}")
    # a slice across the ascending node is on two relative orbits (the number changes at the node,
    # not the track): the same track if the two share one
    if not _relative_orbits(a) & _relative_orbits(b):
        raise ServiceError(f"the pair is not from the same track: relative orbits {a['relative_orbit_number']} "
                           f"and {b['relative_orbit_number']}")
    if a["pass"] != b["pass"]:
        raise ServiceError(f"the pair has different passes: {a['pass']} and {b['pass']}")
    pol = polarization.strip().upper()
    for p in (a, b):
        if pol not in [x.upper() for x in p["transmitter_receiver_polarisations"]]:
            raise ServiceError(f"polarization {pol} is not in {p['source']}")
    days = float((np.datetime64(b["start_time"], "ns") - np.datetime64(a["start_time"], "ns"))
                 / np.timedelta64(1, "D"))
    k = round(abs(days) / REPEAT_DAYS)
    if k == 0 or abs(abs(days) - k * REPEAT_DAYS) > TOLERANCE_DAYS:
        raise ServiceError(f"the acquisitions are {abs(days):.2f} days apart, not a multiple of {REPEAT_DAYS} days: "
                           f"not a repeat-pass pair")
    return days


def _relative_orbits(p: dict) -> set[int]:
    return {p["relative_orbit_number"], p.get("relative_orbit_number_stop", p["relative_orbit_number"])}


def require_overlap(footprint1, footprint2, name1: str, name2: str) -> None:
    """ServiceError unless the lon/lat footprints of the two products share an area: two frames
    (or crops) of one track pass every manifest check, yet have no pixel to compare."""
    import shapely

    # longitudes within 180 degrees of one reference, so that footprints across the antimeridian compare
    coords = shapely.get_coordinates(footprint1)
    ref = float(coords[0, 0]) if len(coords) else 0.0  # an empty footprint overlaps nothing
    f1, f2 = (_valid(unwrapped_lon(f, ref)) for f in (footprint1, footprint2))
    if shapely.intersection(f1, f2).area > 0:
        return
    bounds1, bounds2 = (", ".join(f"{v:.4f}" for v in f.bounds) for f in (f1, f2))
    raise ServiceError(f"the pair does not overlap: the footprints of {name1} (lon/lat bounds {bounds1}) "
                       f"and {name2} ({bounds2}) share no area; give two acquisitions of the same area")


def _valid(geometry):
    import shapely

    return geometry if geometry.is_valid else shapely.make_valid(geometry)
