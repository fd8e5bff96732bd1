"""SNAP engine: the seed's processing graphs as gpt XML, built from the same parameters as the
native engine, and run by SNAP's ``gpt`` when SNAP is installed.

Operator aliases, parameter names and their defaults follow SNAP's operator help (``gpt <op>
-h``): Read, Apply-Orbit-File, ThermalNoiseRemoval, Remove-GRD-Border-Noise, Calibration,
TOPSAR-Split, TOPSAR-Deburst, Multilook, Speckle-Filter, Back-Geocoding,
Enhanced-Spectral-Diversity, CreateStack, Cross-Correlation, Warp, Coherence,
Terrain-Correction, LinearToFromdB, Land-Sea-Mask, Subset, S2Resampling, BandMaths, Reproject,
Write. Every graph is a chain ``Read -> ... -> Write`` users can edit and run with
``gpt graph.xml``.

Where the native engine and SNAP differ by design it is said in the graph's comment: SNAP's
Terrain-Correction always uses a DEM (``SRTM 3Sec`` auto-download when no file is given), the
native engine geocodes on the ellipsoid then.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

from components.common.errors import ServiceError
from components.common.output_grid import METRES_PER_DEGREE


GRD_CHAIN = ("Read", "Apply-Orbit-File", "ThermalNoiseRemoval", "Remove-GRD-Border-Noise", "Calibration",
             "Speckle-Filter", "Terrain-Correction", "Write")
SLC_CHAIN = ("Read", "Apply-Orbit-File", "ThermalNoiseRemoval", "TOPSAR-Deburst", "Calibration",
             "Speckle-Filter", "Terrain-Correction", "Write")
SNAP_FORMATS = {"geotiff": "GeoTIFF-BigTIFF", "cog": "GeoTIFF-BigTIFF", "gtiff": "GeoTIFF-BigTIFF",
                "tif": "GeoTIFF-BigTIFF", "tiff": "GeoTIFF-BigTIFF", "envi": "ENVI", "netcdf": "NetCDF4-CF",
                "beam-dimap": "BEAM-DIMAP", "dimap": "BEAM-DIMAP", "hfa": "GDAL-HFA-WRITER",
                "jp2openjpeg": "GDAL-JP2OpenJPEG-WRITER"}


class Graph:
    """A gpt graph: nodes in order, each with its operator, sources and parameters."""

    def __init__(self, graph_id: str, comment: str = ""):
        self.id = graph_id
        self.comment = comment
        self.nodes: list[tuple[str, str, list[str], dict]] = []

    def add(self, node_id: str, operator: str, sources, params: dict) -> str:
        if isinstance(sources, str):
            sources = [sources]
        self.nodes.append((node_id, operator, list(sources or []), params))
        return node_id

    def operators(self) -> list[str]:
        return [op for _, op, _, _ in self.nodes]

    def node(self, node_id: str):
        return next(n for n in self.nodes if n[0] == node_id)

    def to_xml(self) -> str:
        root = ET.Element("graph", id=self.id)
        ET.SubElement(root, "version").text = "1.0"
        for node_id, operator, sources, params in self.nodes:
            node = ET.SubElement(root, "node", id=node_id)
            ET.SubElement(node, "operator").text = operator
            src = ET.SubElement(node, "sources")
            for i, s in enumerate(sources):
                ET.SubElement(src, "sourceProduct" if i == 0 else f"sourceProduct.{i}", refid=s)
            par = ET.SubElement(node, "parameters", {"class": "com.bc.ceres.binding.dom.XppDomElement"})
            _params(par, params)
        ET.indent(root)
        head = '<?xml version="1.0" encoding="UTF-8"?>\n'
        comment = f"<!-- {self.comment} -->\n" if self.comment else ""
        return head + comment + ET.tostring(root, encoding="unicode") + "\n"


def _params(parent, params: dict) -> None:
    for key, value in params.items():
        el = ET.SubElement(parent, key)
        if isinstance(value, dict):
            _params(el, value)
        elif isinstance(value, list):
            for tag, item in value:
                sub = ET.SubElement(el, tag)
                _params(sub, item)
        elif value is None:
            continue
        elif isinstance(value, bool):
            el.text = "true" if value else "false"
        else:
            el.text = str(value)


# -- shared nodes ------------------------------------------------------------------------------

def snap_format(output_format: str) -> str:
    key = output_format.strip().lower()
    return SNAP_FORMATS.get(key, f"GDAL-{output_format.strip()}-WRITER")


def map_projection(projection: str) -> str:
    text = projection.strip()
    return "WGS84(DD)" if text.replace(" ", "").lower() in ("wgs84", "wgs84(dd)", "epsg:4326", "4326", "") else text


def orbit_params(params) -> dict:
    # a user-given EOF file is used by placing it in SNAP's orbit folder; the graph names the type
    return {"orbitType": "Sentinel Precise (Auto Download)", "polyDegree": 3, "continueOnFail": params.orbit is None}


def speckle_params(params, bands: str) -> dict:
    return {"sourceBands": bands, "filter": params.speckle, "filterSizeX": params.filter_size_x,
            "filterSizeY": params.filter_size_y, "dampingFactor": params.damping_factor,
            "estimateENL": params.estimate_enl, "enl": params.enl, "numLooksStr": params.num_looks,
            "windowSize": params.window_size, "targetWindowSizeStr": params.target_window_size,
            "sigmaStr": params.sigma, "anSize": 50}


def calibration_params(kind: str, pol: str, complex_out: bool = False) -> dict:
    return {"sourceBands": None, "auxFile": "Product Auxiliary File", "externalAuxFile": None,
            "outputImageInComplex": complex_out, "outputImageScaleInDb": False,
            "createGammaBand": False, "createBetaBand": False, "selectedPolarisations": pol,
            "outputSigmaBand": kind == "Sigma", "outputGammaBand": kind == "Gamma",
            "outputBetaBand": kind == "Beta"}


def terrain_params(params, bands: str, resolution: float) -> dict:
    dem = params.dem
    return {"sourceBands": bands, "demName": "External DEM" if dem else "SRTM 3Sec",
            "externalDEMFile": dem, "externalDEMNoDataValue": 0.0,
            "externalDEMApplyEGM": bool(dem) and params.dem_geoid_height != 0,
            "demResamplingMethod": "BILINEAR_INTERPOLATION", "imgResamplingMethod": "BILINEAR_INTERPOLATION",
            "pixelSpacingInMeter": resolution, "pixelSpacingInDegree": resolution / METRES_PER_DEGREE,
            "mapProjection": map_projection(params.projection), "alignToStandardGrid": True,
            "standardGridOriginX": 0.0, "standardGridOriginY": 0.0,
            "nodataValueAtSea": False, "saveDEM": False, "saveLatLon": False,
            "saveIncidenceAngleFromEllipsoid": False, "saveLocalIncidenceAngle": False,
            "saveProjectedLocalIncidenceAngle": False, "saveSelectedSourceBand": True,
            "outputComplex": False, "applyRadiometricNormalization": False, "saveSigmaNought": False,
            "saveGammaNought": False, "saveBetaNought": False,
            "incidenceAngleForSigma0": "Use projected local incidence angle from DEM",
            "incidenceAngleForGamma0": "Use projected local incidence angle from DEM",
            "auxFile": "Latest Auxiliary File"}


def _tail(g: Graph, last: str, params, band: str, resolution: float, output: str, db: bool) -> None:
    """Terrain-Correction, optional dB, land/sea mask and AoI subset, then Write."""
    last = g.add("Terrain-Correction", "Terrain-Correction", last, terrain_params(params, band, resolution))
    if db:
        last = g.add("LinearToFromdB", "LinearToFromdB", last, {"sourceBands": band})
    if params.landseamask != "None":
        shore = int(-(-params.landseamask_tolerance // resolution)) if params.landseamask_tolerance else 0
        last = g.add("Land-Sea-Mask", "Land-Sea-Mask", last, {
            "sourceBands": None, "landMask": params.landseamask == "Land", "useSRTM": True, "geometry": None,
            "invertGeometry": False, "shorelineExtension": shore})
    if params.aoi:
        from components.common.aoi import load_aoi

        last = g.add("Subset", "Subset", last, {"region": None, "referenceBand": None,
                                                "geoRegion": load_aoi(params.aoi).wkt_lonlat, "subSamplingX": 1,
                                                "subSamplingY": 1, "fullSwath": False, "copyMetadata": True,
                                                "sourceBands": None, "tiePointGrids": None})
    g.add("Write", "Write", last, {"file": output, "formatName": snap_format(params.output_format),
                                   "deleteOutputOnFailure": True, "writeEntireTileRows": False,
                                   "clearCacheAfterRowWrite": False})


# -- the graphs --------------------------------------------------------------------------------

def grd_graph(params, input_path: str, output: str, resolution: float) -> Graph:
    """Seed Figure 1: Read -> Apply-Orbit-File -> ThermalNoiseRemoval -> Remove-GRD-Border-Noise
    -> Calibration -> Speckle-Filter -> Terrain-Correction -> Write."""
    pol = params.polarization.upper()
    kind = params.calibration.replace("DB", "")
    band = f"{kind}0_{pol}"
    g = Graph("S1-GRD-preprocess", _comment(params))
    last = g.add("Read", "Read", None, {"file": input_path, "formatName": "SENTINEL-1"})
    last = g.add("Apply-Orbit-File", "Apply-Orbit-File", last, orbit_params(params))
    last = g.add("ThermalNoiseRemoval", "ThermalNoiseRemoval", last, {
        "selectedPolarisations": pol, "removeThermalNoise": params.thermal_noise_removal, "outputNoise": False,
        "reIntroduceThermalNoise": False})
    last = g.add("Remove-GRD-Border-Noise", "Remove-GRD-Border-Noise", last, {
        "selectedPolarisations": pol, "borderLimit": params.border_limit, "trimThreshold": params.trim_threshold})
    last = g.add("Calibration", "Calibration", last, calibration_params(kind, pol))
    if params.speckle != "None":
        last = g.add("Speckle-Filter", "Speckle-Filter", last, speckle_params(params, band))
    _tail(g, last, params, band, resolution, output, params.calibration.endswith("DB"))
    return g


def slc_graph(params, input_path: str, output: str, resolution: float, mode: str, looks: tuple[int, int]) -> Graph:
    """Seed Figure 2 (IW): Read -> Apply-Orbit-File -> ThermalNoiseRemoval -> TOPSAR-Deburst ->
    Calibration -> (Multilook) -> Speckle-Filter -> Terrain-Correction -> Write. SM has no deburst."""
    pol = params.polarization.upper()
    kind = params.calibration.replace("DB", "")
    band = f"{kind}0_{pol}"
    g = Graph("S1-SLC-preprocess", _comment(params))
    last = g.add("Read", "Read", None, {"file": input_path, "formatName": "SENTINEL-1"})
    last = g.add("Apply-Orbit-File", "Apply-Orbit-File", last, orbit_params(params))
    last = g.add("ThermalNoiseRemoval", "ThermalNoiseRemoval", last, {
        "selectedPolarisations": pol, "removeThermalNoise": params.thermal_noise_removal, "outputNoise": False,
        "reIntroduceThermalNoise": False})
    if mode == "IW":
        last = g.add("TOPSAR-Deburst", "TOPSAR-Deburst", last, {"selectedPolarisations": pol})
    last = g.add("Calibration", "Calibration", last, calibration_params(kind, pol))
    if looks != (1, 1):
        last = g.add("Multilook", "Multilook", last, {"sourceBands": band, "nRgLooks": looks[1],
                                                      "nAzLooks": looks[0], "outputIntensity": True,
                                                      "grSquarePixel": False})
    if params.speckle != "None":
        last = g.add("Speckle-Filter", "Speckle-Filter", last, speckle_params(params, band))
    _tail(g, last, params, band, resolution, output, params.calibration.endswith("DB"))
    return g


def coherence_graph(params, reference: str, secondary: str, output: str, resolution: float, mode: str,
                    subswath: str | None = None, window=(10, 10)) -> Graph:
    """Seed Figures 4 (IW: TOPSAR-Split, Back-Geocoding, Enhanced-Spectral-Diversity, TOPSAR-Deburst)
    and 5 (SM: CreateStack, Cross-Correlation, Warp): the coherence of a pair."""
    pol = params.polarization.upper()
    kind = params.calibration.replace("DB", "")
    g = Graph(f"S1-CD-coherence{'-' + subswath if subswath else ''}", _comment(params))
    branches = []
    for i, path in enumerate((reference, secondary), start=1):
        sfx = "" if i == 1 else f"({i})"
        last = g.add(f"Read{sfx}", "Read", None, {"file": path, "formatName": "SENTINEL-1"})
        if mode == "IW":
            last = g.add(f"TOPSAR-Split{sfx}", "TOPSAR-Split", last, {
                "subswath": subswath, "selectedPolarisations": pol, "firstBurstIndex": 1, "lastBurstIndex": 9999,
                "wktAoi": None})
        last = g.add(f"Apply-Orbit-File{sfx}", "Apply-Orbit-File", last, orbit_params(params))
        last = g.add(f"Calibration{sfx}", "Calibration", last, calibration_params(kind, pol, complex_out=True))
        branches.append(last)
    if mode == "IW":
        last = g.add("Back-Geocoding", "Back-Geocoding", branches, {
            "demName": "External DEM" if params.dem else "SRTM 3Sec", "demResamplingMethod": "BICUBIC_INTERPOLATION",
            "externalDEMFile": params.dem, "externalDEMNoDataValue": 0.0,
            "resamplingType": "BISINC_5_POINT_INTERPOLATION", "maskOutAreaWithoutElevation": True,
            "outputRangeAzimuthOffset": False, "outputDerampDemodPhase": False, "disableReramp": False})
        last = g.add("Enhanced-Spectral-Diversity", "Enhanced-Spectral-Diversity", last, {
            "fineWinWidthStr": "512", "fineWinHeightStr": "512", "fineWinAccAzimuth": "16", "fineWinAccRange": "16",
            "fineWinOversampling": "128", "xCorrThreshold": 0.1, "cohThreshold": 0.3, "numBlocksPerOverlap": 10,
            "esdEstimator": "Periodogram", "weightFunc": "Inv Quadratic", "temporalBaselineType": "Number of images",
            "maxTemporalBaseline": 4, "integrationMethod": "L1 and L2", "doNotWriteTargetBands": False,
            "useSuppliedRangeShift": False, "overallRangeShift": 0.0, "useSuppliedAzimuthShift": False,
            "overallAzimuthShift": 0.0})
    else:
        last = g.add("CreateStack", "CreateStack", branches, {
            "resamplingType": "NONE", "extent": "Master", "initialOffsetMethod": "Orbit", "masterBands": None,
            "sourceBands": None})
        last = g.add("Cross-Correlation", "Cross-Correlation", last, {
            "numGCPtoGenerate": 2000, "coarseRegistrationWindowWidth": "128", "coarseRegistrationWindowHeight": "128",
            "rowInterpFactor": "2", "columnInterpFactor": "2", "maxIteration": 10, "gcpTolerance": 0.5,
            "applyFineRegistration": True, "inSAROptimized": True, "fineRegistrationWindowWidth": "32",
            "fineRegistrationWindowHeight": "32", "fineRegistrationWindowAccAzimuth": "16",
            "fineRegistrationWindowAccRange": "16", "fineRegistrationOversampling": "16",
            "coherenceWindowSize": 3, "coherenceThreshold": 0.6, "useSlidingWindow": False,
            "computeOffset": False, "onlyGCPsOnLand": False})
        last = g.add("Warp", "Warp", last, {
            "rmsThreshold": 0.05, "warpPolynomialOrder": 2, "interpolationMethod": "Cubic convolution (6 points)",
            "demRefinement": False, "demName": "SRTM 3Sec", "excludeMaster": False, "openResidualsFile": False})
    # flat-earth and topographic phase removed before the coherence, as the native engine does
    last = g.add("Coherence", "Coherence", last, {
        "cohWinAz": window[0], "cohWinRg": window[1], "subtractFlatEarthPhase": True, "srpPolynomialDegree": 5,
        "srpNumberPoints": 501, "orbitDegree": 3, "squarePixel": True, "subtractTopographicPhase": True,
        "demName": "External DEM" if params.dem else "SRTM 3Sec", "externalDEMFile": params.dem,
        "externalDEMNoDataValue": 0.0, "externalDEMApplyEGM": bool(params.dem) and params.dem_geoid_height != 0,
        "tileExtensionPercent": 100, "singleMaster": True})
    if mode == "IW":
        last = g.add("TOPSAR-Deburst", "TOPSAR-Deburst", last, {"selectedPolarisations": pol})
    band = f"coh_{subswath}_{pol}" if subswath else f"coh_{pol}"
    _tail(g, last, params, band, resolution, output, False)
    return g


def s2_graph(params, input_path: str, output: str) -> Graph:
    """Seed Figure 3 (section 2.2.3): Read -> S2Resampling -> Land-Sea-Mask -> BandMaths (cloud
    mask) -> Subset -> Reproject -> Write, from S2-preprocess parameters."""
    g = Graph("S2-preprocess")
    last = g.add("Read", "Read", None, {"file": input_path})
    res = int(params.resolution) if int(params.resolution) in (10, 20, 60) else 10
    last = g.add("S2Resampling", "S2Resampling", last, {
        "resampleOnPyramidLevels": False, "downsampling": params.downsampling,
        "flagDownsampling": params.flagdownsampling, "resolution": res, "upsampling": params.upsampling})
    if params.landseamask != "None":
        last = g.add("Land-Sea-Mask", "Land-Sea-Mask", last, {
            "sourceBands": None, "landMask": params.landseamask == "Land", "useSRTM": True, "geometry": None,
            "invertGeometry": False, "shorelineExtension": 0})
    bands = [b if len(b) == 3 or b == "B8A" else f"B{int(b[1:])}" for b in params.bands]
    if params.cloudmask == "L2A":
        classes = " || ".join(f"quality_scene_classification == {c}" for c in params.cloud_classes)
        targets = [("targetBand", {"name": b, "type": "uint16", "expression": f"({classes}) ? 0 : {b}",
                                   "noDataValue": 0}) for b in bands]
        last = g.add("BandMaths", "BandMaths", last, {"targetBands": targets, "variables": None})
    wkt = None
    if params.aoi:
        from components.common.aoi import load_aoi

        wkt = load_aoi(params.aoi).wkt_lonlat
    last = g.add("Subset", "Subset", last, {"region": None, "referenceBand": None, "geoRegion": wkt,
                                            "subSamplingX": 1, "subSamplingY": 1, "fullSwath": False,
                                            "copyMetadata": True, "sourceBands": ",".join(bands),
                                            "tiePointGrids": None})
    if params.projection.replace(" ", "").lower() not in ("utm(auto)", "utm", "auto", ""):
        last = g.add("Reproject", "Reproject", last, {"crs": params.projection, "resampling": "Nearest",
                                                      "noDataValue": 0, "includeTiePointGrids": False})
    g.add("Write", "Write", last, {"file": output, "formatName": snap_format(params.output_format)})
    return g


def _comment(params) -> str:
    notes = ["Written by the SNAP engine of this package; edit and run with: gpt <this file>"]
    if not params.dem:
        notes.append("Terrain-Correction uses SRTM 3Sec here (SNAP needs a DEM); the native engine "
                     "geocodes on the ellipsoid when no DEM is given")
    if params.orbit:
        notes.append(f"orbit file given: {params.orbit} (copy it into SNAP's orbit folder)")
    return ". ".join(notes)


# -- running -----------------------------------------------------------------------------------

def find_gpt() -> str | None:
    exe = shutil.which("gpt")
    if exe:
        return exe
    home = os.environ.get("SNAP_HOME")
    if home and (Path(home) / "bin" / "gpt").exists():
        return str(Path(home) / "bin" / "gpt")
    return None


CGROUP = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
# gpt's heap: this share of the container's memory limit. The rest is for the JVM's own memory
# (metaspace, thread stacks, direct buffers of the readers and writers) and the Python step that
# runs gpt; a JVM that outgrows the limit is killed by the kernel without a message.
HEAP_FRACTION = 0.75
MIN_HEAP_MIB = 512
# SNAP's tile cache (gpt -c, 1024M by default): this share of the heap, so that a large heap is
# used for tiles and the operators keep room of their own.
TILE_CACHE_FRACTION = 0.5


def container_memory_limit(cgroup: Path | None = None) -> int | None:
    """Bytes the container may use (a pod's memory limit), when one is set (cgroup v2 or v1)."""
    cgroup = CGROUP if cgroup is None else cgroup
    try:
        text = (cgroup / "memory.max").read_text().strip()  # cgroup v2
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        pass
    try:
        value = int((cgroup / "memory" / "memory.limit_in_bytes").read_text())  # cgroup v1
    except (OSError, ValueError):
        return None
    return None if value >= 1 << 60 else value  # v1 writes "no limit" as a huge page-aligned number


def gpt_memory(limit: int | None) -> tuple[int, int] | None:
    """gpt's heap and tile cache in MiB for a container limited to ``limit`` bytes; None without
    a limit (gpt then keeps the heap of its own ``gpt.vmoptions``)."""
    if not limit:
        return None
    heap = max(MIN_HEAP_MIB, int(limit * HEAP_FRACTION) // MIB)
    return heap, int(heap * TILE_CACHE_FRACTION)


def gpt_invocation(exe: str, graph_file: Path, memory: tuple[int, int] | None, env: dict) -> tuple[list, dict]:
    """The command line and environment running ``graph_file``: the heap goes to the JVM in
    ``_JAVA_OPTIONS`` (which the JVM reads whatever its launcher's options) and the tile cache to
    gpt's ``-c``; a heap the environment already sets there is left as it is, with gpt's cache."""
    cmd, env = [exe, str(graph_file)], dict(env)
    options = env.get("_JAVA_OPTIONS", "")
    if memory is not None and "-Xmx" not in options:
        heap, cache = memory
        cmd += ["-c", f"{cache}M"]
        env["_JAVA_OPTIONS"] = f"{options} -Xmx{heap}m".strip()
    return cmd, env


def run_gpt(graph_file: Path, timeout: float | None = None) -> None:
    exe = find_gpt()
    if exe is None:
        raise ServiceError("SNAP is not installed (no gpt on PATH or in $SNAP_HOME/bin): use --engine native, "
                           "or --graph_only true to write the graph for gpt")
    cmd, env = gpt_invocation(exe, graph_file, gpt_memory(container_memory_limit()), os.environ)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        # the JVM's own notice of _JAVA_OPTIONS is not gpt's message
        errors = [line for line in proc.stderr.strip().splitlines() if not line.startswith("Picked up _JAVA_")]
        tail = (errors or proc.stdout.strip().splitlines())[-1:] or ["no output"]
        raise ServiceError(f"SNAP gpt failed on {graph_file.name}: {tail[0]}")
