"""``osm-features``: the command line.

    osm-features --input FILE.osm.pbf|s3://... --features airport,port --AoI WKT|FILE --output DIR
    osm-features serve --input FILE.osm.pbf [--host 127.0.0.1] [--port 8000] ...
    osm-features classes [--dictionary FILE] [--json]

Every failure is one line on stderr and its exit status: 2 for a bad input, 3 when the machine
fails (disk full), 128 + signal when stopped (the contract of ``components.common.contract``).
"""

from __future__ import annotations

import json
import logging
import math
import sys

from components.common.cli import OneLineParser, run_cli
from components.common.contract import exit_status, run_guarded
from components.common.errors import InvalidParameter
from components.common.logs import setup_logging

from .params import OsmFeaturesParams

PROG = "osm-features"
INPUTS = [
    (("--input", "-i"), "OSM extract: .osm.pbf (or .osm, .osm.bz2) file, or s3://bucket/key of one"),
    (("--output", "--outdir", "--output_path", "-o"), "Output folder or s3://bucket/prefix"),
]
DESCRIPTION = ("Vector data of human features from OpenStreetMap: the features of the chosen classes "
               "in an area of interest, as RFC 7946 GeoJSON or GeoPackage. Sub-commands: "
               "'osm-features serve --help' (web service), 'osm-features classes' (the dictionary).")

# Defaults of the web service's limits.
DEFAULT_MAX_AOI_KM2 = 2500.0
DEFAULT_MAX_FEATURES = 50000


def _run(input_uri: str, output: str, params: OsmFeaturesParams):
    from .service import run  # imported late so that --help answers at once

    return run(input_uri, params, output)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        return serve_main(argv[1:])
    if argv and argv[0] == "classes":
        return classes_main(argv[1:])
    return run_cli(PROG, DESCRIPTION, OsmFeaturesParams, INPUTS, _run, argv)


def serve_parser() -> OneLineParser:
    import argparse

    p = OneLineParser(prog=f"{PROG} serve", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                      description="Web service: GET /feature-types, GET /features?types=...&aoi=WKT "
                      "(GeoJSON), and a map page at /. The extract is indexed once at start.")
    p.add_argument("--input", "-i", required=True, help=INPUTS[0][1])
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on")
    p.add_argument("--port", type=int, default=8000, help="Port to listen on")
    p.add_argument("--features", "--types", dest="features", default="all",
                   help="Classes or groups loaded and served (comma-separated)")
    p.add_argument("--dictionary", default=None, help="Data dictionary YAML (default: built-in)")
    p.add_argument("--max_aoi_km2", "--max-aoi-km2", dest="max_aoi_km2", type=float,
                   default=DEFAULT_MAX_AOI_KM2, help="Largest AoI area accepted (km², geodesic)")
    p.add_argument("--max_features", "--max-features", dest="max_features", type=int,
                   default=DEFAULT_MAX_FEATURES, help="Largest number of features in one answer")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def serve_main(argv: list[str]) -> int:
    args = serve_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    return exit_status(f"{PROG} serve", lambda: _serve(args))


def _serve(args) -> None:
    """Until SIGTERM or SIGINT: the server stops, then the contract reports the signal (status
    128 + signal, as a pod stopped by Kubernetes)."""
    _check_serve_arguments(args)
    from .web import Limits, serve

    serve(args.input, args.host, args.port, args.features.split(","), args.dictionary,
          Limits(args.max_aoi_km2, args.max_features))


def _check_serve_arguments(args) -> None:
    """Refuse what would otherwise fail late (after indexing) or with a traceback."""
    if not 0 <= args.port <= 65535:  # the socket layer raises OverflowError beyond
        raise InvalidParameter("port", args.port, "an integer from 0 to 65535 (0: any free port)")
    # NaN passes every comparison (no AoI would ever be too large), so test it explicitly
    if not math.isfinite(args.max_aoi_km2) or args.max_aoi_km2 <= 0:
        raise InvalidParameter("max_aoi_km2", args.max_aoi_km2, "a finite number > 0")
    if args.max_features < 1:
        raise InvalidParameter("max_features", args.max_features, "an integer >= 1")


def classes_main(argv: list[str]) -> int:
    import argparse

    p = OneLineParser(prog=f"{PROG} classes", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                      description="List the feature classes and groups of the data dictionary.")
    p.add_argument("--dictionary", default=None, help="Data dictionary YAML (default: built-in)")
    p.add_argument("--json", action="store_true", help="Print the full definitions as JSON")
    args = p.parse_args(argv)

    def load():
        from .dictionary import load_dictionary

        return load_dictionary(args.dictionary)

    status, d = run_guarded(f"{PROG} classes", load)
    if status:
        return status
    if args.json:
        print(json.dumps({"classes": d.describe(), "groups": d.groups}, indent=1))
        return 0
    width = max(len(n) for n in d.classes)
    for cls in d.classes.values():
        geometry = ",".join(g for g in ("point", "line", "polygon") if g in cls.geometry)
        print(f"{cls.name:<{width}}  {cls.category:<11} {geometry:<18} {cls.title}")
    print("groups: all, " + ", ".join(f"{g} ({len(v)})" for g, v in sorted(d.groups.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
