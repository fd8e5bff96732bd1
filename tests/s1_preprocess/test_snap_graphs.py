"""The SNAP engine: gpt graphs written by --engine snap --graph_only, checked against SNAP's
operator help (``gpt <operator> -h``): operator aliases, order, parameter names and values."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from components.s1_preprocess import snap_graphs
from components.s1_preprocess.cli import main_grd, main_slc
from components.s1_preprocess.params import S1GRDParams

# Parameter names of each operator as listed by SNAP's `gpt <operator> -h`
SNAP_PARAMETERS = {
    "Read": {"file", "formatName", "sourceBands", "sourceMasks", "pixelRegion", "geometryRegion",
             "useAdvancedOptions", "copyMetadata"},
    "Apply-Orbit-File": {"orbitType", "polyDegree", "continueOnFail"},
    "ThermalNoiseRemoval": {"selectedPolarisations", "removeThermalNoise", "outputNoise", "reIntroduceThermalNoise"},
    "Remove-GRD-Border-Noise": {"selectedPolarisations", "borderLimit", "trimThreshold"},
    "Calibration": {"sourceBands", "auxFile", "externalAuxFile", "outputImageInComplex", "outputImageScaleInDb",
                    "createGammaBand", "createBetaBand", "selectedPolarisations", "outputSigmaBand",
                    "outputGammaBand", "outputBetaBand"},
    "Speckle-Filter": {"sourceBands", "filter", "filterSizeX", "filterSizeY", "dampingFactor", "estimateENL", "enl",
                       "numLooksStr", "windowSize", "targetWindowSizeStr", "sigmaStr", "anSize"},
    "Terrain-Correction": {"sourceBands", "demName", "externalDEMFile", "externalDEMNoDataValue",
                           "externalDEMApplyEGM", "demResamplingMethod", "imgResamplingMethod",
                           "pixelSpacingInMeter", "pixelSpacingInDegree", "mapProjection", "alignToStandardGrid",
                           "standardGridOriginX", "standardGridOriginY", "nodataValueAtSea", "saveDEM",
                           "saveLatLon", "saveIncidenceAngleFromEllipsoid", "saveLocalIncidenceAngle",
                           "saveProjectedLocalIncidenceAngle", "saveSelectedSourceBand", "outputComplex",
                           "applyRadiometricNormalization", "saveSigmaNought", "saveGammaNought",
                           "saveBetaNought", "incidenceAngleForSigma0", "incidenceAngleForGamma0", "auxFile"},
    "LinearToFromdB": {"sourceBands"},
    "Land-Sea-Mask": {"sourceBands", "landMask", "useSRTM", "geometry", "invertGeometry", "shorelineExtension"},
    "Subset": {"region", "referenceBand", "geoRegion", "subSamplingX", "subSamplingY", "fullSwath", "copyMetadata",
               "sourceBands", "tiePointGrids"},
    "Write": {"file", "formatName", "deleteOutputOnFailure", "writeEntireTileRows", "clearCacheAfterRowWrite"},
    "TOPSAR-Deburst": {"selectedPolarisations"},
    "TOPSAR-Split": {"subswath", "selectedPolarisations", "firstBurstIndex", "lastBurstIndex", "wktAoi"},
    "Multilook": {"sourceBands", "nRgLooks", "nAzLooks", "outputIntensity", "grSquarePixel"},
    "Back-Geocoding": {"demName", "demResamplingMethod", "externalDEMFile", "externalDEMNoDataValue",
                       "resamplingType", "maskOutAreaWithoutElevation", "outputRangeAzimuthOffset",
                       "outputDerampDemodPhase", "disableReramp"},
    "Enhanced-Spectral-Diversity": {"fineWinWidthStr", "fineWinHeightStr", "fineWinAccAzimuth", "fineWinAccRange",
                                    "fineWinOversampling", "xCorrThreshold", "cohThreshold", "numBlocksPerOverlap",
                                    "esdEstimator", "weightFunc", "temporalBaselineType", "maxTemporalBaseline",
                                    "integrationMethod", "doNotWriteTargetBands", "useSuppliedRangeShift",
                                    "overallRangeShift", "useSuppliedAzimuthShift", "overallAzimuthShift"},
    "Coherence": {"cohWinAz", "cohWinRg", "subtractFlatEarthPhase", "srpPolynomialDegree", "srpNumberPoints",
                  "orbitDegree", "squarePixel", "subtractTopographicPhase", "demName", "externalDEMFile",
                  "externalDEMNoDataValue", "externalDEMApplyEGM", "tileExtensionPercent", "singleMaster"},
    "CreateStack": {"resamplingType", "extent", "initialOffsetMethod", "masterBands", "sourceBands"},
    "Cross-Correlation": {"numGCPtoGenerate", "coarseRegistrationWindowWidth", "coarseRegistrationWindowHeight",
                          "rowInterpFactor", "columnInterpFactor", "maxIteration", "gcpTolerance",
                          "applyFineRegistration", "inSAROptimized", "fineRegistrationWindowWidth",
                          "fineRegistrationWindowHeight", "fineRegistrationWindowAccAzimuth",
                          "fineRegistrationWindowAccRange", "fineRegistrationOversampling", "coherenceWindowSize",
                          "coherenceThreshold", "useSlidingWindow", "computeOffset", "onlyGCPsOnLand"},
    "Warp": {"rmsThreshold", "warpPolynomialOrder", "interpolationMethod", "demRefinement", "demName",
             "excludeMaster", "openResidualsFile"},
    "S2Resampling": {"resampleOnPyramidLevels", "downsampling", "flagDownsampling", "resolution", "upsampling"},
    "BandMaths": {"targetBands", "variables"},
    "Reproject": {"collocateWith", "wktFile", "crs", "referencePixelX", "referencePixelY", "easting", "northing",
                  "orientation", "pixelSizeX", "pixelSizeY", "width", "height", "tileSizeX", "tileSizeY",
                  "orthorectify", "elevationModelName", "noDataValue", "includeTiePointGrids", "addDeltaBands",
                  "resampling"},
}


def _parse(xml_text: str):
    root = ElementTree.fromstring(xml_text)
    nodes = []
    for node in root.findall("node"):
        params = {child.tag: child for child in node.find("parameters")}
        sources = [s.get("refid") for s in node.find("sources")]
        nodes.append((node.get("id"), node.findtext("operator"), sources, params))
    return nodes


def _check_names_and_chain(nodes):
    ids = [n[0] for n in nodes]
    for i, (node_id, op, sources, params) in enumerate(nodes):
        assert op in SNAP_PARAMETERS, op
        assert set(params) <= SNAP_PARAMETERS[op], (op, set(params) - SNAP_PARAMETERS[op])
        assert all(s in ids[:i] for s in sources), (node_id, sources)
    assert nodes[0][1] == "Read" and nodes[-1][1] == "Write"


def _graph_only(main, product, out, *extra):
    code = main(["--input", str(product), "--outdir", str(out), "--engine", "snap", "--graph_only", "true", *extra])
    assert code == 0
    record = json.loads((out / "run.json").read_text())
    return _parse((out / record["outputs"]["graph"]).read_text()), record


def test_grd_graph_is_the_seed_chain(grd_product, tmp_path):
    nodes, record = _graph_only(main_grd, grd_product, tmp_path / "g")
    _check_names_and_chain(nodes)
    assert [n[1] for n in nodes] == list(snap_graphs.GRD_CHAIN)
    assert record["outputs"]["operators"] == list(snap_graphs.GRD_CHAIN)
    p = {op: params for _, op, _, params in nodes}
    sf = p["Speckle-Filter"]
    assert (sf["filter"].text, sf["windowSize"].text, sf["targetWindowSizeStr"].text, sf["sigmaStr"].text,
            sf["numLooksStr"].text, sf["sourceBands"].text) == ("Lee Sigma", "7x7", "3x3", "0.9", "1", "Sigma0_VV")
    assert p["Calibration"]["outputSigmaBand"].text == "true" and p["Calibration"]["outputGammaBand"].text == "false"
    assert p["Calibration"]["selectedPolarisations"].text == "VV"
    assert p["Remove-GRD-Border-Noise"]["borderLimit"].text == "500"
    assert p["Remove-GRD-Border-Noise"]["trimThreshold"].text == "0.5"
    assert p["ThermalNoiseRemoval"]["removeThermalNoise"].text == "true"
    tc = p["Terrain-Correction"]
    assert (tc["pixelSpacingInMeter"].text, tc["mapProjection"].text, tc["demName"].text) == ("10.0", "WGS84(DD)",
                                                                                             "SRTM 3Sec")
    assert p["Write"]["formatName"].text == "GeoTIFF-BigTIFF"
    assert p["Apply-Orbit-File"]["orbitType"].text == "Sentinel Precise (Auto Download)"
    assert not any(f.suffix == ".tif" for f in (tmp_path / "g").iterdir())


def test_grd_graph_options(grd_product, dem_rome, tmp_path):
    nodes, _ = _graph_only(main_grd, grd_product, tmp_path / "g", "--calibration", "GammaDB", "--speckle", "Frost",
                           "--filter_size_x", "5", "--damping_factor", "3", "--dem", str(dem_rome), "--dem_geoid_height", "47",
                           "--landseamask", "Sea", "--AoI", "POLYGON((12.4 41.9,12.6 41.9,12.6 42,12.4 42,12.4 41.9))",
                           "--projection", "EPSG:32633", "--resolution", "20", "--output_format", "ENVI")
    _check_names_and_chain(nodes)
    ops = [n[1] for n in nodes]
    assert ops[-5:] == ["Terrain-Correction", "LinearToFromdB", "Land-Sea-Mask", "Subset", "Write"]
    p = {op: params for _, op, _, params in nodes}
    assert p["Speckle-Filter"]["filter"].text == "Frost" and p["Speckle-Filter"]["filterSizeX"].text == "5"
    assert p["Speckle-Filter"]["dampingFactor"].text == "3"
    assert p["Calibration"]["outputGammaBand"].text == "true"
    assert p["Terrain-Correction"]["demName"].text == "External DEM"
    assert p["Terrain-Correction"]["externalDEMFile"].text == str(dem_rome)
    assert p["Terrain-Correction"]["mapProjection"].text == "EPSG:32633"
    assert p["Land-Sea-Mask"]["landMask"].text == "false"
    assert p["Subset"]["geoRegion"].text.startswith("POLYGON")
    assert p["Write"]["formatName"].text == "ENVI"


def test_slc_graph_has_deburst_and_multilook(slc_product, tmp_path):
    nodes, _ = _graph_only(main_slc, slc_product, tmp_path / "g", "--resolution", "20")
    _check_names_and_chain(nodes)
    assert [n[1] for n in nodes] == ["Read", "Apply-Orbit-File", "ThermalNoiseRemoval", "TOPSAR-Deburst",
                                     "Calibration", "Multilook", "Speckle-Filter", "Terrain-Correction", "Write"]
    p = {op: params for _, op, _, params in nodes}
    assert (p["Multilook"]["nRgLooks"].text, p["Multilook"]["nAzLooks"].text) == ("4", "1")


@pytest.mark.parametrize("mode", ["IW", "SM"])
def test_coherence_graphs(mode):
    params = S1GRDParams(calibration="Sigma")
    g = snap_graphs.coherence_graph(params, "/data/a.zip", "/data/b.zip", "/out/coh", 10.0, mode,
                                    subswath="IW2" if mode == "IW" else None)
    nodes = _parse(g.to_xml())
    _check_names_and_chain(nodes)
    ops = [n[1] for n in nodes]
    if mode == "IW":
        assert ops == ["Read", "TOPSAR-Split", "Apply-Orbit-File", "Calibration"] * 2 + [
            "Back-Geocoding", "Enhanced-Spectral-Diversity", "Coherence", "TOPSAR-Deburst", "Terrain-Correction",
            "Write"]
        bg = next(n for n in nodes if n[1] == "Back-Geocoding")
        assert bg[2] == ["Calibration", "Calibration(2)"]
        assert next(n for n in nodes if n[1] == "TOPSAR-Split")[3]["subswath"].text == "IW2"
    else:
        assert ops == ["Read", "Apply-Orbit-File", "Calibration"] * 2 + [
            "CreateStack", "Cross-Correlation", "Warp", "Coherence", "Terrain-Correction", "Write"]
    coh = next(n for n in nodes if n[1] == "Coherence")[3]
    assert (coh["cohWinAz"].text, coh["cohWinRg"].text) == ("10", "10")
    cal = next(n for n in nodes if n[1] == "Calibration")[3]
    assert cal["outputImageInComplex"].text == "true"


def test_s2_graph_from_s2_parameters():
    from components.s2_preprocess.params import S2PreprocessParams

    params = S2PreprocessParams(resolution=20, cloudmask="L2A", landseamask="Sea", projection="EPSG:4326",
                                aoi="POLYGON((-8.9 53.2,-8.3 53.2,-8.3 52.8,-8.9 52.8,-8.9 53.2))")
    nodes = _parse(snap_graphs.s2_graph(params, "/data/S2.SAFE", "/out/s2").to_xml())
    _check_names_and_chain(nodes)
    assert [n[1] for n in nodes] == ["Read", "S2Resampling", "Land-Sea-Mask", "BandMaths", "Subset", "Reproject",
                                     "Write"]
    s2r = nodes[1][3]
    assert (s2r["resolution"].text, s2r["upsampling"].text, s2r["downsampling"].text) == ("20", "Nearest", "First")
    band = nodes[3][3]["targetBands"].find("targetBand")
    assert band.findtext("name") == "B2" and "quality_scene_classification == 9" in band.findtext("expression")


def test_snap_run_without_snap_is_one_clear_error(grd_product, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SNAP_HOME", raising=False)
    out = tmp_path / "o"
    code = main_grd(["--input", str(grd_product), "--outdir", str(out), "--engine", "snap"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("S1-GRD-preprocess: error: SNAP is not installed")
    assert not out.exists()
