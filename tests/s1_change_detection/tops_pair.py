"""A coherent IW SLC pair as the sensor records it, in the real SAFE layout.

The metadata are the real annotation of the shared S1B IW1 product (bursts, timing, Doppler
centroid and FM rate estimates, steering rate, orbit), cropped by ``s1_products.write_slc``.
The pixels are simulated here from a scene of point scatterers on the ground (one per
reference sample, jittered, complex Gaussian reflectivity, heights from an analytic terrain):

* each scatterer's zero-Doppler time and slant range in each acquisition come from that
  acquisition's orbit (``RangeDopplerModel`` of the pre-processing package: independent of the
  S1-CD geometry);
* its echo in a burst is a band-limited point response (0.7 of the PRF in azimuth, 0.85 of the
  range sampling rate) with the carrier phase ``exp(-j 4 pi R / lambda)`` and, in azimuth, the
  Doppler centroid the steered beam gives it there: the burst carries the TOPS ramp of the ESA
  deramping note, evaluated here from the annotation by this module's own code.

The secondary is the reference's annotation 12 days later with its burst times moved by
``offset_lines`` (the scene then falls that fraction of a line further in it), optionally an
orbit displaced by ``baseline_m`` perpendicular to the line of sight and an extra azimuth shift
``hidden_shift`` of the pixels that the annotation does not tell (what ESD has to find).
Contains modified Copernicus Sentinel data 2021.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import rasterio

from components.s1_preprocess import geocoding
from components.s1_preprocess import service as s1
from components.s1_preprocess.product import open_product
from tests.fixtures import s1_products

C = 299_792_458.0
TAPS = 10
BAND_AZ = 0.7
BAND_RG = 0.85
AMPLITUDE = 400.0
MARGIN = 60  # samples of scene beyond the image on each side (terrain moves it in range)
NODE = 4  # reference lines/samples between exactly computed scatterer positions


class Terrain:
    """Sloped terrain following the reference image: the geolocation grid's heights plus a rise
    of 10 % across the track (0.43 m per range sample of ground range) and a 100 m ridge across
    the scene; heights at lon/lat through the geolocation grid's inverse."""

    def __init__(self, gcp, rows: int, cols: int):
        self.gcp, self.rows, self.cols = gcp, rows, cols

    def __call__(self, lon, lat):
        r, c = self.gcp.inverse(lon, lat)
        # beyond the scene the terrain continues flat (no extrapolation of the grid)
        r, c = np.clip(r, -300, self.rows + 300), np.clip(c, -300, self.cols + 300)
        base = self.gcp.forward(r, c)[2]
        return base + 0.43 * (c - self.cols / 2) + 100.0 * np.exp(-((r - self.rows / 2) / 300.0) ** 2)


def write_dem(path: Path, terrain: Terrain) -> Path:
    """The terrain as a GeoTIFF in EPSG:4326 over the scene and 300 samples/lines around it."""
    r = np.array([-300.0, -300.0, terrain.rows + 300.0, terrain.rows + 300.0])
    c = np.array([-300.0, terrain.cols + 300.0, -300.0, terrain.cols + 300.0])
    lon, lat, _ = terrain.gcp.forward(r, c)
    step = 0.0005
    lons = np.arange(lon.min() - 0.01, lon.max() + 0.01, step)
    lats = np.arange(lat.max() + 0.01, lat.min() - 0.01, -step)
    lon, lat = np.meshgrid(lons + step / 2, lats - step / 2)
    h = terrain(lon, lat).astype(np.float32)
    transform = rasterio.transform.from_origin(lons[0], lats[0], step, step)
    with rasterio.open(path, "w", driver="GTiff", width=h.shape[1], height=h.shape[0], count=1, dtype="float32",
                       crs="EPSG:4326", transform=transform, nodata=-32768) as ds:
        ds.write(h, 1)
    return path


def _times(root, path, seconds):
    for el in root.iter(path):
        t = np.datetime64(el.text, "us") + np.timedelta64(int(round(seconds * 1e6)), "us")
        el.text = str(t)


def _patch_secondary(annotation: Path, offset_s: float, baseline: np.ndarray | None):
    tree = ET.parse(annotation)
    root = tree.getroot()
    for b in root.findall("swathTiming/burstList/burst"):
        _times(b, "azimuthTime", -offset_s)
    info = root.find("imageAnnotation/imageInformation")
    _times(info, "productFirstLineUtcTime", -offset_s)
    _times(info, "productLastLineUtcTime", -offset_s)
    if baseline is not None:
        for o in root.findall("generalAnnotation/orbitList/orbit/position"):
            for axis, d in zip("xyz", baseline):
                el = o.find(axis)
                el.text = repr(float(el.text) + float(d))
    annotation.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode"))


