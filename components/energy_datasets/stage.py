"""``energy-datasets stage``: put one catalogue dataset in a local folder or an ``s3://`` prefix.

* ``http`` datasets are downloaded file by file into a work folder that survives failed runs:
  an interrupted transfer resumes where it stopped (HTTP ``Range``, guarded by ``If-Range`` so
  a file changed on the server is fetched afresh; a server that ignores ranges sends it whole
  again). Each file is checked against the catalogue's checksum (SHA-256 or MD5) and size; a
  mismatch removes the download and fails. Only complete, verified files are published.
* ``cds`` datasets (ERA5) are not downloaded: the run writes ``cds_request.json`` (one CDS API
  request per month of the period, area from the AoI) and ``retrieve_era5.py``, which runs them
  with the official ``cdsapi`` client and the user's own CDS key.
* ``portal`` datasets need a registration: the run fails with the portal's address unless the
  catalogue in use gives a direct URL.

Every run writes ``<dest>/<dataset>/manifest.json``: the dataset's source, licence, format,
access, and per file its URL, size and SHA-256.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from components import __version__
from components.common import outputs, storage
from components.common.aoi import EPSG_4326, load_aoi
from components.common.errors import InvalidParameter, ServiceError, from_os_error
from components.common.redaction import redact

from .catalogue import CDS_VARIABLE, MANIFEST, Dataset, RemoteFile, load_catalogue
from .params import StageParams

log = logging.getLogger(__name__)

SERVICE = "energy-datasets"
CACHE_ENV = "ENERGY_DATASETS_CACHE"
ERA5_GRID_DEGREES = 0.25
_CHUNK = 1 << 20
_PROGRESS_EVERY_S = 10.0
_BACKOFF_S = (0.2, 1.0, 3.0, 10.0)
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")

RETRIEVE_SCRIPT = '''"""Retrieve the ERA5 files described in cds_request.json with the CDS API client.

    pip install "cdsapi>=0.7.2"
    # ~/.cdsapirc:  url: https://cds.climate.copernicus.eu/api
    #               key: <your personal access token>
    # accept the dataset's licence once on its CDS page, then:
    python retrieve_era5.py [output folder]
"""

import json
import pathlib
import sys

import cdsapi

here = pathlib.Path(__file__).resolve().parent
spec = json.loads((here / "cds_request.json").read_text())
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else here
out.mkdir(parents=True, exist_ok=True)
client = cdsapi.Client(url=spec["api_url"])
for item in spec["requests"]:
    target = out / item["target"]
    if target.exists():
        print("already there:", target)
        continue
    client.retrieve(spec["dataset"], item["request"], str(target))
'''


@dataclass
class StageResult:
    """What a run wrote: the dataset's folder and its manifest; ``files`` every file staged."""

    folder: str
    manifest: str
    files: list[str] = field(default_factory=list)


def stage(name: str, dest: str, params: StageParams) -> StageResult:
    """Stage the dataset ``name`` of the catalogue into ``dest/<name>/``."""
    catalogue = load_catalogue(params.catalogue)
    dataset = catalogue.get(name)
    if dataset.access == "portal" and not dataset.files:
        raise ServiceError(f"{name} is distributed through {dataset.homepage} after registration "
                           f"({dataset.licence}): download it there, or give a catalogue with a "
                           "direct URL for it (--catalogue or ENERGY_DATASETS_CATALOGUE)")
    cds = _cds_requests(dataset, params) if dataset.access == "cds" else None
    if cds is None and any(v for v in (params.start, params.end, params.aoi, params.variables)):
        raise ServiceError(f"start, end, aoi and variables apply to ERA5 (access cds) only; "
                           f"{name} is staged whole")
    storage.check_writable(dest)
    target = _join(dest, name)
    local_root = None if storage.is_s3(dest) else Path(dest)
    created = local_root is not None and not local_root.exists()
    started = dt.datetime.now(dt.timezone.utc)
    try:
        if local_root is not None:
            try:
                local_root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise from_os_error(exc, f"cannot create output folder {dest}") from None
        with outputs.work_folder(local_root, ".energy-") as tmp:
            stage_dir = tmp / name
            stage_dir.mkdir()
            if cds is not None:
                entries = _write_cds(cds, stage_dir)
            else:
                entries = _download_all(dataset, params, stage_dir, target if local_root else None)
            manifest = {
                "service": SERVICE, "version": __version__, "dataset": dataset.describe(),
                "catalogue": catalogue.source, "staged": started.isoformat(),
                "finished": dt.datetime.now(dt.timezone.utc).isoformat(), "files": entries,
                "params": params.as_dict()}
            outputs.write_json(stage_dir / MANIFEST, manifest)
            published = storage.publish(stage_dir, target, move=True)
    except BaseException:
        if created and local_root.exists() and not any(local_root.iterdir()):
            local_root.rmdir()
        raise
    manifest_uri = next(p for p in published if p.endswith(MANIFEST))
    files = [_join(target, e["name"]) for e in entries]
    log.info("%s staged in %s: %d file(s), %.1f MB", name, target, len(files),
             sum(e.get("bytes") or 0 for e in entries) / 1e6)
    return StageResult(target, manifest_uri, files)


