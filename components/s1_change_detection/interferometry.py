"""S1-CD interferometric processing of one sub-swath, burst by burst (the I/O around
:mod:`.tops`): the steps in :data:`NATIVE_STEPS`, in SNAP's operator names so that the native
engine and the SNAP graph can be compared step by step.

Per reference burst k (and the secondary burst m that sees the same ground):

1. Geometry on nodes every ``NODE_LINES`` x ``NODE_SAMPLES``: each node's ground point on the
   DEM (``--dem``) or, without one, on the ellipsoid raised by the annotation geolocation-grid
   heights; its zero-Doppler time and range in the secondary orbit give the secondary line,
   sample and the range difference ``dR``; bilinear between nodes.
2. ESD: in every burst overlap both interferograms are formed (after step 3) and their double
   difference gives the residual azimuth shift; each burst takes the mean of the estimates of
   its overlaps.
3. Secondary burst deramped and demodulated, resampled with the 8-point sinc at the
   co-registered positions, reramped, multiplied by ``exp(j 4 pi dR / lambda)`` (flat earth and
   topography).
4. Coherence over the window, backscatter of both dates; the lines each burst owns in the
   debursted image (split at the middle of the overlaps, as TOPSAR-Deburst) are kept.
"""

from __future__ import annotations

import dataclasses
import logging
from xml.etree import ElementTree

import numpy as np

from components.common.errors import ServiceError
from components.s1_preprocess import geocoding
from components.s1_preprocess.product import Image
from components.s1_preprocess.radiometry import calibrate, denoise, intensity

from . import kernels, tops

log = logging.getLogger(__name__)

NODE_LINES = 8
NODE_SAMPLES = 16
CHUNK = 2048  # range samples per block
DEM_ITERATIONS = 6
ESD_MIN_QUALITY = 0.05  # an overlap whose double difference is this incoherent gives no estimate

NATIVE_STEPS = (
    ("TOPSAR-Split", "one sub-swath and polarisation, burst by burst"),
    ("Apply-Orbit-File", "each product's orbit: --orbit EOF file, else the annotation state vectors"),
    ("Back-Geocoding", "DEM-assisted co-registration (--dem, else the ellipsoid at the annotated heights); "
                       "secondary bursts deramped and demodulated, resampled by an 8-point sinc, reramped"),
    ("Enhanced-Spectral-Diversity", "azimuth shift per burst overlap from the double-difference phase, "
                                    "applied per burst"),
    ("Coherence", "flat-earth and topographic phase removed from the orbits' range difference, then "
                  "|<s1 s2*>| / sqrt(<|s1|^2> <|s2|^2>)"),
    ("TOPSAR-Deburst", "each burst keeps its lines up to the middle of its overlaps"),
    ("Terrain-Correction", "geocoding on the output grid"),
)


def _floats(text: str | None) -> tuple:
    return tuple(float(v) for v in (text or "").split())


