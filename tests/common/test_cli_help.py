"""Every command's --help lists each declared parameter with its default, and the seed's defaults
where the seed tables give them (D5.2 Tables 2-10)."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import pytest

from components.common.ai4eu import SERVICES

# the commands whose flags are generated from their parameter declaration (components.common.cli)
COMMANDS = ("S2-preprocess", "S2-CD", "S1-GRD-preprocess", "S1-SLC-preprocess", "S1-CD", "osm-features",
            "s2-patch-classifier", "timesen2crop", "monthlycomposite", "train_lstm", "tile_classifier")
SEED_DEFAULTS = {
    "train_lstm": {"n_epochs": "50", "batch_size": "32", "class_weights": "0", "learning_rate": "0.001",
                   "val": "None"},
    "monthlycomposite": {"season_start": "2017"},
    "timesen2crop": {"season_start": "2017", "temporal": "monthly"},
    "S2-preprocess": {"resolution": "10.0", "bands": "B2,B3,B4,B8", "cloudmask": "None", "landseamask": "None"},
}


def _help(command: str, capsys) -> str:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == command]
    with pytest.raises(SystemExit) as exit_info:
        script.load()(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _options(help_text: str) -> dict[str, str]:
    """Flag -> its whole help entry on one line."""
    entries: list[list[str]] = []
    for line in help_text.split("options:", 1)[1].splitlines():
        if re.match(r"^  -", line):
            entries.append([line])
        elif entries and line.startswith("   "):
            entries[-1].append(line)
    out = {}
    for lines in entries:
        text = " ".join(" ".join(lines).split())
        for flag in re.findall(r"(?:^|, )(--?[\w-]+)", text.split("  ")[0]):
            out.setdefault(flag, text)
    return out


def _shown(default) -> str:
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    return "None" if default in ("", None) else str(default)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_parameter_with_its_default(command, capsys):
    options = _options(_help(command, capsys))
    for spec in SERVICES[command].params_cls().specs():
        text = options.get(f"--{spec.name}")
        assert text, f"{command} --help does not list --{spec.name}"
        if "default" not in spec.doc.lower():  # else the text says what its default means
            assert f"(default: {_shown(spec.default)})" in text, text
    for name, value in SEED_DEFAULTS.get(command, {}).items():
        assert f"(default: {value})" in options[f"--{name}"], (command, name)


def test_required_inputs_show_no_default(capsys):
    options = _options(_help("tile_classifier", capsys))
    for flag in ("--input_dir", "--output_dir", "--mc_dir"):
        assert "default" not in options[flag]