def run(dataset: str, params: StageParams, output_path: str) -> StageResult:
    """:func:`stage` in the argument order of the other services (inputs, parameters, output)."""
    return stage(dataset, output_path, params)

def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}" if storage.is_s3(base) else str(Path(base) / name)


def workdir_for(params: StageParams) -> Path:
    chosen = params.workdir or os.environ.get(CACHE_ENV)
    return Path(chosen) if chosen else Path.home() / ".cache" / "energy-datasets"


# --------------------------------------------------------------------------------------------
# HTTP


def _download_all(dataset: Dataset, params: StageParams, stage_dir: Path, local_target: str | None) -> list[dict]:
    work = workdir_for(params) / dataset.name
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the work folder {work}: {exc.strerror or exc}") from None
    entries = []
    for remote in dataset.files:
        existing = Path(local_target) / remote.name if local_target else None
        if existing is not None and remote.checksum and existing.is_file() and \
                _digest(existing, remote.checksum[0]) == remote.checksum[1]:
            log.info("%s: already staged and verified (%s)", remote.name, remote.checksum[0])
            entries.append(_entry(remote, existing, resumed_from=0, reused=True))
            continue
        part = work / f"{remote.name}.part"
        resumed_from = download(remote.url, part, params.retries, params.timeout_s)
        _verify(remote, part)
        final = stage_dir / remote.name
        shutil.move(str(part), final)
        _state_path(part).unlink(missing_ok=True)
        entries.append(_entry(remote, final, resumed_from))
    return entries


def _entry(remote: RemoteFile, path: Path, resumed_from: int, reused: bool = False) -> dict:
    return {"name": remote.name, "url": redact(remote.url), "bytes": path.stat().st_size,
            "sha256": _digest(path, "sha256"), "verified": remote.checksum[0] if remote.checksum else None,
            "resumed_from_byte": resumed_from, "already_staged": reused}


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _verify(remote: RemoteFile, part: Path) -> None:
    size = part.stat().st_size
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"size mismatch for {remote.name}: expected {remote.size} bytes, got {size}"
    elif remote.checksum:
        algorithm, expected = remote.checksum
        got = _digest(part, algorithm)
        if got != expected:
            problem = f"checksum mismatch for {remote.name}: expected {algorithm} {expected}, got {got}"
    if problem:
        part.unlink(missing_ok=True)
        _state_path(part).unlink(missing_ok=True)
        raise ServiceError(f"{problem} (download removed; run again to fetch it afresh, or check "
                           f"the catalogue entry)")


def _state_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


class _Incomplete(Exception):
    pass