def _kernel(x, band):
    w = np.where(np.abs(x) < TAPS / 2, 0.5 + 0.5 * np.cos(2 * np.pi * x / TAPS), 0)
    return band * np.sinc(band * x) * w


class _Ramp:
    """The TOPS azimuth phase of each burst, from the annotation XML."""

    def __init__(self, annotation: Path, orbit, epoch):
        root = ET.parse(annotation).getroot()

        def sec(text):
            return float((np.datetime64(text, "ns") - np.datetime64(epoch, "ns")) / np.timedelta64(1, "s"))
        prod = root.find("generalAnnotation/productInformation")
        info = root.find("imageAnnotation/imageInformation")
        self.wavelength = C / float(prod.findtext("radarFrequency"))
        steer = np.radians(float(prod.findtext("azimuthSteeringRate")))
        self.dt = float(info.findtext("azimuthTimeInterval"))
        self.tau0 = float(info.findtext("slantRangeTime"))
        self.fs = float(prod.findtext("rangeSamplingRate"))
        samples = int(info.findtext("numberOfSamples"))
        self.lpb = int(root.findtext("swathTiming/linesPerBurst"))
        self.starts = [sec(b.findtext("azimuthTime")) for b in root.findall("swathTiming/burstList/burst")]
        self.valid = [(np.array(b.findtext("firstValidSample").split(), int),
                       np.array(b.findtext("lastValidSample").split(), int))
                      for b in root.findall("swathTiming/burstList/burst")]
        dcs = [(sec(e.findtext("azimuthTime")), float(e.findtext("t0")),
                np.array(e.findtext("dataDcPolynomial").split(), float))
               for e in root.findall("dopplerCentroid/dcEstimateList/dcEstimate")]
        fms = [(sec(e.findtext("azimuthTime")), float(e.findtext("t0")),
                np.array(e.findtext("azimuthFmRatePolynomial").split(), float))
               for e in root.findall("generalAnnotation/azimuthFmRateList/azimuthFmRate")]
        self.params = []
        for t0 in self.starts:
            mid = t0 + self.lpb * self.dt / 2
            dc = min(dcs, key=lambda d: abs(d[0] - mid))
            fm = min(fms, key=lambda f: abs(f[0] - mid))
            speed = np.linalg.norm(orbit.state(np.array(mid))[1])
            ks = 2 * speed / self.wavelength * steer
            tau_mid = self.tau0 + samples / 2 / self.fs

            def rates(cols, dc=dc, fm=fm, ks=ks, tau_mid=tau_mid):
                tau = self.tau0 + cols / self.fs
                fdc = np.polyval(dc[2][::-1], tau - dc[1])
                ka = np.polyval(fm[2][::-1], tau - fm[1])
                eta_mid = -np.polyval(dc[2][::-1], tau_mid - dc[1]) / np.polyval(fm[2][::-1], tau_mid - fm[1])
                return ka * ks / (ka - ks), fdc, -fdc / ka - eta_mid
            self.params.append(rates)

    def phase(self, b, lines, cols):
        kt, fdc, eta_ref = self.params[b](cols)
        eta = (lines - self.lpb / 2) * self.dt - eta_ref
        return np.pi * kt * eta ** 2 + 2 * np.pi * fdc * eta


def _positions(image, orbit, lon, lat, h):
    """Zero-Doppler time (s since the image's first line) and slant range of ground points."""
    model = geocoding.RangeDopplerModel(orbit, 0.0, 1.0, lambda t, tau: tau)
    t, tau = model.inverse(lon, lat, h)
    return t, tau * C / 2


