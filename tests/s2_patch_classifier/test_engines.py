"""Prediction engines: the default (bf16 where the CPU has it and it keeps the probabilities:
OpenVINO, or PyTorch without it; else ONNX Runtime with a PyTorch file exported once and cached)
gives the fp32 model's probabilities to 1e-3 on real sen2ships pixels, ``--engine`` picks the
engine, and the export cache survives a damaged entry."""

import json
import logging

import numpy as np
import pytest
import torch

from components.s2_patch_classifier import modelio
from components.s2_patch_classifier.cli import main
from components.s2_patch_classifier.data import find_tiles
from components.s2_patch_classifier.model import Arch, build
from components.s2_patch_classifier.onnx_export import CACHE_ENV
from components.s2_patch_classifier import predict
from components.s2_patch_classifier.predict import (OnnxPredictor, OpenVinoPredictor, TorchPredictor, bf16_native,
                                                    open_predictor, openvino_installed, probe_windows)

from .fixtures import SYNTH_BANDS, port_crop, synthetic_tile

CPU = torch.device("cpu")


def _random_unet(bands, stats, classes=2):
    """A small U-Net with random weights and trained-like batch-norm statistics."""
    torch.manual_seed(0)
    arch = Arch(len(bands), classes, "resnet14", 8)
    model = build(arch)
    model.normalise.set_stats(stats["low"], stats["high"], stats["mean"], stats["std"])
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    return model, modelio.base_meta(arch, list(bands), list(range(classes)), 64, stats, False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def test_default_engine_gives_pytorch_probabilities_on_a_real_port(tmp_path, cache):
    (tile,) = find_tiles(port_crop(tmp_path / "ports", "casablanca", (128, 128)))
    bands = tuple(sorted(tile.band_files))
    image = tile.read(bands).astype(np.float32)
    flat = image.reshape(len(bands), -1)
    stats = {"low": np.percentile(flat, 1, 1).tolist(), "high": np.percentile(flat, 99, 1).tolist(),
             "mean": flat.mean(1).tolist(), "std": (flat.std(1) + 1).tolist()}
    model, meta = _random_unet(bands, stats)
    pt = modelio.save_pytorch(tmp_path / "model.pt", model, meta)
    windows = np.stack([image[:, y:y + 64, x:x + 64] for y in (0, 64) for x in (0, 64)])
    with torch.no_grad():  # the plain model, as trained
        ref = torch.softmax(model(torch.from_numpy(windows)), 1).numpy()
    default = open_predictor(pt, CPU)
    # bf16 exactly where this CPU computes it natively and it keeps these windows' probabilities
    fast = open_predictor(pt, CPU, "bf16", engine="openvino" if openvino_installed() else "torch")
    bf16_diff = np.abs(fast(windows) - ref).max()
    expected = fast.engine if bf16_native() and bf16_diff <= 1e-3 else "onnxruntime-cpu"
    assert default.engine == expected
    got = default(windows)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-3
    assert (got.argmax(1) == ref.argmax(1)).all()
    exact = open_predictor(pt, CPU, engine="onnxruntime")
    assert np.abs(exact(windows) - ref).max() <= 1e-5


def _bf16_sensitive_unet():
    stats = {"low": [0.0] * 4, "high": [4000.0] * 4, "mean": [800.0] * 4, "std": [500.0] * 4}
    model, meta = _random_unet(SYNTH_BANDS, stats)
    with torch.no_grad():  # both logits in the thousands, their difference as before: bf16's 8-bit
        model.head.weight.add_(300.0 * model.head.weight[0].abs())  # mantissa moves it by units
    return model, meta


@pytest.mark.skipif(not bf16_native(), reason="this CPU has no native bf16: the default is ONNX Runtime anyway")
def test_a_model_that_bf16_would_move_beyond_the_tolerance_runs_in_onnx_runtime(tmp_path, cache):
    model, meta = _bf16_sensitive_unet()
    pt = modelio.save_pytorch(tmp_path / "model.pt", model, meta)
    assert open_predictor(pt, CPU).engine == "onnxruntime-cpu"
    assert open_predictor(pt, CPU, engine="torch").engine == "torch-bf16"  # asked for: not checked
    assert open_predictor(pt, CPU, engine="openvino").engine == "openvino-bf16"


@pytest.mark.parametrize("installed, engine", [(True, "openvino-"), (False, "torch-bf16")])
def test_where_bf16_is_native_the_default_is_openvino_where_installed(installed, engine, files, cache, monkeypatch):
    monkeypatch.setattr(predict, "bf16_native", lambda: True)  # OpenVINO grants bf16 only where it is
    monkeypatch.setattr(predict, "openvino_installed", lambda: installed)
    default = open_predictor(files["pt"], CPU)
    assert default.engine.startswith(engine)
    x = probe_windows(default.meta)
    model = modelio.load_pytorch(files["pt"])[0]
    with torch.no_grad():
        assert np.abs(default(x) - torch.softmax(model(torch.from_numpy(x)), 1).numpy()).max() <= 1e-3
    assert predict.auto_precision(model, default.meta, CPU, "model.pt") == "bf16"  # the benches' choice too
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the model left as it was


def test_a_model_openvino_cannot_run_falls_back_to_pytorch_bf16(files, cache, monkeypatch, caplog):
    def refuse(path, *args):
        raise predict.ServiceError(f"OpenVINO cannot load {path.name}: unsupported operation")

    monkeypatch.setattr(predict, "bf16_native", lambda: True)
    monkeypatch.setattr(predict, "OpenVinoPredictor", refuse)
    with caplog.at_level(logging.WARNING):
        default = open_predictor(files["pt"], CPU)
    assert default.engine == "torch-bf16" and "PyTorch bf16 instead" in caplog.text
    x = probe_windows(default.meta)
    model = modelio.load_pytorch(files["pt"])[0]
    with torch.no_grad():
        assert np.abs(default(x) - torch.softmax(model(torch.from_numpy(x)), 1).numpy()).max() <= 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_bf16_is_checked_and_fp32_is_full_fp32(tmp_path):
    cuda = torch.device("cuda")
    model, meta = _bf16_sensitive_unet()
    pt = modelio.save_pytorch(tmp_path / "model.pt", model, meta)
    windows = probe_windows(meta, 4)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(windows)), 1).numpy()
    default = open_predictor(pt, cuda)
    assert default.engine == "torch-fp32"  # bf16 would move these probabilities by far more than 1e-3
    assert np.abs(default(windows) - ref).max() <= 1e-5  # no TF32 either
    assert open_predictor(pt, cuda, engine="torch").engine == "torch-bf16"  # asked for: not checked
    plain, plain_meta = _random_unet(SYNTH_BANDS, meta["stats"])
    plain_pt = modelio.save_pytorch(tmp_path / "plain.pt", plain, plain_meta)
    probes = probe_windows(plain_meta)  # those the check compares on
    with torch.no_grad():
        plain_ref = torch.softmax(plain(torch.from_numpy(probes)), 1).numpy()
    bf16_diff = np.abs(TorchPredictor(modelio.load_pytorch(plain_pt)[0], plain_meta, cuda, "bf16")(probes)
                       - plain_ref).max()
    assert open_predictor(plain_pt, cuda).engine == ("torch-bf16" if bf16_diff <= 1e-3 else "torch-fp32")


