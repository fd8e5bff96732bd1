"""Real speckle: the IW3 VV crop of an S1A SLC over Terceira (601 lines x 1401 samples of
burst 7, ``s1-iw-slc-crop-real-terceira``), given as pieces (swath annotation + cropped
measurement, no calibration or noise annotation), through the SLC path: deburst window,
constant calibration, multilook, then every speckle filter the service offers. Over a
homogeneous sea window each filter's equivalent number of looks (ENL = mean^2 / variance) is
that of its definition and the mean is kept.

Sea speckle is spatially correlated (the SLC is oversampled, and swell adds texture: the
intensity autocorrelation is still about 0.1 several pixels away), so n^2 samples are not n^2
independent looks. For a filter that averages with weights w over a homogeneous area,
var(out) = sum_ij w_i w_j C(i - j) / (sum w)^2 exactly, C the autocovariance of its input:
the expected ENL gain follows from the autocovariance measured on the same window."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import rasterio
from scipy import integrate, stats

from components.s1_preprocess import filters, radar
from components.s1_preprocess.cli import main_slc
from components.s1_preprocess.params import S1SLCParams
from components.s1_preprocess.product import crop_offset_from_name, open_pieces
from tests.conftest import sample

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

CROP = "s1-iw-slc-crop-real-terceira"
BETA0 = 237.0  # the constant betaNought LUT of IW SLCs
LOOKS = (1, 5)  # 20 m: 1 azimuth look (13.9 m) x 5 range looks (3.4 m ground range in IW3)
# The sea window, in crop lines x multilooked columns (samples 11520-12360): the crop's last
# 160 lines, from sample 520 of the crop to 1360. Chosen on the data (mean and coefficient of
# variation of 60 x 100 blocks): the upper part is Terceira (land, 15-20 dB brighter, coefficient
# of variation 1.2 to 17), the coast reaches line 420 between crop samples 400 and 900, and the
# column around crop sample 450 below it holds a bright streak (coefficient of variation 1.5).
# The test checks that the window is sea speckle (below).
SEA = np.s_[441:601, 104:272]
MAX_LAG = 6  # the largest window is 7x7


@pytest.fixture(scope="module")
def crop():
    return sample(CROP)


@pytest.fixture(scope="module")
def image(crop):
    return open_pieces(crop, calibration_constant=BETA0).image("IW3", "VV")


def _process(image, tmp_path, name="None", **kw):
    params = S1SLCParams(speckle=name, calibration="Beta", thermal_noise_removal=False, **kw)
    plan = radar.deburst_plan(image)
    raster = radar.process_slc(image.product, image, params, LOOKS, str(tmp_path / f"{name}.tif"), plan=plan,
                               bounds=radar.data_bounds(image, plan))
    with rasterio.open(raster.path) as ds:
        return raster, ds.read(1).astype(np.float64)


@pytest.fixture(scope="module")
def multilooked(image, tmp_path_factory):
    return _process(image, tmp_path_factory.mktemp("ml"))


def _trend(x):
    """The sea's smooth radiometric trend (about 2 dB across the window in range): quadratic in
    columns, linear in rows. Dividing by it leaves the speckle (and the sea texture)."""
    cols = np.nanmean(x[SEA], axis=0)
    rows = np.nanmean(x[SEA], axis=1)
    tc = np.polyval(np.polyfit(np.arange(cols.size), cols, 2), np.arange(cols.size))
    tr = np.polyval(np.polyfit(np.arange(rows.size), rows / rows.mean(), 1), np.arange(rows.size))
    return tr[:, None] * tc[None, :]


def _enl(v):
    v = v[np.isfinite(v)]
    return v.mean() ** 2 / v.var()


def _autocorrelation(v):
    d = v - v.mean()
    h, w = d.shape
    out = np.empty((2 * MAX_LAG + 1, 2 * MAX_LAG + 1))
    for dy in range(-MAX_LAG, MAX_LAG + 1):
        for dx in range(-MAX_LAG, MAX_LAG + 1):
            a = d[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            b = d[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            out[dy + MAX_LAG, dx + MAX_LAG] = (a * b).mean()
    return out / d.var()


def _gain(weights, rho):
    """ENL(out) / ENL(in) of a weighted mean of correlated samples: (sum w)^2 / sum w_i w_j rho."""
    ys, xs = np.nonzero(weights)
    w = weights[ys, xs]
    dy = ys[None, :] - ys[:, None] + MAX_LAG
    dx = xs[None, :] - xs[:, None] + MAX_LAG
    return w.sum() ** 2 / (w[:, None] * w[None, :] * rho[dy, dx]).sum()


@pytest.fixture(scope="module")
def sea(multilooked):
    _, x = multilooked
    trend = _trend(x)
    v = x[SEA] / trend
    return x, trend, _enl(v), _autocorrelation(v)


def test_pieces_are_read_at_the_offset_of_the_file_name(crop, image):
    tiff = next(crop.glob("*.tiff"))
    assert crop_offset_from_name(tiff.name) == (9800, 11000)
    assert image.data_window == (9800, 10401, 11000, 12401)
    assert image.lines_per_burst == 1514 and 9800 // 1514 == 10400 // 1514 == 6  # burst 7 of 9
    with rasterio.open(tiff) as ds:
        raw = ds.read(1, window=((100, 102), (200, 205)))
    assert np.array_equal(image.read(9900, 11200, 2, 5), raw)
    assert not image.read(9798, 10990, 2, 10)[:, :].any()  # outside the crop: NoData
    explicit = open_pieces(crop, calibration_constant=BETA0, offset=(9000, 11000)).image("IW3", "VV")
    assert explicit.data_window[:2] == (9000, 9601)


def test_constant_calibration_and_multilook(image, multilooked):
    raster, x = multilooked
    assert (raster.row0, raster.col0) == (radar.data_bounds(image, radar.deburst_plan(image))[0], 11000 + 2)
    assert x.shape == (601, 281)
    dn = image.read(9800, 11000, 601, 1405).astype(np.complex128)
    power = np.abs(dn) ** 2 / BETA0 ** 2
    np.testing.assert_allclose(x[10, 7], power[10, 35:40].mean(), rtol=1e-5)


def test_the_sea_window_is_homogeneous_speckle(multilooked, image):
    _, x = multilooked
    dn = image.read(9800, 11000, 601, 1401)
    single = np.abs(dn.astype(np.complex128)) ** 2
    rows, cols = SEA[0], slice(SEA[1].start * 5, SEA[1].stop * 5)
    block = single[rows, cols]
    # int16 quantisation of the weak sea return: 0.8 % of the samples are exactly 0, read as
    # NoData (as SNAP reads SLC zeros; the multilooked mean is 0.8 % higher for it)
    assert (block == 0).mean() < 0.01
    # single-look intensity: coefficient of variation near 1 (fully developed speckle) in every
    # 40 x 210 block, and 15 dB below the land in the crop's upper half
    for r in range(0, block.shape[0], 40):
        for c in range(0, block.shape[1], 210):
            b = block[r:r + 40, c:c + 210]
            b = b[b > 0]
            assert 0.95 < b.std() / b.mean() < 1.3
    assert 10 * math.log10(np.nanmean(x[:250]) / np.nanmean(x[SEA])) > 15


FILTER_CASES = ["Boxcar 3", "Boxcar 5", "Boxcar 7", "Lee", "Gamma Map", "Frost", "Median", "Refined Lee", "Lee Sigma"]


@pytest.mark.parametrize("case", FILTER_CASES)
def test_filter_enl_and_mean_over_the_sea(case, image, sea, tmp_path):
    x, trend, enl_in, rho = sea
    name, _, size = case.rpartition(" ") if case[-1].isdigit() else (case, "", "")
    kw = {"filter_size_x": int(size), "filter_size_y": int(size)} if size else {}
    _, out = _process(image, tmp_path, name, **kw)
    enl_out = _enl(out[SEA] / trend)
    gain = enl_out / enl_in
    mean_ratio = np.nanmean(out[SEA]) / np.nanmean(x[SEA])
    assert 1.8 < enl_in < 2.8  # 5 correlated range looks
    if name in ("Boxcar", "Lee", "Gamma Map"):
        # Lee and Gamma Map with SNAP's default ENL of 1 (cu = 1) on these 2-look data: the
        # window's variation is below the speckle's, so they give the 3x3 window mean
        n = int(size or 3)
        assert gain == pytest.approx(_gain(np.ones((n, n)), rho), rel=0.05)
    elif name == "Frost":
        # weights exp(-D * ci^2 * r), ci^2 = 1/ENL on a homogeneous area, D = 2
        r = np.hypot(*np.mgrid[-1:2, -1:2])
        assert gain == pytest.approx(_gain(np.exp(-2.0 / enl_in * r), rho), rel=0.07)
    elif name == "Refined Lee":
        # the mean of one of the eight 28-sample edge-aligned half windows (cu = 1 > ci: the
        # MMSE weight is 0); the half nearest the centre is chosen, so its samples lean towards
        # the centre's and the gain stays below that of a fixed half window
        fixed = [_gain(m, rho) for m in filters._refined_lee_masks()]
        assert 0.75 * min(fixed) < gain < max(fixed)
    elif name == "Lee Sigma":
        # 1 look, sigma 0.9: the sigma range [0.084, 3.941] x the a-priori mean keeps almost
        # every sample of 2-look data, and the MMSE weight is 0 (their variance is below
        # sigma_vp^2): the mean of the 7x7 window
        assert gain == pytest.approx(_gain(np.ones((7, 7)), rho), rel=0.07)
    if name == "Median":
        # the median of 9 samples is not the mean: for Gamma(ENL) speckle its expectation is
        # that of the 5th of 9 order statistics (independent samples; correlation moves it ~2 %)
        f = stats.gamma(enl_in, scale=1 / enl_in)
        expected = integrate.quad(lambda t: t * 9 * math.comb(8, 4) * (f.cdf(t) * f.sf(t)) ** 4 * f.pdf(t), 0, 50)[0]
        assert mean_ratio == pytest.approx(expected, rel=0.03)
        assert 0.7 * _gain(np.ones((3, 3)), rho) < gain < _gain(np.ones((3, 3)), rho)
    else:
        assert mean_ratio == pytest.approx(1.0, abs=0.02)


def test_pieces_through_the_service_name_the_constant(crop, tmp_path):
    out = tmp_path / "out"
    assert main_slc(["--input", str(crop), "--outdir", str(out), "--calibration_constant", str(BETA0),
                     "--calibration", "BetaDB", "--thermal_noise_removal", "false", "--resolution", "20"]) == 0
    record = json.loads((out / "run.json").read_text())
    metrics = record["outputs"]["metrics"]
    assert metrics["calibration_source"].startswith("constant 237 from --calibration_constant")
    assert metrics["thermal_noise"].startswith("not removed")
    assert metrics["radar_read"]["IW3"]["bursts"] == [6]
    assert record["params"]["calibration_constant"] == BETA0
    stac = json.loads((out / record["outputs"]["stac"]).read_text())
    assert "constant A = 237" in json.dumps(stac)
    with rasterio.open(out / record["outputs"]["product"]) as ds:
        v = ds.read(1, masked=True).compressed()
    assert v.size > 50_000 and -30 < np.median(v) < 10


@pytest.fixture(scope="module")
def bad_pieces(crop, tmp_path_factory):
    root = tmp_path_factory.mktemp("pieces")
    ann = next(crop.glob("*.xml"))
    real = root / "real"
    real.mkdir()
    for f in crop.iterdir():
        (real / f.name).symlink_to(f)
    floats = root / "floats"
    floats.mkdir()
    (floats / ann.name).symlink_to(ann)
    with rasterio.open(floats / "s1a-iw3-slc-vv_subset_hight9800_9809_width11000_11009.tiff", "w", driver="GTiff",
                       width=10, height=10, count=1, dtype="float32") as ds:
        ds.write(np.ones((1, 10, 10), np.float32))
    unnamed = root / "unnamed"
    unnamed.mkdir()
    (unnamed / ann.name).symlink_to(ann)
    shutil.copy(next(crop.glob("*.tiff")), unnamed / "s1a-iw3-slc-vv-crop.tiff")
    return {"real": real, "floats": floats, "unnamed": unnamed}


PIECES_CASES = [
    ("no constant", "real", ["--thermal_noise_removal", "false"], "give the calibration value with "
     "--calibration_constant"),
    ("noise removal asked", "real", ["--calibration_constant", "237"], "set --thermal_noise_removal false"),
    ("offset outside the swath", "real", ["--calibration_constant", "237", "--thermal_noise_removal", "false",
                                          "--crop_offset", "13500,11000"], "does not fit in the 24203x13626 swath"),
    ("negative offset", "real", ["--calibration_constant", "237", "--thermal_noise_removal", "false",
                                 "--crop_offset", "-5,-5"], "at line -5, sample -5) does not fit"),
    ("offset not two numbers", "real", ["--calibration_constant", "237", "--thermal_noise_removal", "false",
                                        "--crop_offset", "9800"], "is not LINE,SAMPLE"),
    ("not complex samples", "floats", ["--calibration_constant", "237", "--thermal_noise_removal", "false"],
     "not complex SLC samples"),
    ("crop without offset", "unnamed", ["--calibration_constant", "237", "--thermal_noise_removal", "false"],
     "its name gives no crop offset: set --crop_offset"),
    ("snap engine", "real", ["--calibration_constant", "237", "--thermal_noise_removal", "false", "--engine", "snap"],
     "--engine snap needs a SAFE"),
]


@pytest.mark.parametrize("case_id, folder, extra, fragment", PIECES_CASES, ids=[c[0] for c in PIECES_CASES])
def test_bad_pieces(case_id, folder, extra, fragment, bad_pieces, tmp_path, capsys):
    out = tmp_path / "out"
    code = main_slc(["--input", str(bad_pieces[folder]), "--outdir", str(out), *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("S1-SLC-preprocess: error: "), err
    assert fragment in lines[0], lines[0]
    assert not out.exists()


def test_constant_refused_for_a_safe(slc_product, tmp_path, capsys):
    code = main_slc(["--input", str(slc_product), "--outdir", str(tmp_path / "o"), "--calibration_constant", "237"])
    assert code == 2
    assert "--calibration_constant is for an input given as pieces" in capsys.readouterr().err
