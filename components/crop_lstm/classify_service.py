"""tile_classifier: a trained crop-type LSTM applied to the monthly composites of a tile (seed
section 3.2.5), block by block, followed by morphological post-processing.

Pixels where the crop mask is 0 are classified (no mask: every pixel); other mask values, and
pixels without any observation in the composites, are NoData (255) in the map. Per block, only the
pixels to classify are read out and sent to the network, in batches of ``batch_pixels``; blocks are
read by background threads while the network runs. The network runs in ONNX Runtime on the CPU
(exported from the ``.h5`` model when the run starts) or in PyTorch on a CUDA GPU.

Output: ``<tile>_crop_map_<first month>_<last month>.tif``, a uint8 Cloud Optimized GeoTIFF of
class ids (Table 8) with the TimeSen2Crop legend as colour table, plus a STAC item, a coloured
quicklook and ``run.json`` (class areas, timings).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from components import __version__
from components.common import outputs, stac, storage
from components.common.contract import uninterrupted
from components.common.cpus import usable_cpus
from components.common.errors import InvalidParameter
from components.common.logs import Progress, Steps
from components.common.readers import open_raster
from components.timesen2crop.legend import COLOURS

from .composites import Composite, GridInfo, check_mask, find_composites, find_model_and_mask
from .h5io import ModelInfo, load_model
from .params import ClassifyParams
from .postprocess import majority, sieve

log = logging.getLogger(__name__)

SERVICE = "tile_classifier"
NODATA = 255
BAND = stac.Band("crop_type", "crop type, TimeSen2Crop legend", NODATA)
PREFETCH = 3  # blocks read ahead
GPU_BATCH = 262144  # pixels per batch on a GPU
READERS = 2  # reader threads
COG = {"COMPRESS": "DEFLATE", "LEVEL": "6", "BLOCKSIZE": "512", "OVERVIEWS": "AUTO", "RESAMPLING": "MODE",
       "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER"}
WORK_TIFF = {"driver": "GTiff", "dtype": "uint8", "count": 1, "nodata": NODATA, "tiled": True, "blockxsize": 256,
             "blockysize": 256, "BIGTIFF": "IF_SAFER"}


@dataclass
class ClassifyResult:
    """What a run wrote: the crop map (the product) and its sidecars."""

    crop_map: str
    stac: str
    quicklook: str
    run_record: str
    metrics: dict = field(default_factory=dict)
    class_areas: dict = field(default_factory=dict)


def run(input_dir: str, mc_dir: str, params: ClassifyParams, output_dir: str) -> ClassifyResult:
    with storage.output_folder(output_dir) as local_out:
        return _run(input_dir, mc_dir, params, output_dir, local_out)


# -- inference engines ---------------------------------------------------------------------


def choose_engine(engine: str, cuda_available: bool) -> tuple[str, str]:
    """(engine kind, device) for ``--engine``: ``auto`` is PyTorch on the GPU when CUDA is present,
    else ONNX Runtime on the CPU; ``torch`` runs on the GPU when present, else on the CPU."""
    if engine == "torch" or (engine == "auto" and cuda_available):
        return "torch", "cuda" if cuda_available else "cpu"
    return "onnxruntime", "cpu"


class Engine:
    """Class ids of pixel time series [n, timesteps, bands] float32.

    On the CPU the ONNX Runtime session runs single-threaded per call and several calls run at
    once on batches of ``batch_pixels`` (data parallelism: the small matrix products of an LSTM
    lose more to synchronisation inside one call than they gain, and small batches stay in the
    CPU caches). On a CUDA GPU, PyTorch runs the model on large batches.
    """

    def __init__(self, model, info: ModelInfo, params: ClassifyParams, workdir: Path):
        import torch

        self.class_ids = np.asarray(info.class_ids, np.uint8)
        self.batch = params.batch_pixels
        self.pool = None
        self.kind, device = choose_engine(params.engine, torch.cuda.is_available())
        threads = params.threads or usable_cpus()
        if self.kind == "torch":
            self.device = torch.device(device)
            self.model = model.to(self.device).eval()
            if self.device.type == "cpu":
                torch.set_num_threads(threads)
            else:
                self.batch = max(self.batch, GPU_BATCH)
            self.label = f"PyTorch on {self.device}"
        else:
            from .onnx_export import INPUT, OUTPUT, onnx_bytes, onnx_session

            self.session = onnx_session(onnx_bytes(model, info, workdir), threads=1)
            self.io = (INPUT, OUTPUT)
            if threads > 1:
                self.pool = ThreadPoolExecutor(threads, thread_name_prefix="onnx")
            self.label = f"ONNX Runtime on the CPU ({threads} parallel sessions)"

    def _onnx(self, px: np.ndarray, out: np.ndarray, i: int) -> None:
        inp, outp = self.io
        logits = self.session.run([outp], {inp: px[i:i + self.batch]})[0]
        out[i:i + self.batch] = self.class_ids[logits.argmax(1)]

    def __call__(self, px: np.ndarray) -> np.ndarray:
        out = np.empty(len(px), np.uint8)
        if self.kind == "torch":
            import torch

            with torch.no_grad():
                for i in range(0, len(px), self.batch):
                    xb = torch.from_numpy(px[i:i + self.batch]).to(self.device, non_blocking=True)
                    out[i:i + self.batch] = self.class_ids[self.model(xb).argmax(1).cpu().numpy()]
            return out
        starts = range(0, len(px), self.batch)
        if self.pool is None or len(starts) == 1:
            for i in starts:
                self._onnx(px, out, i)
        else:
            with uninterrupted():  # map starts the workers: all registered before a stop takes effect
                results = self.pool.map(lambda i: self._onnx(px, out, i), starts)
            for _ in results:
                pass
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


# -- block reading -------------------------------------------------------------------------


def windows(width: int, height: int, size: int) -> list[Window]:
    return [Window(c, r, min(size, width - c), min(size, height - r))
            for r in range(0, height, size) for c in range(0, width, size)]


class BlockReader:
    """Reads, per block, the time series of the pixels to classify. Thread-safe: each thread opens
    its own datasets."""

    def __init__(self, composites: list[Composite], mask: Path | None):
        self.composites, self.mask = composites, mask
        self._local = threading.local()
        self._opened: list = []
        self._lock = threading.Lock()

    def _datasets(self):
        ds = getattr(self._local, "ds", None)
        if ds is None:
            # reads of a damaged file end in one line naming it (components.common.readers)
            ds = ([open_raster(c.path, f"{c.path.name} in mc_dir") for c in self.composites],
                  open_raster(self.mask, f"mask {self.mask.name}") if self.mask else None)
            self._local.ds = ds
            with self._lock:
                self._opened.append(ds)
        return ds

    def read(self, win: Window) -> tuple[Window, np.ndarray | None, np.ndarray | None, int]:
        """(window, flat indexes of the pixels to classify, their series [n, T, F], masked-out count)."""
        comps, mask_ds = self._datasets()
        h, w = int(win.height), int(win.width)
        if mask_ds is not None:
            selected = mask_ds.read(1, window=win) == 0
            idx = np.flatnonzero(selected)
        else:
            idx = np.arange(h * w)
        masked = h * w - len(idx)
        if len(idx) == 0:
            return win, None, None, masked
        n_feat = len(self.composites[0].bands)
        px = np.empty((len(idx), len(comps), n_feat), np.float32)
        for t, (c, ds) in enumerate(zip(self.composites, comps)):
            data = ds.read(list(c.bands), window=win).reshape(n_feat, -1)
            # to the model's unit (reflectance x 10000) by the composite's scale tags, data type and values
            # (.units); NoData, NaN (float composites' usual NoData) or inf is no observation, as 0 is: 0
            px[:, t, :] = c.conversion.apply(data[:, idx]).T
        observed = px.reshape(len(idx), -1).any(axis=1)
        return win, idx[observed], np.ascontiguousarray(px[observed]), masked

    def close(self) -> None:
        for comps, mask_ds in self._opened:
            for ds in comps:
                ds.close()
            if mask_ds is not None:
                mask_ds.close()
        self._opened.clear()


def classify_blocks(reader: BlockReader, engine: Engine, grid: GridInfo, block: int, raw: Path,
                    wins: list[Window] | None = None) -> dict:
    """Classify every block (or the blocks ``wins``) into the uint8 GeoTIFF ``raw``; counts and timings."""
    wins = windows(grid.width, grid.height, block) if wins is None else wins
    progress = Progress(len(wins), "classify", log)
    counts = {"masked": 0, "no_observation": 0, "classified": 0}
    infer_s = 0.0
    profile = dict(WORK_TIFF, width=grid.width, height=grid.height, crs=grid.crs, transform=grid.transform)
    with rasterio.open(raw, "w", **profile) as out, ThreadPoolExecutor(READERS) as pool:
        with uninterrupted():  # the workers start here: all registered before a stop takes effect
            pending = collections.deque(pool.submit(reader.read, w) for w in wins[:PREFETCH])
        nxt = len(pending)
        while pending:
            win, idx, px, masked = pending.popleft().result()
            if nxt < len(wins):
                pending.append(pool.submit(reader.read, wins[nxt]))
                nxt += 1
            h, w = int(win.height), int(win.width)
            labels = np.full(h * w, NODATA, np.uint8)
            counts["masked"] += masked
            if idx is not None:
                t = time.perf_counter()
                labels[idx] = engine(px)
                infer_s += time.perf_counter() - t
                counts["classified"] += len(idx)
                counts["no_observation"] += h * w - masked - len(idx)
            out.write(labels.reshape(1, h, w), window=win)
            progress.advance()
    counts["inference_seconds"] = round(infer_s, 3)
    return counts


def _with_halo(ds, win: Window, halo: int) -> np.ndarray:
    """The block ``win`` of band 1 with ``halo`` pixels around it, NoData beyond the raster."""
    r0, c0 = int(win.row_off) - halo, int(win.col_off) - halo
    r1, c1 = int(win.row_off + win.height) + halo, int(win.col_off + win.width) + halo
    rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, ds.height), min(c1, ds.width)
    data = ds.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
    return np.pad(data, ((rr0 - r0, r1 - rr1), (cc0 - c0, c1 - cc1)), constant_values=NODATA)


def check_min_region(min_region_px: int, grid: GridInfo) -> None:
    """The sieve (GDAL's) merges a small region only into a neighbour of at least ``min_region_px``
    pixels: from the map's own size on nothing could ever merge, so such a value is refused rather
    than silently doing nothing."""
    pixels = grid.width * grid.height
    if min_region_px >= pixels:
        raise InvalidParameter("min_region_px", min_region_px, f"fewer than the map's {pixels} pixels "
                               f"({grid.size()}; 0 = off)")


def postprocess(raw: Path, dst: Path, params: ClassifyParams, grid: GridInfo) -> Path:
    """Majority filter (block-wise with a halo) then sieve (whole map) into ``dst``."""
    profile = dict(WORK_TIFF, width=grid.width, height=grid.height, crs=grid.crs, transform=grid.transform)
    src = raw
    if params.majority_size > 1:
        halo = params.majority_size // 2
        filtered = dst.with_name("majority.tif")
        with rasterio.open(raw) as ds, rasterio.open(filtered, "w", **profile) as out:
            for win in windows(grid.width, grid.height, params.block_size):
                smooth = majority(_with_halo(ds, win, halo), params.majority_size, NODATA)
                out.write(smooth[halo:-halo, halo:-halo][None], window=win)
        src = filtered
    with rasterio.open(src) as ds:
        labels = ds.read(1)
    if params.min_region_px > 1:
        labels = sieve(labels, params.min_region_px, int(params.connectivity), NODATA)
    profile.update(compress="deflate", photometric="palette")
    with rasterio.open(dst, "w", **profile) as out:
        out.write(labels, 1)
        out.write_colormap(1, {**{i: (0, 0, 0, 0) for i in range(256)},
                               **{c: (*rgb, 255) for c, rgb in COLOURS.items()}})
    return dst


# -- run -----------------------------------------------------------------------------------


def _run(input_dir: str, mc_dir: str, params: ClassifyParams, output_dir: str, local_out: Path | None) -> ClassifyResult:
    started = dt.datetime.now(dt.timezone.utc)
    steps = Steps(log)
    with outputs.work_folder(local_out, ".tcl-") as work:
        with steps.step("fetch and check inputs"):
            inputs = storage.fetch_input(input_dir, work / "input")
            model_path, mask = find_model_and_mask(inputs)
            model, info = load_model(model_path)
            comps_dir = storage.fetch_input(mc_dir, work / "mc")
            composites, grid, tile = find_composites(comps_dir, info, model_path.name)
            if mask is not None:
                check_mask(mask, grid)
            check_min_region(params.min_region_px, grid)
        log.info("model %s (%d classes, %d steps x %d bands); composites %s .. %s, %s; mask %s",
                 model_path.name, len(info.class_ids), len(info.timesteps), len(info.band_names),
                 composites[0].month, composites[-1].month, grid.size(), mask.name if mask else "none (every pixel)")
        with steps.step("prepare inference"):
            engine = Engine(model, info, params, work)
        log.info("inference: %s, batches of %d pixels", engine.label, engine.batch)
        raw = work / "raw.tif"
        reader = BlockReader(composites, mask)
        try:
            with steps.step("classify blocks"):
                counts = classify_blocks(reader, engine, grid, params.block_size, raw)
        finally:
            reader.close()
            engine.close()
        stage = work / "stage"
        stage.mkdir()
        stem = f"{tile + '_' if tile else ''}crop_map_{composites[0].month}_{composites[-1].month}"
        main = stage / f"{stem}.tif"
        with steps.step("post-process and write"):
            assembled = postprocess(raw, work / "assembled.tif", params, grid)
            outputs.describe_bands(assembled, [BAND])
            with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
                rasterio.shutil.copy(assembled, main, driver="COG", **COG)
            outputs.write_categories(main, _classes(info))  # GDAL's class names: the .aux.xml beside it
            areas = _class_areas(main, info)
        with steps.step("quicklook and STAC item"):
            ql = outputs.class_quicklook(main, stage / f"{stem}_quicklook.png", _classes(info))
            item = _stac(stem, main, composites, info, areas, ql, tile, [(mc_dir, "monthly composites"),
                                                                          (input_dir, f"model {model_path.name}")],
                         output_dir)
        total = grid.width * grid.height
        px_s = counts["classified"] / counts["inference_seconds"] if counts["inference_seconds"] else 0.0
        metrics = {"classified_percent": round(100.0 * counts["classified"] / total, 3),
                   "masked_percent": round(100.0 * counts["masked"] / total, 3),
                   "no_observation_percent": round(100.0 * counts["no_observation"] / total, 3),
                   "classified_pixels": counts["classified"], "inference_seconds": counts["inference_seconds"],
                   "pixels_per_second": round(px_s, 1), "engine": engine.label}
        record = outputs.run_record(
            SERVICE, __version__, params.as_dict(),
            [{"uri": input_dir, "model": model_path.name, "mask": mask.name if mask else None,
              "training": info.training},
             {"uri": mc_dir, "composites": {c.month: c.path.name for c in composites},
              "units": {c.month: c.conversion.note for c in composites}}],
            {"crop_map": main.name, "stac": f"{stem}.json", "quicklook": ql.name, "metrics": metrics,
             "class_areas": areas}, steps.timings, started)
        outputs.write_json(stage / "run.json", record)
        stac.write_item(item, stage / f"{stem}.json")  # last: it carries the size and checksum of run.json
        size_mb = main.stat().st_size / 1e6
        with steps.step("publish"):
            published = storage.publish(stage, output_dir, move=True)
    by_name = {Path(p).name: p for p in published}
    log.info("product %s: %dx%d px, classified %.1f %%, masked %.1f %%, %.0f px/s, %.1f MB, %.1f s",
             by_name[main.name], grid.width, grid.height, metrics["classified_percent"], metrics["masked_percent"],
             px_s, size_mb, steps.elapsed)
    return ClassifyResult(by_name[main.name], by_name[f"{stem}.json"], by_name[ql.name], by_name["run.json"],
                          metrics, areas)


def _class_areas(path: Path, info: ModelInfo) -> dict:
    counts = np.zeros(256, np.int64)
    with rasterio.open(path) as ds:
        for _, win in ds.block_windows(1):
            counts += np.bincount(ds.read(1, window=win).ravel(), minlength=256)
        pixel_ha = abs(ds.transform.a * ds.transform.e) / 1e4
    classified = counts[:NODATA].sum()
    names = dict(zip(info.class_ids, info.class_names))
    return {str(c): {"name": names.get(c, f"class {c}"), "pixels": int(counts[c]),
                     "hectares": round(float(counts[c] * pixel_ha), 2),
                     "percent": round(100.0 * counts[c] / classified, 3) if classified else 0.0}
            for c in info.class_ids}


def _classes(info: ModelInfo, areas: dict | None = None) -> list[stac.Class]:
    """The legend of the crop map (with each class's area once known): for the STAC item, GDAL's
    category names and the quicklook."""
    return [*[stac.Class(int(c), n, color=COLOURS.get(int(c), (128, 128, 128)),
                         count=areas[str(c)]["pixels"] if areas else None,
                         percentage=areas[str(c)]["percent"] if areas else None)
              for c, n in zip(info.class_ids, info.class_names)],
            stac.Class(NODATA, "no_data", "not classified: masked or no observation", nodata=True)]


def _stac(stem: str, main: Path, composites: list[Composite], info: ModelInfo, areas: dict, ql: Path,
          tile: str | None, sources: list[tuple[str, str]], output_dir: str):
    y0, m0 = map(int, composites[0].month.split("-"))
    y1, m1 = map(int, composites[-1].month.split("-"))
    start = dt.datetime(y0, m0, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(y1 + m1 // 12, m1 % 12 + 1, 1, tzinfo=dt.timezone.utc) - dt.timedelta(seconds=1)
    item = stac.raster_item(stem, main, main.name, start, [BAND],
                            start=start, end=end, properties={"gsd": 10, "class_areas": areas})
    stac.add_classes(item, _classes(info, areas))
    stac.add_sentinel2(item, tile=tile)
    stac.add_processing(item, lineage=f"{SERVICE}: LSTM classification of {len(composites)} monthly composites")
    stac.add_sidecars(item, ql.name)
    stac.add_links(item, stac.location(output_dir, f"{stem}.json"), sources)
    return item
