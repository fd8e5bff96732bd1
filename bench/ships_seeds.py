"""Ship figures over several seeds: runs of ``ships_eval.py`` (or re-scorings by
``ships_rescore.py``) that differ only in ``--seed``, summarised together.

One seed's rotation moves by several hundredths from the next (the networks' start, the
validation split and the draws all follow the seed), about as much as the levers tried, so a
claim about the settings is a claim about their mean over seeds. For each group of ports
(report, validation, all) this prints the mean over seeds of the mean object F1 and its spread
(each seed's mean, smallest, largest, sample standard deviation and the standard error of the
mean), how many seeds reach ``--target``, each port's mean over seeds and the port worst on
average, each seed's worst port, and the pooled counts of every seed and port together. It prints
one JSON object and asserts nothing.

    python bench/ships_seeds.py runs/s0.json runs/s1.json runs/s2.json   # saved outputs
    python bench/ships_eval.py --ports busan,durban,hedland --seeds 0-9   # trains and summarises
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GROUPS = ("report_ports", "validation_ports", "all_ports")
TARGET = 0.5  # the object F1 the issue asks of held-out ports


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outputs", nargs="+", help="JSON outputs of ships_eval.py or ships_rescore.py, one per seed")
    ap.add_argument("--target", type=float, default=TARGET, help="object F1 a seed's mean is counted against")
    args = ap.parse_args(argv)
    runs = []
    for name in args.outputs:
        try:
            runs.append(json.loads(Path(name).read_text()))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{name}: not a readable JSON output of ships_eval.py ({exc})")
    print(json.dumps({"outputs": args.outputs, "over_seeds": over_seeds(runs, args.target)}, indent=2))
    return 0


def parse_seeds(text: str) -> list[int]:
    """Seeds as ``0,1,2`` or ``0-4`` (or both: ``0-2,7``)."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        try:
            seeds += list(range(int(first), int(last) + 1)) if last else [int(first)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds {text!r}: give integers as 0,1,2 or 0-4") from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: give each seed once")
    return seeds


def over_seeds(runs: list[dict], target: float = TARGET) -> dict:
    """Each group's figures over ``runs`` (outputs with ``ports`` and ``summary``; see the module's
    doc). Runs must hold the same ports in each group."""
    from components.s2_patch_classifier.metrics import object_summary

    out = {"seeds": [r.get("settings", {}).get("seed") for r in runs]}
    for group in GROUPS:
        summaries = [r["summary"].get(group) for r in runs]
        if not any(summaries):
            out[group] = None
            continue
        ports = {tuple(s["ports"]) if s else () for s in summaries}
        if len(ports) > 1:
            raise SystemExit(f"the runs score different {group.replace('_', ' ')}: "
                             + " / ".join(",".join(p) or "none" for p in sorted(ports)))
        (ports,) = ports
        means = [s["mean_object_f1"] for s in summaries]
        port_means = {p: round(statistics.mean(r["ports"][p]["object_f1"] for r in runs), 4) for p in ports}
        worst = min(port_means, key=port_means.get)
        sd = statistics.stdev(means) if len(means) > 1 else None
        out[group] = {
            "ports": list(ports), "runs": len(runs),
            "mean_object_f1": round(statistics.mean(means), 4),
            "per_seed": means, "min": min(means), "max": max(means),
            "sd": None if sd is None else round(sd, 4),
            "standard_error": None if sd is None else round(sd / math.sqrt(len(means)), 4),
            f"seeds_at_or_above_{target}": sum(m >= target for m in means),
            "port_means": port_means, "worst_port": worst, "worst_port_mean_object_f1": port_means[worst],
            "worst_port_per_seed": [[s["worst_port"], s["worst_object_f1"]] for s in summaries],
            "pooled": object_summary([r["ports"][p]["counts"] for r in runs for p in ports]),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