def download(url: str, part: Path, retries: int, timeout_s: float) -> int:
    """Download ``url`` into ``part``, resuming what a previous attempt left there; returns the
    byte offset the first attempt of this call resumed from."""
    import httpx

    url, auth = _credentials_apart(url)  # from here on, the URL can be logged and printed
    state_file = _state_path(part)
    state = {}
    if part.exists():
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(state_file.read_text())
        if state.get("url") != url:
            log.info("%s: partial download of another URL; starting afresh", part.name)
            part.unlink()
            state = {}
    first_offset = part.stat().st_size if part.exists() else 0
    timeout = httpx.Timeout(timeout_s)
    last_error = ""
    # identity encoding: range offsets then count bytes of the file itself
    headers = {"User-Agent": f"{SERVICE}/{__version__}", "Accept-Encoding": "identity"}
    with httpx.Client(timeout=timeout, follow_redirects=True, headers=headers, auth=auth) as client:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(_BACKOFF_S[min(attempt - 1, len(_BACKOFF_S) - 1)])
            try:
                _attempt(client, url, part, state, state_file)
                return first_offset
            except (httpx.TransportError, _Incomplete) as exc:
                last_error = " ".join(str(exc).split()) or type(exc).__name__
                have = part.stat().st_size if part.exists() else 0
                log.warning("%s: attempt %d of %d stopped at %d bytes: %s", part.name, attempt + 1,
                            retries + 1, have, last_error)
            except _Retryable as exc:
                last_error = str(exc)
                log.warning("%s: attempt %d of %d: %s", part.name, attempt + 1, retries + 1, last_error)
    have = part.stat().st_size if part.exists() else 0
    raise ServiceError(f"download of {url} interrupted after {retries + 1} attempt(s) at {have} bytes "
                       f"({last_error}); run the same command again to resume")


def _credentials_apart(url: str):
    """``url`` without ``user:password@`` and those as basic auth: httpx logs the URL of every
    request, and a password must not reach the log."""
    import httpx

    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, None
    return str(parsed.copy_with(userinfo=b"")), httpx.BasicAuth(parsed.username, parsed.password)


class _Retryable(Exception):
    pass


def _attempt(client, url: str, part: Path, state: dict, state_file: Path) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = state.get("etag") or state.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    with client.stream("GET", url, headers=headers) as r:
        if r.status_code == 416 and have:
            total = _total_from_content_range(r.headers.get("content-range", ""))
            if total == have:
                log.info("%s: already complete (%d bytes)", part.name, have)
                return
            log.info("%s: the server refused the range; starting afresh", part.name)
            part.unlink()
            raise _Retryable("range not satisfiable; restarting")
        if r.status_code >= 500 or r.status_code == 429:
            raise _Retryable(f"HTTP {r.status_code} {r.reason_phrase} from {url}")
        if r.status_code >= 400:
            raise ServiceError(f"HTTP {r.status_code} {r.reason_phrase} for {url}")
        if r.status_code == 206:
            m = _CONTENT_RANGE.match(r.headers.get("content-range", ""))
            if not m or m.group(1) is None or int(m.group(1)) != have:
                part.unlink(missing_ok=True)
                raise _Retryable("the server answered another range than asked; restarting")
            mode, offset = "ab", have
            if have:
                log.info("%s: resuming at byte %d", part.name, have)
        else:  # 200: the whole file (server without ranges, or the file changed)
            if have:
                log.info("%s: the server sent the whole file; starting afresh", part.name)
            mode, offset = "wb", 0
        state.clear()
        state.update({"url": url, "etag": r.headers.get("etag"), "last_modified": r.headers.get("last-modified")})
        state_file.write_text(json.dumps(state))
        length = r.headers.get("content-length")
        expected = offset + int(length) if length and length.isdigit() else None
        written, t0 = offset, time.monotonic()
        last = t0
        with open(part, mode) as out:
            for chunk in r.iter_bytes():  # as received: an interrupted body keeps what came
                out.write(chunk)
                written += len(chunk)
                now = time.monotonic()
                if now - last >= _PROGRESS_EVERY_S:
                    last = now
                    total = f" of {expected / 1e6:.1f} MB" if expected else ""
                    log.info("  %s: %.1f MB%s", part.name, written / 1e6, total)
        if expected is not None and written != expected:
            raise _Incomplete(f"got {written} of {expected} bytes")