def test_a_precision_given_with_the_auto_engine_is_still_checked(tmp_path, cache):
    model, meta = _bf16_sensitive_unet()
    pt = modelio.save_pytorch(tmp_path / "model.pt", model, meta)
    assert open_predictor(pt, CPU, precision="bf16").engine == "onnxruntime-cpu"
    assert open_predictor(pt, CPU, precision="fp32").engine == "onnxruntime-cpu"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    synthetic_tile(root / "tiles", "A")
    stats = {"low": [0.0] * 4, "high": [4000.0] * 4, "mean": [800.0] * 4, "std": [500.0] * 4}
    model, meta = _random_unet(SYNTH_BANDS, stats)
    pt = modelio.save_pytorch(root / "model.pt", model, meta)
    from components.s2_patch_classifier.onnx_export import export

    return {"tiles": root / "tiles", "pt": pt, "onnx": export(model, root / "model.onnx", meta, 64)}


def test_engine_choice_is_honoured(files, cache):
    assert isinstance(open_predictor(files["pt"], CPU, engine="onnxruntime"), OnnxPredictor)
    fp32 = open_predictor(files["pt"], CPU, engine="torch", precision="fp32")
    assert isinstance(fp32, TorchPredictor) and fp32.engine == "torch-fp32"
    assert isinstance(open_predictor(files["onnx"], CPU), OnnxPredictor)
    x = np.random.default_rng(5).uniform(0, 3000, (3, 4, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = fp32(x)
    for source in ("pt", "onnx"):  # fp32 in OpenVINO: PyTorch's probabilities to rounding
        ov = open_predictor(files[source], CPU, "fp32", engine="openvino")
        assert isinstance(ov, OpenVinoPredictor) and ov.engine == "openvino-fp32"
        np.testing.assert_allclose(ov(x), ref, atol=1e-5)


@pytest.mark.parametrize("engine, expected", [(None, None), ("onnxruntime", "onnxruntime-cpu"),
                                              ("openvino", "openvino-"), ("torch", "torch-")])
def test_the_command_runs_the_engine_asked_for(engine, expected, files, cache, tmp_path):
    if engine is None:  # the command's auto choice is the library's for this file on this CPU
        expected = open_predictor(files["pt"], CPU).engine
    out = tmp_path / "out"
    argv = ["-action", "predict", "-i", str(files["tiles"]), "-model_file", str(files["pt"]), "--outdir", str(out),
            "--device", "cpu"] + (["--engine", engine] if engine else [])
    assert main(argv) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["outputs"]["summary"]["engine"].startswith(expected), run["outputs"]
    assert run["params"]["engine"] == (engine or "auto")
    # the export is cached only when ONNX Runtime or OpenVINO ran the PyTorch file
    assert bool(list(cache.glob("model-*.onnx"))) == (not expected.startswith("torch"))


@pytest.mark.parametrize("argv, fragment", [
    (["--engine", "tensorrt"], "invalid value 'tensorrt' for parameter 'engine'"),
    (["--engine", "torch", "-model_file", "{onnx}"], "invalid value 'torch' for parameter 'engine': allowed auto, "
                                                     "onnxruntime or openvino with an ONNX model"),
    (["--engine", "openvino", "--device", "cuda"], "invalid value 'openvino' for parameter 'engine': allowed auto, "
                                                   "onnxruntime or torch with --device cuda"),
])
def test_an_engine_that_cannot_run_the_model_is_one_line(argv, fragment, files, tmp_path, capsys):
    argv = [a.format(onnx=files["onnx"]) for a in argv]
    if "-model_file" not in argv:
        argv += ["-model_file", str(files["pt"])]
    code = main(["-action", "predict", "-i", str(files["tiles"]), "--outdir", str(tmp_path / "out")] + argv)
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_export_is_made_once_and_a_damaged_entry_made_again(files, cache, caplog):
    x = np.random.default_rng(3).uniform(0, 3000, (2, 4, 64, 64)).astype(np.float32)
    first = open_predictor(files["pt"], CPU, engine="onnxruntime")
    (entry,) = cache.glob("model-*.onnx")
    stamp = entry.stat().st_mtime_ns
    open_predictor(files["pt"], CPU, engine="onnxruntime")
    assert entry.stat().st_mtime_ns == stamp  # read from the cache, not exported again
    entry.write_bytes(entry.read_bytes()[:1000])  # e.g. a disk that filled up under another writer
    with caplog.at_level(logging.WARNING):
        again = open_predictor(files["pt"], CPU, engine="onnxruntime")
    assert "exporting model.pt again" in caplog.text
    np.testing.assert_allclose(again(x), first(x), atol=1e-6)
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_another_model_file_gets_its_own_export(files, cache, tmp_path):
    open_predictor(files["pt"], CPU, engine="onnxruntime")
    model, meta = modelio.load_pytorch(files["pt"])
    with torch.no_grad():
        model.head.bias.add_(1.0)
    other = modelio.save_pytorch(tmp_path / "model.pt", model, meta)  # same name, other weights
    x = np.random.default_rng(4).uniform(0, 3000, (1, 4, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(open_predictor(other, CPU, engine="onnxruntime")(x), ref, atol=1e-5)
    assert len(list(cache.glob("model-*.onnx"))) == 2


def test_an_unwritable_cache_folder_falls_back_to_the_temp_folder(files, tmp_path, monkeypatch):
    import tempfile

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # under a file: cannot be created
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert open_predictor(files["pt"], CPU, engine="onnxruntime").engine == "onnxruntime-cpu"
    assert len(list((tmp_path / "tmp").glob("s2-patch-classifier-onnx-*/model-*.onnx"))) == 1


def _two_openvino_models_freed_in_order(pt, windows):
    """Made, run, and freed first to last (not last to first)."""
    import gc

    first = open_predictor(pt, CPU, engine="openvino")
    first(windows)
    second = open_predictor(pt, CPU, engine="openvino")
    second(windows)
    del first
    gc.collect()
    del second
    gc.collect()


@pytest.mark.skipif(not openvino_installed(), reason="needs OpenVINO")
def test_openvino_leaves_the_threads_signal_stack_as_it_found_it(tmp_path, cache):
    """OpenVINO swaps in a signal stack of its own and puts back, when a model goes, the one it
    found: two models freed first to last left the thread on the first one's freed stack."""
    from components.common import signal_stack

    model, meta = _random_unet(SYNTH_BANDS, {"low": [0.0] * 4, "high": [4000.0] * 4, "mean": [800.0] * 4,
                                             "std": [500.0] * 4})
    pt = modelio.save_pytorch(tmp_path / "model.pt", model, meta)
    before = signal_stack.current()
    _two_openvino_models_freed_in_order(pt, probe_windows(meta))
    assert signal_stack.current() == before


@pytest.mark.skipif(not openvino_installed(), reason="needs OpenVINO")
def test_a_stop_after_openvino_models_went_is_clean(tmp_path):
    """SIGTERM (Kubernetes stopping the pod) after OpenVINO models were used and freed: the clean
    stop of the contract (exit 143), where the freed signal stack made it a SIGSEGV (exit 139)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent(f"""
        import os, signal, time
        import numpy as np
        from tests.s2_patch_classifier.test_engines import (_random_unet, _two_openvino_models_freed_in_order,
                                                            SYNTH_BANDS, modelio, probe_windows)
        from components.common.contract import stop_on_signals
        from components.common.errors import Interrupted

        os.environ[{CACHE_ENV!r}] = {str(tmp_path / "cache")!r}
        stats = {{"low": [0.0] * 4, "high": [4000.0] * 4, "mean": [800.0] * 4, "std": [500.0] * 4}}
        model, meta = _random_unet(SYNTH_BANDS, stats)
        pt = modelio.save_pytorch({str(tmp_path / "model.pt")!r}, model, meta)
        _two_openvino_models_freed_in_order(pt, probe_windows(meta))
        junk = [np.ones(1 << 20) for _ in range(50)]  # the freed memory used again
        try:
            with stop_on_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
        except Interrupted as stop:
            raise SystemExit(stop.exit_code)
    """)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-2000:]
