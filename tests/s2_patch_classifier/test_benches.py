"""The benchmark and the evaluation harness run (tiny settings; their figures are not checked)."""

import argparse
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inference_benchmark_runs():
    bench = _load("s2_patch_classifier")
    args = argparse.Namespace(size=96, patch=64, overlap=0.25, bands=3, encoder="resnet14", width=8, rounds=1,
                              threads=1, engines="default,onnxruntime,torch-fast,torch-fast-fp32,onnxruntime-int8")
    out = bench.run(args)
    assert set(out["seconds_best_of_rounds"]) == {"plain", "default", "onnxruntime", "torch-fast",
                                                  "torch-fast-fp32", "onnxruntime-int8"}
    assert out["windows"] == 4 and out["agreement_with_plain"]["torch-fast-fp32"] == 1.0
    assert out["default_engine"] in ("torch-bf16", "onnxruntime-cpu")
    assert out["max_probability_difference_vs_plain"]["default"] <= 1e-3
    assert out["max_probability_difference_vs_plain"]["onnxruntime"] <= 1e-5


def test_ships_harness_runs():
    from tests.conftest import sample

    root = sample("s2-ships-sen2ships")
    harness = _load("ships_eval")
    args = harness.parser().parse_args([str(root), "--ports", "honolulu,casablanca", "--train-ports",
                                        "casablanca,honolulu", "--validation-ports", "casablanca", "--width", "4",
                                        "--indices", "NDWI", "--epochs", "1", "--flips", "--split-per-member",
                                        "--jobs", "1"])
    out = harness.evaluate(args)
    honolulu = out["ports"]["honolulu"]
    assert honolulu["train_ports"] == ["casablanca"] and honolulu["min_pixels"] >= 1
    assert honolulu["true_objects"] == 12 and 0 <= honolulu["object_f1"] <= 1
    assert honolulu["engine"].endswith("+flips")
    assert [m["seed"] for m in honolulu["members"]] == [0, 1] and honolulu["validation_tiles"] == ()
    assert out["summary"]["report_ports"]["ports"] == ["honolulu"]
    assert out["summary"]["validation_ports"]["ports"] == ["casablanca"]
    assert out["summary"]["all_ports"]["pooled"]["true_objects"] == 12 + 15


def test_rescoring_the_saved_networks_gives_the_harness_figures(tmp_path):
    from tests.conftest import sample

    root = sample("s2-ships-sen2ships")
    harness, rescoring = _load("ships_eval"), _load("ships_rescore")
    saved = tmp_path / "run"
    args = harness.parser().parse_args([str(root), "--ports", "honolulu", "--train-ports", "casablanca,honolulu",
                                        "--width", "4", "--epochs", "2", "--jobs", "1", "--save-dir", str(saved)])
    trained = harness.evaluate(args)["ports"]["honolulu"]

    def rescore(*argv):
        argv = [*argv, "--root", str(root), "--train-ports", "casablanca"]
        return rescoring.rescore(rescoring.parser().parse_args(argv))["ports"]["honolulu"]

    mean = rescore(str(saved))
    assert mean["counts"] == trained["counts"] and mean["networks"] == 2 and mean["min_pixels"] == trained["min_pixels"]
    twice = rescore(str(saved), str(saved))  # the same networks twice: the same mean
    assert twice["counts"] == trained["counts"] and twice["networks"] == 4
    agreed = rescore(str(saved), "--seeds", "all")  # its seeds are a subset of the mean's
    assert agreed["predicted_objects"] <= mean["predicted_objects"] and agreed["counts"]["tp"] <= mean["counts"]["tp"]
    with pytest.raises(SystemExit, match="no saved model .*model_busan.pt"):
        rescore(str(saved), "--ports", "busan")