def steering(image: Image, orbit) -> list[tops.Steering]:
    """The azimuth steering of every burst (one entry for a stripmap image), from the annotation:
    the Doppler centroid and FM rate estimates nearest to the burst centre, the azimuth
    steering rate and the orbit speed there."""
    try:
        root = ElementTree.parse(image.annotation).getroot()
    except (ElementTree.ParseError, OSError) as e:
        raise ServiceError(f"corrupt annotation {image.annotation.name}: {e}") from None
    epoch = np.datetime64(image.first_line_time, "ns")

    def secs(text):
        return float((np.datetime64(text, "ns") - epoch) / np.timedelta64(1, "s"))

    try:
        dcs = [(secs(e.findtext("azimuthTime")), float(e.findtext("t0")), _floats(e.findtext("dataDcPolynomial")))
               for e in root.findall("dopplerCentroid/dcEstimateList/dcEstimate")]
        fms = []
        for e in root.findall("generalAnnotation/azimuthFmRateList/azimuthFmRate"):
            poly = _floats(e.findtext("azimuthFmRatePolynomial")) or tuple(float(e.findtext(k)) for k in ("c0", "c1", "c2"))
            fms.append((secs(e.findtext("azimuthTime")), float(e.findtext("t0")), poly))
    except (TypeError, ValueError):
        raise ServiceError(f"corrupt annotation {image.annotation.name}: malformed Doppler centroid or "
                           f"azimuth FM rate estimates") from None
    if not dcs or not fms or not all(d[2] for d in dcs) or not all(f[2] for f in fms):
        raise ServiceError(f"annotation {image.annotation.name} has no Doppler centroid (dcEstimate) or azimuth "
                           f"FM rate (azimuthFmRate) estimates: they are needed to deramp the bursts")
    wavelength = tops.SPEED_OF_LIGHT / image.radar_frequency
    k_psi = np.radians(image.azimuth_steering_rate)
    dt, fs, tau0 = image.azimuth_time_interval, image.range_sampling_rate, image.slant_range_time
    tau_mid = tau0 + image.samples / 2 / fs
    if image.bursts:
        starts = [float((np.datetime64(b.azimuth_time, "ns") - epoch) / np.timedelta64(1, "s")) for b in image.bursts]
        lines = image.lines_per_burst
    else:
        starts, lines, k_psi = [0.0], image.lines, 0.0
    out = []
    for t0 in starts:
        mid = t0 + lines / 2 * dt
        dc = min(dcs, key=lambda d: abs(d[0] - mid))
        fm = min(fms, key=lambda f: abs(f[0] - mid))
        _, vel = orbit.state(np.array(mid))
        ks = 2 * float(np.linalg.norm(vel)) / wavelength * k_psi
        out.append(tops.Steering(t0, dt, lines, tau0, fs, tau_mid, dc[2], dc[1], fm[2], fm[1], ks))
    return out


class DemHeights:
    """Ellipsoidal heights of a DEM file (metres, + ``geoid`` metres) at lon/lat, bilinear, read
    once over the footprint; NaN where the DEM has no data. Stored values become metres by the
    band's unit (or its vertical CRS's), scale and offset; an int16 DEM without NoData value has
    its voids at -32768 (SRTM's convention), as in S1-GRD/SLC-preprocess."""

    def __init__(self, path: str, footprint_lonlat, geoid: float = 0.0):
        import rasterio
        from rasterio.warp import transform_bounds
        from rasterio.windows import from_bounds

        from components.common.readers import open_raster

        spec = geocoding.check_dem(path, footprint_lonlat)
        self.path = path
        lon0, lat0, lon1, lat1 = footprint_lonlat.bounds
        margin = 0.05
        with open_raster(path, f"DEM file {path}") as src:
            ds = src.dataset
            self.crs = ds.crs
            b = transform_bounds("EPSG:4326", ds.crs, lon0 - margin, lat0 - margin, lon1 + margin, lat1 + margin)
            win = from_bounds(*b, transform=ds.transform).round_offsets().round_lengths()
            win = win.intersection(rasterio.windows.Window(0, 0, ds.width, ds.height))
            data = src.read(1, window=win)
            self.transform = ds.window_transform(win)
        # voids, NaN or +-inf (a float DEM without NoData value): no height
        self.data = (spec.masked(data) + np.float32(geoid)).astype(np.float32)

    def __call__(self, lon, lat):
        from rasterio.warp import transform

        if self.crs.to_epsg() == 4326:
            x, y = lon, lat
        else:
            x, y = (np.asarray(v).reshape(lon.shape) for v in transform("EPSG:4326", self.crs, lon.ravel(), lat.ravel()))
        inv = ~self.transform
        col = inv.a * x + inv.b * y + inv.c - 0.5
        row = inv.d * x + inv.e * y + inv.f - 0.5
        return geocoding.sample_bilinear(self.data, row, col)


@dataclasses.dataclass
class _Nodes:
    rows: np.ndarray  # burst-local lines of the nodes
    cols: np.ndarray
    sec_line: np.ndarray  # secondary burst-local line of each node
    sec_col: np.ndarray
    d_range: np.ndarray  # R_secondary - R_reference, m
    burst2: int  # the secondary burst seeing this reference burst


