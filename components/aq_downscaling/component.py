"""The Kubeflow Pipelines components of the aqgan services: lightweight Python components on the
project's ML image (torch, netCDF4, kfp and this package; nothing is installed at start).

The configuration travels as YAML text (``config``), validated by the same schema as the
commands; its data paths should be absolute or ``s3://`` URIs. Dates are YYYYMMDDHH; an empty
``dataset`` means the only dataset of the configuration. Artifacts between steps: the tiles
(``Dataset``), the trained model folder (``Model``: model.pt, losses.csv, run.json) and the
ensemble folder (``Dataset``: netCDF, CSV, quicklook, run.json). (No postponed annotations here:
KFP reads the real annotation objects.)
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.images import ML_IMAGE



@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def aq_preproc(tiles: Output[Dataset], config: str, start_date: str, end_date: str, dataset: str = ""):
    """aqgan-preproc: normalised low/high-resolution training tiles with their statistics."""
    from components.aq_downscaling.kfp_runtime import preproc

    preproc(config, dataset, start_date, end_date, tiles)


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def aq_train(tiles: Input[Dataset], model: Output[Model], metrics: Output[Metrics], losses: Output[HTML],
             config: str, start_date: str, end_date: str, dataset: str = ""):
    """aqgan-train --model srgan: Wasserstein GAN with gradient penalty on the tiles of a time range."""
    from components.aq_downscaling.kfp_runtime import train

    train(config, dataset, start_date, end_date, tiles, model, metrics, losses)


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def aq_generate(model: Input[Model], ensemble: Output[Dataset], quicklook: Output[HTML], config: str,
                start_date: str, end_date: str, dataset: str = "", members: int = 0):
    """aqgan-generate --model srgan: ensemble members per time step -> CF netCDF and point CSV."""
    from components.aq_downscaling.kfp_runtime import generate

    generate(config, dataset, start_date, end_date, members, model, ensemble, quicklook)


@dsl.component(base_image=ML_IMAGE, install_kfp_package=False)
def aq_evaluate(ensemble: Input[Dataset], metrics: Output[Metrics], report: Output[HTML], config: str,
                dataset: str = ""):
    """Scores of the ensemble against the CAMS European truth and the bilinear and Lanczos baselines."""
    from components.aq_downscaling.kfp_runtime import evaluate

    evaluate(config, dataset, ensemble, metrics, report)
