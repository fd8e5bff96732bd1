"""`python -m pipelines.cli`: local runs with kfp.local, and submission through the real
kfp.Client to a loopback HTTP server that records what the client sends."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from pipelines.cli import main
from tests.fixtures.s2_products import write_s2_product


class _Recorder(BaseHTTPRequestHandler):
    requests: list = []

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self.requests.append(("GET", self.path, None, self.headers.get("Authorization")))
        self._reply({})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.requests.append(("POST", self.path, body, self.headers.get("Authorization")))
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._reply({"experiment_id": "exp-7", "display_name": body.get("display_name")})
        else:
            self._reply({"run_id": "run-42", "display_name": body.get("display_name")})

    def log_message(self, *args):
        pass


@pytest.fixture
def kfp_api():
    _Recorder.requests = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.requests
    server.shutdown()


def test_submit_sends_the_compiled_pipeline_and_parameters(kfp_api, tmp_path, capsys, monkeypatch):
    host, requests = kfp_api
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "secret-token")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"products": ["s3://eo-inputs/a.zip", "s3://eo-inputs/b.zip"],
                                      "resolution": 20.0, "cloudmask": "L2A"}))
    assert main(["submit", "s2_ard", "--host", host, "--namespace", "team-eo", "--experiment", "ireland",
                 "--params", str(params)]) == 0
    assert "run id: run-42" in capsys.readouterr().out
    experiment = next(r for r in requests if r[0] == "POST" and r[1] == "/apis/v2beta1/experiments")
    assert experiment[2] == {"display_name": "ireland", "namespace": "team-eo"}
    run = next(r for r in requests if r[0] == "POST" and r[1] == "/apis/v2beta1/runs")
    body = run[2]
    assert body["experiment_id"] == "exp-7"
    # with a platform section the client sends both: the Kubernetes settings reach the cluster
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "s2-ard"
    executors = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-s2-preprocess"]["secretAsEnv"][0]["secretName"] == "mlpipeline-minio-artifact"
    assert body["runtime_config"]["parameters"] == {"products": ["s3://eo-inputs/a.zip", "s3://eo-inputs/b.zip"],
                                                    "resolution": 20.0, "cloudmask": "L2A"}
    assert run[3] == "Bearer secret-token"
    assert body["service_account"] == "eo-pipeline-runner"


def test_integer_for_a_float_parameter_is_accepted(kfp_api, tmp_path, capsys):
    host, requests = kfp_api
    params = tmp_path / "params.yaml"
    params.write_text("products: [s3://eo-inputs/a.zip]\nresolution: 60\n")
    assert main(["submit", "s2_ard", "--host", host, "--params", str(params)]) == 0
    run = next(r for r in requests if r[0] == "POST" and r[1] == "/apis/v2beta1/runs")
    assert run[2]["runtime_config"]["parameters"]["resolution"] == 60.0


@pytest.mark.parametrize("text, line", [
    ("products: [a]\nresolution: sixty\n", "parameter resolution: 'sixty' is not a float"),
    ("products: [a]\ntoa: 1\n", "parameter toa: 1 is not a boolean"),
    ("products: a.zip\n", "parameter products: 'a.zip' is not a list"),
    ("products: [a]\nresolution: true\n", "parameter resolution: True is not a float"),
])
def test_wrong_parameter_type_is_one_line(kfp_api, tmp_path, capsys, text, line):
    host, requests = kfp_api
    params = tmp_path / "params.yaml"
    params.write_text(text)
    with pytest.raises(SystemExit) as e:
        main(["submit", "s2_ard", "--host", host, "--params", str(params)])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"pipelines: error: {line}\n"
    assert requests == []


def test_unknown_parameter_is_refused_before_any_request(kfp_api, tmp_path, capsys):
    host, requests = kfp_api
    params = tmp_path / "params.yaml"
    params.write_text("resolutoin: 20\n")
    with pytest.raises(SystemExit) as e:
        main(["submit", "s2_ard", "--host", host, "--params", str(params)])
    assert e.value.code == 2
    assert "unknown parameter(s) resolutoin for s2_ard" in capsys.readouterr().err
    assert requests == []


def test_run_locally_from_a_params_file(tmp_path, capsys):
    product = write_s2_product(tmp_path / "p", size_10m=60)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"products": [str(product)], "resolution": 60, "bands": "B2,B3"}))
    assert main(["run", "s2_ard", "--params", str(params), "--root", str(tmp_path / "root")]) == 0
    assert len(list((tmp_path / "root").rglob("*_60m.tif"))) == 1


def test_list():
    assert main(["list"]) == 0