class PairSwath:
    """One sub-swath of a pair: geometry, ESD and the co-registered, phase-corrected blocks."""

    def __init__(self, im1: Image, im2: Image, orbit1, orbit2, gcp1, plan1, heights=None,
                 shift=(0.0, 0.0), radiometry=None):
        self.im1, self.im2, self.orbit1, self.orbit2 = im1, im2, orbit1, orbit2
        self.gcp1, self.plan1 = gcp1, plan1
        self.heights = heights  # DemHeights or None (ellipsoid at the geolocation-grid heights)
        self.shift = shift  # constant (lines, samples) from the amplitude refinement
        self.radiometry = radiometry  # ((cal1, noise1), (cal2, noise2)) or None
        self.st1, self.st2 = steering(im1, orbit1), steering(im2, orbit2)
        self.wavelength = tops.SPEED_OF_LIGHT / im1.radar_frequency
        self.lpb1 = im1.lines_per_burst if im1.bursts else im1.lines
        self.lpb2 = im2.lines_per_burst if im2.bursts else im2.lines
        self.esd_correction = np.zeros(len(self.st1))
        self.esd_report: dict = {"overlaps": [], "burst_shift_lines": []}
        self._nodes: dict[int, _Nodes] = {}

    # -- geometry ----------------------------------------------------------------------------

    def nodes(self, k: int) -> _Nodes:
        if k in self._nodes:
            return self._nodes[k]
        st = self.st1[k]
        im1 = self.im1
        rows = np.unique(np.r_[np.arange(0, st.lines, NODE_LINES), st.lines - 1]).astype(np.float64)
        cols = np.unique(np.r_[np.arange(0, im1.samples, NODE_SAMPLES), im1.samples - 1]).astype(np.float64)
        t = st.t_first + rows[:, None] * st.interval + 0 * cols[None, :]
        rng = tops.SPEED_OF_LIGHT / 2 * (st.tau0 + cols[None, :] / st.fs) + 0 * t
        # start point and fallback heights: the geolocation grid (debursted rows)
        lon, lat, h = self.gcp1.forward((t - self.plan1.t_first) / self.plan1.interval, cols[None, :] + 0 * t)
        guess = geocoding.geodetic_to_ecef(lon, lat, h)
        p = tops.forward(self.orbit1.state, t, rng, h, guess)
        if self.heights is not None:
            for _ in range(DEM_ITERATIONS):
                lon, lat, _ = tops.ecef_to_geodetic(p)
                dem = self.heights(lon, lat)
                h_new = np.where(np.isfinite(dem), dem, h)
                p_new = tops.forward(self.orbit1.state, t, rng, h_new, p)
                moved = float(np.nanmax(np.linalg.norm(p_new - p, axis=-1)))
                p, h = p_new, h_new
                if moved < 0.01:
                    break
        t2_centre = self._secondary_time(p[p.shape[0] // 2, p.shape[1] // 2])
        t2, r2 = tops.zero_doppler(self.orbit2.state, p, t2_centre + (t - t[t.shape[0] // 2, 0]))
        m = int(np.argmin([abs(t2_centre - s.t_mid) for s in self.st2]))
        s2 = self.st2[m]
        sec_line = (t2 - s2.t_first) / s2.interval
        sec_col = (2 * r2 / tops.SPEED_OF_LIGHT - s2.tau0) * s2.fs
        node = _Nodes(rows, cols, sec_line, sec_col, r2 - rng, m)
        self._nodes[k] = node
        return node

    def _secondary_time(self, p) -> float:
        orb = self.orbit2
        t0 = float(np.clip((orb.t[0] + orb.t[-1]) / 2, orb.t[0], orb.t[-1]))
        t, _ = tops.zero_doppler(orb.state, p[None, :], np.array([t0]))
        return float(t[0])

    # -- one block ---------------------------------------------------------------------------

    def block(self, k: int, lines: np.ndarray, c0: int, c1: int, backscatter: bool = False):
        """Reference burst ``k`` at burst-local ``lines`` (consecutive) x samples c0:c1: the
        reference and the co-registered, phase-corrected secondary (complex, NaN = NoData),
        and the calibrated backscatters when asked (else None)."""
        im1, im2 = self.im1, self.im2
        n, w = lines.size, c1 - c0
        node = self.nodes(k)
        burst1 = im1.bursts[k] if im1.bursts else None
        ref = im1.read(k * self.lpb1 + int(lines[0]), c0, n, w).astype(np.complex128)
        cols = np.arange(c0, c1)
        valid1 = ref != 0
        if burst1 is not None:
            fv, lv = burst1.first_valid_sample[lines], burst1.last_valid_sample[lines]
            valid1 &= (fv[:, None] >= 0) & (cols[None, :] >= fv[:, None]) & (cols[None, :] <= lv[:, None])
        b1 = b2 = None
        if backscatter:
            b1 = self._backscatter(0, ref, valid1, k * self.lpb1 + lines, c0, c1)
        ref[~valid1] = np.nan
        sec_line = tops.node_interp(node.sec_line, node.rows, node.cols, lines, cols) \
            + self.shift[0] + self.esd_correction[k]
        sec_col = tops.node_interp(node.sec_col, node.rows, node.cols, lines, cols) + self.shift[1]
        m = node.burst2
        r_lo = max(0, int(np.floor(np.nanmin(sec_line))) - tops.TAPS)
        r_hi = min(self.lpb2, int(np.ceil(np.nanmax(sec_line))) + tops.TAPS + 1)
        q_lo = max(0, int(np.floor(np.nanmin(sec_col))) - tops.TAPS)
        q_hi = min(im2.samples, int(np.ceil(np.nanmax(sec_col))) + tops.TAPS + 1)
        nan = np.full((n, w), np.nan)
        if r_hi - r_lo < tops.TAPS or q_hi - q_lo < tops.TAPS:
            return ref, nan + 0j, b1, (nan if backscatter else None)
        raw = im2.read(m * self.lpb2 + r_lo, q_lo, r_hi - r_lo, q_hi - q_lo)
        src_lines = np.arange(r_lo, r_hi)
        src_cols = np.arange(q_lo, q_hi)
        valid2 = raw != 0
        if im2.bursts:
            b = im2.bursts[m]
            fv, lv = b.first_valid_sample[src_lines], b.last_valid_sample[src_lines]
            valid2 &= (fv[:, None] >= 0) & (src_cols[None, :] >= fv[:, None]) & (src_cols[None, :] <= lv[:, None])
        st2 = self.st2[m]
        deramped = raw * np.exp(-1j * tops.ramp_phase(st2, src_lines[:, None], src_cols[None, :])).astype(np.complex64)
        sec = tops.resample(deramped, sec_line - r_lo, sec_col - q_lo, valid2)
        d_range = tops.node_interp(node.d_range, node.rows, node.cols, lines, cols)
        sec *= np.exp(1j * (tops.ramp_phase(st2, sec_line, sec_col) + 4 * np.pi / self.wavelength * d_range))
        if backscatter:
            value = self._backscatter(1, raw, valid2, m * self.lpb2 + src_lines, q_lo, q_hi)
            b2 = geocoding.sample_bilinear(value, sec_line - r_lo, sec_col - q_lo)
        return ref, sec, b1, b2

    def _backscatter(self, which: int, data, valid, image_lines, c0, c1):
        cal, noise = self.radiometry[which]
        power = intensity(data)
        if noise is not None and not noise.empty:
            power = denoise(power, noise.rows(image_lines.astype(np.float64), c0, c1), valid)
        value = calibrate(power, cal.rows(image_lines.astype(np.float64), c0, c1))
        value[~valid] = np.nan
        return value

    # -- ESD ---------------------------------------------------------------------------------

    def _valid_lines(self, k: int) -> tuple[int, int]:
        if not self.im1.bursts:
            return 0, self.lpb1 - 1
        ok = np.flatnonzero(self.im1.bursts[k].first_valid_sample >= 0)
        return int(ok[0]), int(ok[-1])

    def estimate_esd(self) -> dict:
        """Estimate the azimuth shift in every burst overlap and set the per-burst correction."""
        estimates = []
        for k in range(len(self.st1) - 1):
            a, b = self.st1[k], self.st1[k + 1]
            v0k, v1k = self._valid_lines(k)
            v0n, v1n = self._valid_lines(k + 1)
            offset = int(round((a.t_first - b.t_first) / a.interval))  # burst k line -> burst k+1 line
            first = max(v0k, v0n - offset)
            last = min(v1k, v1n - offset)
            if last - first < 4:
                estimates.append(None)
                continue
            lines_k = np.arange(first, last + 1)
            lines_n = lines_k + offset
            ifg, freq = [], []
            for kk, ll in ((k, lines_k), (k + 1, lines_n)):
                ref, sec, _, _ = self.block(kk, ll, 0, self.im1.samples)
                ifg.append(ref * np.conj(sec))
                node = self.nodes(kk)
                cols = np.arange(self.im1.samples)
                sl = tops.node_interp(node.sec_line, node.rows, node.cols, ll, cols) + self.shift[0]
                sc = tops.node_interp(node.sec_col, node.rows, node.cols, ll, cols) + self.shift[1]
                freq.append(tops.doppler(self.st2[node.burst2], sl, sc))
            shift, quality = tops.esd_shift(ifg[0], ifg[1], freq[0] - freq[1], a.interval)
            ok = np.isfinite(shift) and quality >= ESD_MIN_QUALITY
            estimates.append(shift if ok else None)
            self.esd_report["overlaps"].append({"bursts": [k, k + 1], "shift_lines": round(shift, 5) if ok else None,
                                                "coherence": round(quality, 3)})
        corr = np.zeros(len(self.st1))
        for k in range(len(self.st1)):
            near = [e for e in (estimates[k - 1] if k > 0 else None, estimates[k] if k < len(estimates) else None)
                    if e is not None]
            corr[k] = float(np.mean(near)) if near else 0.0
        self.esd_correction = corr
        self.esd_report["burst_shift_lines"] = [round(float(c), 5) for c in corr]
        return self.esd_report

    # -- the debursted swath -----------------------------------------------------------------

    def owned(self, k: int, lo: int, hi: int):
        """Debursted rows [d0, d1) burst ``k`` owns within [lo, hi), and their burst-local lines."""
        src = self.plan1.source_line
        d = np.flatnonzero((src // self.lpb1 == k) if self.im1.bursts else np.ones(src.size, bool))
        d = d[(d >= lo) & (d < hi)]
        if d.size == 0:
            return None
        return int(d[0]), int(d[-1]) + 1, (src[d] - k * self.lpb1).astype(np.int64)

    def swath(self, window: tuple[int, int], lo: int = 0, hi: int | None = None, backscatter: bool = True):
        """Yield (d0, d1, coherence, b1, b2) for the debursted rows in [lo, hi), burst by burst."""
        hi = self.plan1.source_line.size if hi is None else hi
        halo_az, halo_rg = window[0] // 2 + 1, window[1] // 2 + 1
        samples = self.im1.samples
        for k in range(len(self.st1)):
            own = self.owned(k, lo, hi)
            if own is None:
                continue
            d0, d1, local = own
            v0, v1 = self._valid_lines(k)
            a0 = max(v0, int(local[0]) - halo_az)
            a1 = min(v1 + 1, int(local[-1]) + 1 + halo_az)
            lines = np.arange(a0, a1)
            keep = local - a0
            out = [np.full((d1 - d0, samples), np.nan, np.float32) if i == 0 or backscatter else None
                   for i in range(3)]
            for c0 in range(0, samples, CHUNK):
                c1 = min(samples, c0 + CHUNK)
                e0, e1 = max(0, c0 - halo_rg), min(samples, c1 + halo_rg)
                ref, sec, b1, b2 = self.block(k, lines, e0, e1, backscatter=backscatter)
                coh = kernels.coherence(ref, sec, window)
                for arr, val in zip(out, (coh, b1, b2)):
                    if arr is not None:
                        arr[:, c0:c1] = val[keep][:, c0 - e0:c1 - e0]
            yield d0, d1, out[0], out[1], out[2]


def full_coherence(pair: PairSwath, window=(10, 10)) -> np.ndarray:
    """The debursted full-resolution coherence of a sub-swath (for checks on small images)."""
    out = np.full((pair.plan1.source_line.size, pair.im1.samples), np.nan)
    for d0, d1, coh, _, _ in pair.swath(window, backscatter=False):
        out[d0:d1] = coh
    return out

