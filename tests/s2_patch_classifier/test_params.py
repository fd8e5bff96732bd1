"""Table 7 of the seed: every option, its spellings and its default; validation messages."""

import pytest

from components.common.cli import build_parser
from components.common.errors import InvalidParameter
from components.s2_patch_classifier.cli import INPUTS, main
from components.s2_patch_classifier.params import S2PatchClassifierParams

TABLE_7 = {  # seed flag -> (field, default)
    "-action": ("action", ""), "-criterion": ("criterion", "cross_entropy"), "-pretrained": ("pretrained", False),
    "-bands": ("bands", ()), "-selected-classes": ("selected_classes", ("1",)), "-data_aug": ("data_aug", False),
    "-simplified": ("simplified", False), "-b": ("batch_size", 2), "--batch-size": ("batch_size", 2),
    "-epochs": ("epochs", 20), "-patch_size": ("patch_size", 256), "-lr": ("lr", 1e-4),
    "-model_format": ("model_format", "pytorch"), "-model_file": ("model_file", None),
}


def test_table_7_defaults():
    p = S2PatchClassifierParams(action="train")
    for flag, (name, default) in TABLE_7.items():
        if name != "action":
            assert getattr(p, name) == default, flag
    assert (p.encoder, p.width) == ("resnet50", 64)


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["-h"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in TABLE_7:
        assert f"{flag} " in text or f"{flag}," in text, flag
    for spec in S2PatchClassifierParams.specs():
        assert f"--{spec.name}" in text


def test_seed_spellings_parse():
    parser = build_parser("s2-patch-classifier", "", S2PatchClassifierParams, INPUTS)
    args = vars(parser.parse_args(["-i", "x", "-o", "y", "-action", "full", "-criterion", "focal_loss", "-pretrained",
                                   "True", "-bands", "B02,B3,b8a", "-selected-classes", "1,3", "-data_aug", "True",
                                   "-simplified", "True", "-b", "8", "-epochs", "3", "-patch_size", "64", "-lr",
                                   "0.001", "-model_format", "Pytorch", "-model_file", "ships.pt"]))
    values = {k: v for k, v in args.items() if k not in ("input", "outdir", "verbose")}
    p = S2PatchClassifierParams.from_strings(values)
    assert (p.action, p.criterion, p.pretrained, p.bands) == ("full", "focal_loss", True, ("B2", "B3", "B8A"))
    assert (p.selected_classes, p.data_aug, p.simplified, p.batch_size) == (("1", "3"), True, True, 8)
    assert (p.epochs, p.patch_size, p.lr, p.model_format, p.model_file) == (3, 64, 0.001, "pytorch", "ships.pt")
    args = vars(parser.parse_args(["-i", "x", "-o", "y", "--batch-size", "4", "--selected-classes", "2"]))
    assert (args["batch_size"], args["selected_classes"]) == ("4", "2")


@pytest.mark.parametrize("values, fragment", [
    ({}, "parameter 'action': allowed one of full, extract_data, train, predict, pretrain (required)"),
    ({"action": "fit"}, "invalid value 'fit' for parameter 'action'"),
    ({"action": "train", "criterion": "dice"}, "parameter 'criterion': allowed one of cross_entropy, focal_loss"),
    ({"action": "train", "patch_size": "128"}, "invalid value 128 for parameter 'patch_size': allowed 64 or 256"),
    ({"action": "train", "batch_size": "1"}, "parameter 'batch_size': allowed a number >= 2 and <= 64"),
    ({"action": "train", "batch_size": "65"}, "parameter 'batch_size'"),
    ({"action": "train", "epochs": "0"}, "parameter 'epochs': allowed a number >= 1 and <= 99"),
    ({"action": "train", "epochs": "100"}, "parameter 'epochs'"),
    ({"action": "train", "lr": "0"}, "parameter 'lr': allowed a number > 0 and <= 1.0"),
    ({"action": "train", "lr": "2"}, "parameter 'lr': allowed a number > 0 and <= 1.0"),
    ({"action": "train", "bands": "B2,B13"}, "invalid value 'B13' for parameter 'bands'"),
    ({"action": "train", "bands": "B2,B02"}, "parameter 'bands': allowed each band at most once"),
    ({"action": "train", "selected_classes": "0"}, "parameter 'selected_classes': allowed class ids 1-255"),
    ({"action": "train", "selected_classes": "256"}, "class ids 1-255"),
    ({"action": "train", "selected_classes": "ship"}, "class ids 1-255"),
    ({"action": "train", "simplified": "true", "selected_classes": "12"}, "simplified scheme"),
    ({"action": "train", "model_format": "tflite"}, "parameter 'model_format': allowed one of pytorch, onnx"),
    ({"action": "train", "pretrained": "maybe"}, "parameter 'pretrained': allowed true or false"),
    ({"action": "train", "indices": "NDWI,EVI"}, "invalid value 'EVI' for parameter 'indices': allowed one of NDWI"),
    ({"action": "train", "indices": "ndwi,NDWI"}, "parameter 'indices': allowed each index at most once"),
    ({"action": "train", "focal_alpha": "0.75"}, "parameter 'focal_alpha': allowed 0 unless -criterion is focal"),
    ({"action": "train", "criterion": "focal_loss", "focal_alpha": "1"},
     "parameter 'focal_alpha': allowed a number >= 0.0 and <= 0.99"),
    ({"action": "predict", "grow_threshold": "0.15", "split_depth": "1.5"},
     "parameter 'split_depth': allowed a number >= 0.0 and <= 1.0"),
    ({"action": "train", "scale_jitter": "0.3"}, "parameter 'scale_jitter': allowed 0 unless -data_aug is True"),
    ({"action": "train", "data_aug": "true", "scale_jitter": "1.5"},
     "parameter 'scale_jitter': allowed a number >= 0.0 and <= 1.0"),
])
def test_invalid_values(values, fragment):
    with pytest.raises(InvalidParameter) as e:
        S2PatchClassifierParams.from_strings(values)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
