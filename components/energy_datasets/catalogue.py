"""The catalogue of energy datasets (``catalogue.yaml``, documented there): loading and
validation. Another catalogue file replaces the built-in one through ``--catalogue FILE`` or
the environment variable ``ENERGY_DATASETS_CATALOGUE`` (tests point it at a loopback server)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from components.common.errors import InvalidParameter, ServiceError
from components.common.redaction import redact

BUILTIN = Path(__file__).with_name("catalogue.yaml")
ENV = "ENERGY_DATASETS_CATALOGUE"
ACCESS = ("http", "cds", "portal")
REQUIRED = ("title", "source", "homepage", "licence", "format", "access")
OPTIONAL = ("description", "attribution", "files", "cds")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_HEX = {"sha256": 64, "md5": 32}
MANIFEST = "manifest.json"  # written by every run next to the dataset's files
CDS_VARIABLE = re.compile(r"[a-z0-9_]+")  # used with fullmatch


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    checksum: tuple[str, str] | None = None  # (algorithm, hex digest)
    size: int | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    source: str
    homepage: str
    licence: str
    format: str
    access: str
    description: str = ""
    attribution: str = ""
    files: tuple[RemoteFile, ...] = ()
    cds: dict = field(default_factory=dict)

    def describe(self) -> dict:
        out = {"name": self.name, "title": self.title, "description": self.description,
               "source": self.source, "homepage": self.homepage, "licence": self.licence,
               "attribution": self.attribution, "format": self.format, "access": self.access}
        if self.files:
            # a user:password@ in a URL is for the download only: never listed nor in a manifest
            out["files"] = [{"name": f.name, "url": redact(f.url),
                             **({f.checksum[0]: f.checksum[1]} if f.checksum else {}),
                             **({"size": f.size} if f.size is not None else {})} for f in self.files]
        if self.cds:
            out["cds"] = {"dataset": self.cds["dataset"], "api_url": self.cds.get("api_url")}
        return out


@dataclass(frozen=True)
class Catalogue:
    source: str
    datasets: dict[str, Dataset]

    def get(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise InvalidParameter("name", name, "one of " + ", ".join(self.datasets))
        return self.datasets[name]


def catalogue_path(explicit: str | None = None) -> Path:
    """The catalogue in use: ``explicit``, else $ENERGY_DATASETS_CATALOGUE, else the built-in."""
    chosen = explicit or os.environ.get(ENV) or None
    return Path(chosen) if chosen else BUILTIN


def load_catalogue(explicit: str | None = None) -> Catalogue:
    path = catalogue_path(explicit)
    where = f"catalogue {path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServiceError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceError(f"{where} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ServiceError(f"{where} is not valid YAML{at}: "
                           f"{' '.join(str(getattr(exc, 'problem', None) or exc).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict) or not data["datasets"]:
        raise ServiceError(f"{where}: a mapping 'datasets' of name -> definition is required")
    if data.get("version", 1) != 1:
        raise ServiceError(f"{where}: version {data.get('version')!r} is not supported (allowed: 1)")
    datasets = {}
    for name, spec in data["datasets"].items():
        datasets[name] = _dataset(name, spec, where)
    return Catalogue(str(path), datasets)


def _dataset(name, spec, where: str) -> Dataset:
    at = f"{where}: datasets.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ServiceError(f"{at}: not a valid name (lower-case letters, digits, '-', '_', '.')")
    if not isinstance(spec, dict):
        raise ServiceError(f"{at}: a mapping is required")
    for key in spec:
        if key not in REQUIRED + OPTIONAL:
            raise ServiceError(f"{at}: unknown key {key!r} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    for key in REQUIRED:
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            raise ServiceError(f"{at}.{key}: a non-empty text is required")
    access = spec["access"]
    if access not in ACCESS:
        raise ServiceError(f"{at}.access: {access!r} is not allowed (allowed: {', '.join(ACCESS)})")
    files = tuple(_file(f, f"{at}.files[{i}]") for i, f in enumerate(spec.get("files") or []))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ServiceError(f"{at}.files: two files have the same name")
    if access == "http" and not files:
        raise ServiceError(f"{at}.files: an http dataset needs at least one file")
    cds = spec.get("cds") or {}
    if access == "cds":
        if not isinstance(cds, dict) or not isinstance(cds.get("dataset"), str) \
                or not isinstance(cds.get("request"), dict):
            raise ServiceError(f"{at}.cds: a mapping with 'dataset' (text) and 'request' (mapping) "
                               "is required")
        cds = {**cds, "request": _cds_request(cds["request"], f"{at}.cds.request")}
    return Dataset(name, spec["title"].strip(), spec["source"].strip(), spec["homepage"].strip(),
                   spec["licence"].strip(), spec["format"].strip(), access,
                   str(spec.get("description") or "").strip(), str(spec.get("attribution") or "").strip(),
                   files, dict(cds))


def _cds_request(request: dict, at: str) -> dict:
    """The CDS API request of a ``cds`` dataset, its fields checked here so that a wrong type
    is reported against the catalogue, not met while the request is built; a single
    ``variable`` text becomes a list (as the CDS accepts it)."""
    out = {}
    for key, value in request.items():
        if not isinstance(key, str) or not key.strip():
            raise ServiceError(f"{at}: field name {key!r} is not a text")
        if key == "variable":
            out[key] = _cds_variables(value, f"{at}.variable")
        elif _is_cds_value(value) or (isinstance(value, list) and value and all(map(_is_cds_value, value))):
            out[key] = value
        else:
            raise ServiceError(f"{at}.{key}: {value!r} is not allowed (allowed: a text, a number or "
                               "a non-empty list of them)")
    return out


def _cds_variables(value, at: str) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or \
            not all(isinstance(v, str) and CDS_VARIABLE.fullmatch(v) for v in names):
        raise ServiceError(f"{at}: {value!r} is not allowed (allowed: a CDS variable name or a "
                           "non-empty list of them: lower case, digits and underscores, e.g. "
                           "2m_temperature)")
    return list(names)


def _is_cds_value(value) -> bool:
    # bool is an int in Python, but true/false is no CDS keyword value
    return isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and math.isfinite(value))


def _file(spec, at: str) -> RemoteFile:
    if not isinstance(spec, dict):
        raise ServiceError(f"{at}: a mapping with name and url is required")
    unknown = set(spec) - {"name", "url", "sha256", "md5", "size"}
    if unknown:
        raise ServiceError(f"{at}: unknown key {sorted(unknown)[0]!r} (allowed: name, url, sha256, md5, size)")
    name, url = spec.get("name"), spec.get("url")
    if not isinstance(name, str) or not _FILE_NAME.match(name):
        raise ServiceError(f"{at}.name: {name!r} is not a plain file name")
    if name.lower() == MANIFEST:  # lower(): on a case-insensitive disk Manifest.json is the same file
        raise ServiceError(f"{at}.name: {name!r} is reserved for the manifest every run writes "
                           "(give the file another name)")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ServiceError(f"{at}.url: {url!r} is not an http(s) URL")
    checksum = None
    for algorithm, length in _HEX.items():
        value = spec.get(algorithm)
        if value is None:
            continue
        if checksum is not None:
            raise ServiceError(f"{at}: give one checksum (sha256 or md5), not both")
        if not isinstance(value, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value):
            raise ServiceError(f"{at}.{algorithm}: {value!r} is not a {length}-digit hex digest")
        checksum = (algorithm, value.lower())
    size = spec.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ServiceError(f"{at}.size: {size!r} is not a number of bytes")
    return RemoteFile(name, url, checksum, size)
