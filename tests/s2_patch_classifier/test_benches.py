"""The benchmark and the evaluation harness run (tiny settings; their figures are not checked)."""

import argparse
import importlib.util
import json
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
                              threads=1, engines="default,onnxruntime,openvino-fp32,torch-fast,torch-fast-fp32,"
                              "onnxruntime-int8")
    out = bench.run(args)
    assert set(out["seconds_best_of_rounds"]) == {"plain", "default", "onnxruntime", "openvino-fp32", "torch-fast",
                                                  "torch-fast-fp32", "onnxruntime-int8"}
    assert out["windows"] == 4 and out["agreement_with_plain"]["torch-fast-fp32"] == 1.0
    assert out["default_engine"] in ("openvino-bf16", "onnxruntime-cpu")
    assert out["max_probability_difference_vs_plain"]["default"] <= 1e-3
    assert out["max_probability_difference_vs_plain"]["onnxruntime"] <= 1e-5
    assert out["max_probability_difference_vs_plain"]["openvino-fp32"] <= 1e-5


def test_ships_harness_runs():
    from tests.conftest import sample

    root = sample("s2-ships-sen2ships")
    harness = _load("ships_eval")
    args = harness.parser().parse_args([str(root), "--ports", "honolulu,casablanca", "--train-ports",
                                        "casablanca,honolulu", "--validation-ports", "casablanca", "--width", "4",
                                        "--indices", "NDWI", "--epochs", "1", "--flips", "--split-per-member",
                                        "--restarts", "0", "--jobs", "1"])
    out = harness.evaluate(args)
    honolulu = out["ports"]["honolulu"]
    assert honolulu["train_ports"] == ["casablanca"] and honolulu["min_pixels"] >= 1
    assert honolulu["true_objects"] == 12 and 0 <= honolulu["object_f1"] <= 1
    assert honolulu["engine"] in ("onnxruntime-cpu+flips", "openvino-bf16+flips")  # the service's engine
    assert [m["seed"] for m in honolulu["members"]] == [0, 1] and honolulu["validation_tiles"] == ()
    assert out["summary"]["report_ports"]["ports"] == ["honolulu"]
    assert out["summary"]["validation_ports"]["ports"] == ["casablanca"]
    assert out["summary"]["all_ports"]["pooled"]["true_objects"] == 12 + 15


def test_rescoring_the_saved_networks_gives_the_harness_figures(tmp_path, capsys):
    from tests.conftest import sample

    root = sample("s2-ships-sen2ships")
    harness, rescoring = _load("ships_eval"), _load("ships_rescore")
    saved = tmp_path / "run"
    args = harness.parser().parse_args([str(root), "--ports", "honolulu", "--train-ports", "casablanca,honolulu",
                                        "--width", "4", "--epochs", "2", "--jobs", "1", "--restarts", "0",
                                        "--seed", "5", "--save-dir", str(saved)])
    trained = harness.evaluate(args)["ports"]["honolulu"]

    def rescore(*argv, port="honolulu"):
        argv = [*argv, "--root", str(root), "--train-ports", "casablanca"]
        out = rescoring.rescore(rescoring.parser().parse_args(argv))
        return out["ports"][port] if port else out

    whole = rescore(str(saved), port=None)
    assert whole["settings"]["seed"] == 5  # the run's seed, for ships_seeds.py
    mean = whole["ports"]["honolulu"]
    assert mean["counts"] == trained["counts"] and mean["networks"] == 2 and mean["min_pixels"] == trained["min_pixels"]
    twice = rescore(str(saved), str(saved), port=None)  # the same networks twice: the same mean
    assert twice["ports"]["honolulu"]["counts"] == trained["counts"] and twice["ports"]["honolulu"]["networks"] == 4
    assert twice["settings"]["seed"] == [5, 5]
    (saved / "settings.json").unlink()  # a run saved before its settings were kept
    assert rescore(str(saved), port=None)["settings"]["seed"] is None
    agreed = rescore(str(saved), "--seeds", "all")  # its seeds are a subset of the mean's
    assert agreed["predicted_objects"] <= mean["predicted_objects"] and agreed["counts"]["tp"] <= mean["counts"]["tp"]
    with pytest.raises(SystemExit) as e:
        rescore(str(saved), "--ports", "busan")
    assert e.value.code == 2 and "no saved model" in capsys.readouterr().err


