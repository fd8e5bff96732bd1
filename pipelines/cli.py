"""Run any pipeline of the collection locally, or submit it to a cluster.

    python -m pipelines.cli list
    python -m pipelines.cli run s2_ard --params params.yaml [--root DIR]
    python -m pipelines.cli submit s2_ard --host URL [--namespace NS] [--experiment NAME]
        [--service-account SA] --params params.yaml

``params.yaml`` maps the pipeline's parameter names to values (an integer is accepted for a
float parameter). ``run`` uses kfp.local (no cluster, one process per step); ``submit`` uploads
the compiled YAML through ``kfp.Client`` and prints the run id; the run's pods use the service
account ``eo-pipeline-runner`` of the manifests. A bearer token for the API can be given in
``KF_PIPELINES_TOKEN``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import yaml

from components.common.cli import OneLineParser
from pipelines.compile import COMPILED, PIPELINES
from pipelines.local_print import print_restored

# the account manifests/base/rbac.yaml creates for pipeline pods (reads the artifact secret)
SERVICE_ACCOUNT = "eo-pipeline-runner"


def _params(path: str | None, pipeline: str) -> dict:
    if not path:
        return {}
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit(_fail(f"cannot read params file {path}: {' '.join(str(e).split())}"))
    if not isinstance(values, dict):
        raise SystemExit(_fail(f"params file {path} must map parameter names to values"))
    inputs = PIPELINES[pipeline].component_spec.inputs or {}
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise SystemExit(_fail(f"unknown parameter(s) {', '.join(unknown)} for {pipeline}: allowed {', '.join(sorted(inputs))}"))
    return {name: _typed(name, value, inputs[name].type) for name, value in values.items()}


# YAML's types for each KFP parameter type; an integer is also a valid number (``resolution: 60``)
_ACCEPTED = {"Float": (float, int), "Integer": (int,), "String": (str,), "Boolean": (bool,),
             "List": (list,), "Dict": (dict,)}


def _typed(name: str, value, kfp_type: str):
    """``value`` as the parameter's type: integers widened to floats, anything else refused."""
    accepted = _ACCEPTED.get(kfp_type)
    if accepted is None:
        return value
    if isinstance(value, bool) and bool not in accepted:  # YAML true/false is an int in Python
        accepted = ()
    if not isinstance(value, accepted):
        raise SystemExit(_fail(f"parameter {name}: {value!r} is not a {kfp_type.lower()}"))
    return float(value) if kfp_type == "Float" else value


def _fail(message: str) -> int:
    sys.stderr.write(f"pipelines: error: {message}\n")
    return 2


def run_local(pipeline: str, params: dict, root: Path) -> Path:
    import kfp.local

    root = root.resolve()
    with tempfile.TemporaryDirectory() as workspace, print_restored():
        kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                       workspace_root=workspace)
        PIPELINES[pipeline](**params)
    return root


def submit(pipeline: str, params: dict, host: str, namespace: str | None, experiment: str,
           service_account: str = SERVICE_ACCOUNT) -> str:
    import kfp

    package = COMPILED / f"{pipeline}.yaml"
    client = kfp.Client(host=host, namespace=namespace, existing_token=os.environ.get("KF_PIPELINES_TOKEN"))
    run = client.create_run_from_pipeline_package(str(package), arguments=params, experiment_name=experiment,
                                                  namespace=namespace, run_name=f"{pipeline}",
                                                  service_account=service_account or None)
    return run.run_id


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="pipelines", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the pipelines")
    r = sub.add_parser("run", help="run a pipeline locally with kfp.local")
    s = sub.add_parser("submit", help="submit a pipeline to Kubeflow Pipelines")
    for p in (r, s):
        p.add_argument("pipeline", choices=sorted(PIPELINES))
        p.add_argument("--params", help="YAML file of pipeline parameters")
    r.add_argument("--root", default="local_outputs", help="pipeline root for the outputs")
    s.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    s.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user mode)")
    s.add_argument("--experiment", default="eo-services", help="experiment to file the run under")
    s.add_argument("--service-account", default=SERVICE_ACCOUNT,
                   help="Kubernetes service account of the run's pods ('' for the namespace default)")
    args = ap.parse_args(argv)
    if args.command == "list":
        for name in sorted(PIPELINES):
            print(name)
        return 0
    params = _params(args.params, args.pipeline)
    if args.command == "run":
        print(f"outputs under {run_local(args.pipeline, params, Path(args.root))}")
        return 0
    print(f"run id: {submit(args.pipeline, params, args.host, args.namespace, args.experiment, args.service_account)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