def _total_from_content_range(value: str) -> int | None:
    m = _CONTENT_RANGE.match(value.strip())
    if not m or m.group(3) == "*":
        return None
    return int(m.group(3))


# --------------------------------------------------------------------------------------------
# CDS (ERA5)


def _date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidParameter(name, value, "a date YYYY-MM-DD") from None


def _cds_requests(dataset: Dataset, params: StageParams) -> dict:
    today = dt.datetime.now(dt.timezone.utc).date()
    first = _date(str(dataset.cds.get("first_date", "1940-01-01")), "first_date")
    if params.start:
        start = _date(params.start, "start")
    else:
        last_month_end = today.replace(day=1) - dt.timedelta(days=1)
        start = last_month_end.replace(day=1)
    if params.end:
        end = _date(params.end, "end")
    else:
        end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
    if start < first:
        raise InvalidParameter("start", params.start, f"a date from {first.isoformat()} (the start of "
                               f"{dataset.cds['dataset']})")
    if end < start:
        raise InvalidParameter("end", params.end, f"a date on or after start {start.isoformat()}")
    if end >= today:
        raise InvalidParameter("end", params.end or end.isoformat(), f"a date before today "
                               f"({today.isoformat()}): ERA5 is published with a delay of about 5 days")
    base = dict(dataset.cds["request"])
    variables = list(params.variables) or list(base.get("variable") or [])
    if not variables:
        raise InvalidParameter("variables", "", "at least one CDS variable name")
    bad = [v for v in variables if not CDS_VARIABLE.fullmatch(v)]
    if bad:
        raise InvalidParameter("variables", bad[0], "CDS variable names (lower case, digits and "
                               "underscores, e.g. 100m_u_component_of_wind)")
    area = _area(params.aoi) if params.aoi else None
    suffix = "nc" if params.data_format == "netcdf" else "grib"
    requests = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        days_in_month = calendar.monthrange(year, month)[1]
        first_day = start.day if (year, month) == (start.year, start.month) else 1
        last_day = end.day if (year, month) == (end.year, end.month) else days_in_month
        request = {**base, "variable": variables, "year": [f"{year:04d}"], "month": [f"{month:02d}"],
                   "day": [f"{d:02d}" for d in range(first_day, last_day + 1)],
                   "data_format": params.data_format}
        if area is not None:
            request["area"] = area
        requests.append({"target": f"era5_{year:04d}{month:02d}.{suffix}", "request": request})
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return {"api_url": dataset.cds.get("api_url", "https://cds.climate.copernicus.eu/api"),
            "dataset": dataset.cds["dataset"], "period": [start.isoformat(), end.isoformat()],
            "area_nwse": area, "licence": dataset.licence, "attribution": dataset.attribution,
            "requests": requests}


def _area(aoi_value: str) -> list[float]:
    """CDS ``area`` [north, west, south, east] of the AoI's bounds, snapped outwards to the
    ERA5 grid."""
    minx, miny, maxx, maxy = load_aoi(aoi_value).bounds_in(EPSG_4326)
    g = ERA5_GRID_DEGREES
    north = min(90.0, math.ceil(maxy / g) * g)
    south = max(-90.0, math.floor(miny / g) * g)
    west = max(-180.0, math.floor(minx / g) * g)
    east = min(180.0, math.ceil(maxx / g) * g)
    return [north, west, south, east]


def _write_cds(cds: dict, stage_dir: Path) -> list[dict]:
    request_file = stage_dir / "cds_request.json"
    outputs.write_json(request_file, cds)
    script = stage_dir / "retrieve_era5.py"
    script.write_text(RETRIEVE_SCRIPT)
    log.info("ERA5: %d CDS request(s) for %s to %s written (%s)", len(cds["requests"]), *cds["period"],
             cds["dataset"])
    return [{"name": p.name, "url": None, "bytes": p.stat().st_size, "sha256": _digest(p, "sha256"),
             "verified": None, "resumed_from_byte": 0, "already_staged": False}
            for p in (request_file, script)]
