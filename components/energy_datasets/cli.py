"""``energy-datasets``: the catalogue of the energy domain's datasets (seed D5.2 section 4.2,
Table 11) and their staging.

    energy-datasets list [--catalogue FILE] [--json]
    energy-datasets stage NAME --to DEST [--catalogue FILE] [--start ... --end ... --AoI ...]

Every failure is one line on stderr and its exit status: 2 for a bad input, 3 when the machine
fails (disk full), 128 + signal when stopped (the contract of ``components.common.contract``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from components.common.cli import OneLineParser, build_parser
from components.common.contract import run_guarded
from components.common.logs import setup_logging

from .params import StageParams

PROG = "energy-datasets"
USAGE = f"""usage: {PROG} {{list,stage}} ...

The labelled datasets of the energy domain (ERA5, EMODnet offshore wind farms, JRC Open Power
Plants Database, Hywind Scotland operational data): their source, licence, format and access.

sub-commands:
  list                 show the catalogue ({PROG} list --help)
  stage NAME --to DEST download one dataset (resume, checksum) to a folder or s3://bucket/prefix,
                       or write the CDS request for ERA5 ({PROG} stage --help)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "list":
        return list_main(rest)
    if command == "stage":
        return stage_main(rest)
    sys.stderr.write(f"{PROG}: error: unknown sub-command {command!r} (allowed: list, stage)\n")
    return 2


def list_main(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{PROG} list", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                      description="Show the datasets of the catalogue with source, licence, format "
                      "and access method.")
    p.add_argument("--catalogue", default=None, help="Catalogue YAML replacing the built-in one (also: "
                   "environment variable ENERGY_DATASETS_CATALOGUE)")
    p.add_argument("--json", action="store_true", help="Print the catalogue as JSON")
    args = p.parse_args(argv)

    def load():
        from .catalogue import load_catalogue

        return load_catalogue(args.catalogue)

    status, catalogue = run_guarded(f"{PROG} list", load)
    if status:
        return status
    if args.json:
        print(json.dumps({"catalogue": catalogue.source,
                          "datasets": [d.describe() for d in catalogue.datasets.values()]}, indent=1))
        return 0
    for d in catalogue.datasets.values():
        if d.access == "cds":
            how = f"cds: {d.cds['dataset']} through the CDS API (stage writes the request)"
        elif d.access == "http":
            how = f"http: {len(d.files)} file(s), " + (
                "checksummed" if all(f.checksum for f in d.files) else "SHA-256 recorded at staging")
        else:
            how = "portal: registration required" + (f", {len(d.files)} direct file(s)" if d.files else "")
        print(f"{d.name}: {d.title}\n  source:   {d.source}\n  licence:  {d.licence}\n"
              f"  format:   {d.format}\n  access:   {how}\n  homepage: {d.homepage}")
    return 0


def stage_parser() -> argparse.ArgumentParser:
    parser = build_parser(f"{PROG} stage", "Stage one dataset of the catalogue into DEST/NAME/ (a "
                          "folder or s3://bucket/prefix) with a manifest.json: downloads resume where "
                          "they stopped (HTTP Range) and are checked against the catalogue's checksum; "
                          "for ERA5 the CDS API request is written instead.", StageParams,
                          [(("--to", "--output", "-o"), "Destination folder or s3://bucket/prefix")])
    parser.add_argument("name", help="Dataset name (energy-datasets list)")
    return parser


def stage_main(argv: list[str]) -> int:
    args = vars(stage_parser().parse_args(argv))
    setup_logging(logging.DEBUG if args.pop("verbose") else logging.INFO)
    name, dest = args.pop("name"), args.pop("to")

    def body():
        from .stage import stage

        return stage(name, dest, StageParams.from_strings(args))

    status, result = run_guarded(f"{PROG} stage", body)
    if status:
        return status
    print(f"folder: {result.folder}")
    print(f"manifest: {result.manifest}")
    for f in result.files:
        print(f"file: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