def _run(seed, f1, counts):
    """A ships_eval output of two report ports and one validation port: F1 and (tp, fp, fn) per port."""
    from components.s2_patch_classifier.metrics import object_summary

    ports = {}
    for port, (tp, fp, fn) in counts.items():
        c = {"tp": tp, "fp": fp, "fn": fn, "true_objects": tp + fn, "predicted_objects": tp + fp,
             "pixel_intersection": 0, "pixel_pred": 1, "pixel_truth": 1}
        ports[port] = {"port": port, "object_f1": f1[port], "counts": c}
    summary = {}
    for group, names in (("report_ports", ["busan", "hedland"]), ("validation_ports", ["klang"]),
                         ("all_ports", ["busan", "hedland", "klang"])):
        worst = min(names, key=f1.get)
        summary[group] = {"ports": names, "mean_object_f1": round(sum(f1[p] for p in names) / len(names), 4),
                          "worst_port": worst, "worst_object_f1": f1[worst],
                          "pooled": object_summary([ports[p]["counts"] for p in names])}
    return {"settings": {"seed": seed}, "ports": ports, "summary": summary}


def test_figures_over_seeds():
    seeds = _load("ships_seeds")
    a = _run(0, {"busan": 0.6, "hedland": 0.4, "klang": 0.3},
             {"busan": (3, 2, 2), "hedland": (2, 4, 1), "klang": (1, 1, 3)})
    b = _run(1, {"busan": 0.5, "hedland": 0.3, "klang": 0.5},
             {"busan": (2, 2, 3), "hedland": (1, 3, 2), "klang": (2, 1, 2)})
    out = seeds.over_seeds([a, b])
    assert out["seeds"] == [0, 1]
    report = out["report_ports"]
    assert report["per_seed"] == [0.5, 0.4] and report["mean_object_f1"] == 0.45
    assert report["sd"] == pytest.approx(0.0707, abs=1e-4) and report["standard_error"] == 0.05
    assert report["seeds_at_or_above_0.5"] == 1
    assert report["port_means"] == {"busan": 0.55, "hedland": 0.35} and report["worst_port"] == "hedland"
    assert report["worst_port_per_seed"] == [["hedland", 0.4], ["hedland", 0.3]]
    pooled = report["pooled"]  # tp 8, predicted 8 + 11, true 8 + 8
    assert (pooled["true_objects"], pooled["predicted_objects"]) == (16, 19)
    assert pooled["object_f1"] == round(2 * 8 / (16 + 19), 4)
    assert out["validation_ports"]["mean_object_f1"] == 0.4 and out["all_ports"]["runs"] == 2
    b["summary"]["report_ports"]["ports"] = ["busan"]
    with pytest.raises(SystemExit, match="different report ports: busan / busan,hedland"):
        seeds.over_seeds([a, b])


def test_seeds_are_read_as_lists_and_ranges(tmp_path):
    seeds = _load("ships_seeds")
    assert seeds.parse_seeds("0-2,7") == [0, 1, 2, 7] and seeds.parse_seeds("3") == [3]
    for bad in ("a", "1,1", "0-1,1", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="seeds"):
            seeds.parse_seeds(bad)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="bad.json: not a readable JSON output"):
        seeds.main([str(tmp_path / "bad.json")])