def _record(path: Path, image, orbit, ramp: _Ramp, nodes, where, refl, hidden_shift: float):
    from scipy import ndimage

    # exact on a node grid, bilinear between (scatterers are anywhere; both dates see the same ones)
    t_n, rng_n = _positions(image, orbit, *nodes)
    t = ndimage.map_coordinates(t_n, where, order=1, mode="nearest")
    rng = ndimage.map_coordinates(rng_n, where, order=1, mode="nearest")
    carrier = refl * np.exp(-4j * np.pi * rng / ramp.wavelength)
    col = (2 * rng / C - ramp.tau0) * ramp.fs
    lpb, w = ramp.lpb, image.samples
    with rasterio.open(path, "r+") as ds:
        for b, t0 in enumerate(ramp.starts):
            line = (t - t0) / ramp.dt + hidden_shift
            sel = (line > -TAPS // 2) & (line < lpb + TAPS // 2) & (col > -TAPS // 2) & (col < w + TAPS // 2)
            x, y = line[sel], col[sel]
            # each scatterer: its Doppler centroid in this burst (the deramped phase at its position)
            amp = carrier[sel] * np.exp(-1j * ramp.phase(b, x, y))
            bx, by = np.floor(x).astype(int), np.floor(y).astype(int)
            stride = w + 2 * TAPS
            acc_re = np.zeros((lpb + 2 * TAPS) * stride)
            acc_im = np.zeros_like(acc_re)
            taps = range(-TAPS // 2 + 1, TAPS // 2 + 1)
            wy = [_kernel(by + j - y, BAND_RG) for j in taps]
            for i in taps:
                wxa = _kernel(bx + i - x, BAND_AZ) * amp
                row = (bx + i + TAPS) * stride + TAPS
                for j, wyj in zip(taps, wy):
                    wt = wxa * wyj
                    acc_re += np.bincount(row + by + j, wt.real, acc_re.size)
                    acc_im += np.bincount(row + by + j, wt.imag, acc_im.size)
            acc = acc_re + 1j * acc_im
            burst = acc.reshape(lpb + 2 * TAPS, stride)[TAPS:TAPS + lpb, TAPS:TAPS + w]
            rows, cols = np.arange(lpb)[:, None], np.arange(w)[None, :]
            burst = burst * np.exp(1j * ramp.phase(b, rows, cols)) * AMPLITUDE
            fv, lv = ramp.valid[b]
            burst[(fv[:, None] < 0) | (cols < fv[:, None]) | (cols > lv[:, None])] = 0
            data = np.empty((lpb, w), np.complex64)
            data.real = np.clip(np.rint(burst.real), -32767, 32767)
            data.imag = np.clip(np.rint(burst.imag), -32767, 32767)
            ds.write(data, 1, window=rasterio.windows.Window(0, b * lpb, w, lpb))


def write_pair(root: Path, source: Path, *, offset_lines: float = 0.3, baseline_m: float = 0.0,
               hidden_shift: float = 0.0, dem: bool = False, bursts=(2, 2), samples=(9000, 128), seed: int = 7):
    """(reference SAFE, secondary SAFE, DEM path or None)."""
    a = s1_products.write_slc(root / "a", source=source, bursts=bursts, samples=samples)
    b = s1_products.write_slc(root / "b", source=source, bursts=bursts, samples=samples, date=1, shift_days=12)
    p1 = open_product(a, root / "x1", expect="SLC")
    im1 = p1.image("IW1", "VV")
    orbit1 = s1.load_orbit(p1, im1, None)[0]
    gcp, n_rows = s1.gcp_model(im1)
    centre = gcp.forward(np.array(n_rows / 2), np.array(im1.samples / 2))
    baseline = None
    if baseline_m:
        # perpendicular to the velocity and to the line of sight at the scene centre
        t_c, _ = _positions(im1, orbit1, *centre)
        s, v = orbit1.state(t_c)
        look = geocoding.geodetic_to_ecef(*centre) - s
        perp = np.cross(v, look)
        baseline = baseline_m * perp / np.linalg.norm(perp)
    ann2 = next((b / "annotation").glob("s1*-iw1-slc-vv-*.xml"))
    _patch_secondary(ann2, offset_lines * im1.azimuth_time_interval, baseline)
    p2 = open_product(b, root / "x2", expect="SLC")
    im2 = p2.image("IW1", "VV")
    orbit2 = s1.load_orbit(p2, im2, None)[0]
    # the scene: one scatterer per reference sample, jittered, over the debursted image and a margin
    rng = np.random.default_rng(seed)
    node_r = np.arange(-24, n_rows + 28, NODE, dtype=float)
    node_c = np.arange(-MARGIN - 4, im1.samples + MARGIN + 8, NODE, dtype=float)
    lon, lat, h = gcp.forward(node_r[:, None] + 0 * node_c, node_c[None, :] + 0 * node_r[:, None])
    terrain = Terrain(gcp, n_rows, im1.samples)
    if dem:
        h = terrain(lon, lat)
    rr, cc = np.meshgrid(np.arange(-20, n_rows + 20, dtype=float), np.arange(-MARGIN, im1.samples + MARGIN, dtype=float),
                         indexing="ij")
    rr += rng.uniform(-0.5, 0.5, rr.shape)
    cc += rng.uniform(-0.5, 0.5, cc.shape)
    where = np.stack([(rr.ravel() - node_r[0]) / NODE, (cc.ravel() - node_c[0]) / NODE])
    refl = (rng.standard_normal(rr.size) + 1j * rng.standard_normal(rr.size)) / np.sqrt(2)
    for image, orbit, shift in ((im1, orbit1, 0.0), (im2, orbit2, hidden_shift)):
        ramp = _Ramp(image.annotation, orbit, image.first_line_time)
        _record(image.measurement, image, orbit, ramp, (lon, lat, h), where, refl, shift)
    dem_path = write_dem(root / "dem.tif", terrain) if dem else None
    return a, b, dem_path
