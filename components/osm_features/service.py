"""osm-features: human features from an OpenStreetMap extract, by feature class and area of
interest, into GeoJSON or GeoPackage (seed D5.2 section 2.2.6, rebuilt on an open data
dictionary instead of SatCen's closed one).

Extract -> (AoI pre-filter) -> map tags to the dictionary's attributes -> write, in one streaming
pass over the file (see ``extract.py``). The product is ``<extract>_features.geojson`` (or
``.gpkg``), with a STAC item, a quicklook PNG and ``run.json`` (per-class counts, the objects
skipped and why).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from shapely.geometry import box

from components import __version__
from components.common import outputs, stac, storage
from components.common.aoi import EPSG_4326, load_aoi, require_overlap
from components.common.errors import ServiceError
from components.common.logs import Steps

from .dictionary import load_dictionary
from .extract import ExtractInfo, ExtractStats, extract, read_header
from .params import OsmFeaturesParams
from .writer import GEOJSON_TYPE, GPKG_TYPE, Bounds, Quicklook, stac_item, write_geojson, write_gpkg

log = logging.getLogger(__name__)

SERVICE = "osm-features"
_SUFFIXES = re.compile(r"(\.osm)?\.(pbf|bz2|gz|osm|o5m|opl)$", re.IGNORECASE)


@dataclass
class OsmFeaturesResult:
    """What a run wrote. ``product`` is the main product; the rest are its sidecars."""

    product: str
    stac: str
    quicklook: str
    run_record: str
    counts: dict = field(default_factory=dict)


def product_stem(name: str) -> str:
    return _SUFFIXES.sub("", Path(name).name) + "_features"


def run(input_uri: str, params: OsmFeaturesParams, outdir: str) -> OsmFeaturesResult:
    """Extract ``params.features`` from ``input_uri`` (a local file or ``s3://``) into
    ``outdir`` (a folder or an ``s3://`` prefix)."""
    dictionary = load_dictionary(params.dictionary)
    aoi = load_aoi(params.aoi) if params.aoi else None
    if re.search(r"\.(geojson|gpkg|json)$", str(outdir).rstrip("/"), re.IGNORECASE):
        raise ServiceError(f"--output is a folder (or s3:// prefix), not a file name: {outdir} "
                           "(the product is written inside it as <extract>_features.<format>)")
    with storage.output_folder(outdir) as local_out:
        return _run(input_uri, params, outdir, local_out, aoi, dictionary)


def _run(input_uri, params, outdir, local_out, aoi, dictionary) -> OsmFeaturesResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    name = Path(str(input_uri).rstrip("/")).name
    with outputs.work_folder(local_out, ".osm-") as work:
        with steps.step("fetch input"):
            local_input = storage.fetch_input(input_uri, work / "input")
            if local_input.is_dir():
                raise ServiceError(f"input is a folder, not an OSM file: {input_uri}")
        info = read_header(local_input, name)
        area = aoi.to_crs(EPSG_4326) if aoi is not None else None
        if area is not None and info.bounds is not None:
            require_overlap(aoi, box(*info.bounds), f"the extract {name}")
        log.info("%s: %s, bounds %s, %d classes", name, info.timestamp or "no timestamp",
                 info.bounds, len(params.features))
        stage = work / "stage"
        stage.mkdir()
        stem = product_stem(name)
        ext = ".geojson" if params.format == "geojson" else ".gpkg"
        main = stage / f"{stem}{ext}"
        stats = ExtractStats()
        bounds = Bounds()
        quicklook = Quicklook()
        with steps.step(f"extract {len(params.features)} classes and write {params.format}"):
            features = extract(info, dictionary, params.features, area, params.clip, stats)
            if params.format == "geojson":
                n = write_geojson(features, main, bounds, quicklook.add)
            else:
                n = write_gpkg(features, main, dictionary, params.features, bounds, quicklook.add)
        if area is not None and info.bounds is None and n == 0 and stats.bounds is not None \
                and not area.intersects(box(*stats.bounds)):
            # no bounding box in the header: judge by the data seen
            require_overlap(aoi, box(*stats.bounds), f"the data of {name}")
        footprint = _footprint(area, info, stats, bounds)
        with steps.step("quicklook and STAC item"):
            ql = quicklook.save(stage / f"{stem}_quicklook.png", footprint.bounds, area)
            counts = {c: stats.features[c] for c in params.features}
            item = stac_item(stem, main, GEOJSON_TYPE if ext == ".geojson" else GPKG_TYPE, footprint,
                             _datetime(info, stats), {
                                 "osm_source": name, "osm_classes": counts, "osm_feature_count": n,
                                 "osm_dictionary": Path(dictionary.source).name},
                             (input_uri, name), stac.location(outdir, f"{stem}.json"))
        record = outputs.run_record(
            SERVICE, __version__, {**params.as_dict(), "dictionary_resolved": dictionary.source},
            [{"uri": input_uri, "id": name, "timestamp": info.timestamp, "generator": info.generator,
              "bounds": info.bounds}],
            {"product": main.name, "stac": f"{stem}.json", "quicklook": ql.name, "features": n,
             "classes": stats.as_dict(params.features)},
            steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        stac.write_item(item, stage / f"{stem}.json")  # last: it carries the size and checksum of run.json
        size_mb = main.stat().st_size / 1e6
        with steps.step("publish"):
            published = storage.publish(stage, outdir, move=True)
    by_name = {Path(p).name: p for p in published}
    present = {c: k for c, k in counts.items() if k}
    log.info("product %s: %d features in %d of %d classes, %.2f MB, %.1f s", by_name[main.name], n,
             len(present), len(params.features), size_mb, steps.elapsed)
    return OsmFeaturesResult(by_name[main.name], by_name[f"{stem}.json"], by_name[ql.name],
                             by_name["run.json"], counts)


def _footprint(area, info: ExtractInfo, stats: ExtractStats, bounds: Bounds):
    """The area the product covers: AoI within the extract, else the extract's bounds."""
    extent = box(*info.bounds) if info.bounds else box(*stats.bounds) if stats.bounds else None
    if area is not None:
        return shapely.intersection(area, extent) if extent is not None else area
    if extent is not None:
        return extent
    return box(*bounds.box) if bounds.box else box(0, 0, 0, 0)


def _datetime(info: ExtractInfo, stats: ExtractStats) -> dt.datetime:
    """The snapshot time: the header's replication timestamp, else the newest object seen."""
    if info.timestamp:
        try:
            return dt.datetime.fromisoformat(info.timestamp.replace("Z", "+00:00"))
        except ValueError:
            pass
    return stats.newest or dt.datetime.now(dt.timezone.utc)