def test_the_harness_runs_each_seed_and_summarises(tmp_path, capsys):
    from tests.conftest import sample

    harness = _load("ships_eval")
    harness.main([str(sample("s2-ships-sen2ships")), "--ports", "honolulu", "--train-ports", "casablanca,honolulu",
                  "--width", "4", "--epochs", "1", "--members", "1", "--jobs", "1", "--restarts", "0", "--seeds", "3-4",
                  "--save-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert [r["settings"]["seed"] for r in out["runs"]] == [3, 4]
    assert (tmp_path / "seed3" / "model_honolulu.pt").is_file() and (tmp_path / "seed4" / "model_honolulu.pt").is_file()
    over = out["over_seeds"]["validation_ports"]  # honolulu is one of the ports that chose the settings
    assert over["ports"] == ["honolulu"] and over["per_seed"] == [r["summary"]["validation_ports"]["mean_object_f1"]
                                                                    for r in out["runs"]]
    assert out["over_seeds"]["report_ports"] is None


@pytest.mark.parametrize("bench, argv, line", [
    ("ships_eval", ["--tile-balance", "1.5"], "--tile-balance 1.5: allowed 0.0 to 1.0"),
    ("ships_eval", ["--shore-half", "0"], "--shore-half 0: allowed 1 or more"),
    ("ships_eval", ["--ema", "1"], "--ema 1.0: allowed 0.0 to 0.9999"),
    ("ships_eval", ["--scale-jitter", "2"], "--scale-jitter 2.0: allowed a number >= 0.0 and <= 1.0 (the service's "
                                             "--scale_jitter)"),
    ("ships_eval", ["--no-aug"], "--scale-jitter 0.3: allowed 0 unless -data_aug is True"),
    # the service's rules between parameters, beyond the bench's own (--no-aug)
    ("ships_eval", ["--grow-threshold", "0"], "--split-depth 0.2: allowed 0 unless --grow_threshold is set"),
    ("ships_eval", ["--ensemble-windows", "mixed", "--members", "1"],
     "--ensemble-windows mixed: allowed same unless --ensemble is 2 or more"),
    ("ships_rescore", ["runs", "--seed-threshold", "0.1"], "--seed-threshold 0.1: allowed at least --grow_threshold"),
    ("ships_eval", ["--gap-weight", "-1"], "--gap-weight -1.0: allowed a number >= 0.0 and <= 100.0 (the service's "
                                           "--gap_weight)"),
    ("ships_eval", ["--members", "9"], "--members 9: allowed a number >= 1 and <= 8 (the service's --ensemble)"),
    ("ships_eval", ["--ports", "atlantis", "--epochs", "1"], "unknown port(s) ['atlantis']"),
    ("ships_rescore", ["runs", "--split-depth", "2"], "--split-depth 2.0: allowed a number >= 0.0 and <= 1.0"),
    ("ships_rescore", ["no-such-run"], "no port has a model in every run of ['no-such-run']"),
])
def test_the_ship_benches_refuse_a_bad_flag_in_one_line(bench, argv, line, capsys):
    from tests.conftest import sample

    root = str(sample("s2-ships-sen2ships"))
    argv = ([root] if bench == "ships_eval" else ["--root", root]) + argv
    with pytest.raises(SystemExit) as e:
        _load(bench).main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and line in err and err.count("\n") == 1


def test_the_readme_recipe_is_the_service_form_of_the_bench_defaults():
    from components.common.cli import build_parser
    from components.s2_patch_classifier.cli import INPUTS
    from components.s2_patch_classifier.params import S2PatchClassifierParams

    harness = _load("ships_eval")
    bench = harness.parser().parse_args([])
    flags = harness.service_flags(bench)
    readme = (REPO / "components" / "s2_patch_classifier" / "README.md").read_text()
    assert " ".join(flags) in " ".join(readme.replace("\\\n", " ").split())
    argv = ["--input", "in", "--outdir", "out", "-action", "full", *flags]
    read = vars(build_parser("s2-patch-classifier", "", S2PatchClassifierParams, INPUTS).parse_args(argv))
    params = S2PatchClassifierParams.from_strings({k: v for k, v in read.items()
                                                   if k not in ("input", "outdir", "verbose")})
    same = ("patch_size", "batch_size", "epochs", "lr", "criterion", "encoder", "width", "dark_object", "restarts",
            "gap_weight", "shore_weight", "head_prior", "shift", "scale_jitter", "val_fraction", "seed_threshold",
            "grow_threshold", "split_depth", "seed", "overlap", "flips")
    assert {k: getattr(params, k) for k in same} == {k: getattr(bench, k) for k in same}
    assert (params.ensemble, params.data_aug) == (bench.members, not bench.no_aug)
    assert harness.service_flags(harness.parser().parse_args(["--tile-balance", "1"])) is None  # the bench's alone


def test_the_ship_benches_predict_with_the_service_engine(tmp_path):
    import numpy as np
    import torch

    from components.s2_patch_classifier import modelio
    from components.s2_patch_classifier.data import find_tiles
    from components.s2_patch_classifier.model import Ensemble
    from components.s2_patch_classifier.predict import open_predictor, probability_array

    from .fixtures import SYNTH_BANDS, synthetic_tile
    from .test_engines import _bf16_sensitive_unet

    cpu = torch.device("cpu")
    first, meta = _bf16_sensitive_unet()  # beyond bf16's tolerance where the CPU has bf16: fp32 there too
    second, _ = _bf16_sensitive_unet()
    with torch.no_grad():
        second.head.bias.add_(torch.tensor([0.5, -0.5]))
    meta["members"] = 2
    pt = modelio.save_pytorch(tmp_path / "model.pt", Ensemble([first, second]), meta)
    synthetic_tile(tmp_path / "tiles", "A")
    (tile,) = find_tiles(tmp_path / "tiles")
    service = open_predictor(pt, cpu)
    assert service.engine in ("onnxruntime-cpu", "openvino-bf16")
    (got, networks), = _load("ships_rescore").ship_probabilities(pt, tile, 0.25)
    assert networks == 2
    np.testing.assert_array_equal(got, probability_array(tile.read(SYNTH_BANDS), service, 0.25)[1])
