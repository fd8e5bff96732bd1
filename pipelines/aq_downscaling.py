"""``aq_downscaling``: probabilistic downscaling of CAMS air quality, from input files to scores.

preproc (tiles of the training range) -> train (on a GPU node, through ``pipelines.gpu.on_gpu``)
-> generate (ensemble over the test range) -> evaluate (CRPS, RMSE, rank histogram,
spread/skill, spectra against bilinear and Lanczos, shown in the Kubeflow UI as metrics and an
HTML report). ``config`` is the YAML text of the aqgan configuration (absolute or s3:// paths).
"""

from kfp import dsl

from components.aq_downscaling.component import aq_evaluate, aq_generate, aq_preproc, aq_train
from pipelines.cluster import step
from pipelines.gpu import on_gpu


@dsl.pipeline(name="aq-downscaling", description="CAMS air-quality downscaling with a Wasserstein SRGAN: "
              "preproc -> train (GPU) -> generate ensemble -> evaluate against bilinear and Lanczos.")
def aq_downscaling(config: str, train_start: str, train_end: str, test_start: str, test_end: str,
                   dataset: str = "", members: int = 0):
    pre = aq_preproc(config=config, dataset=dataset, start_date=train_start, end_date=train_end)
    step(pre, "aqgan-preproc", cpu="2", memory=("4Gi", "16Gi"))
    train = aq_train(tiles=pre.outputs["tiles"], config=config, dataset=dataset, start_date=train_start,
                     end_date=train_end)
    on_gpu(step(train, "aqgan-train", memory=("8Gi", "32Gi")))
    gen = aq_generate(model=train.outputs["model"], config=config, dataset=dataset, start_date=test_start,
                      end_date=test_end, members=members)
    step(gen, "aqgan-generate", cpu="2", memory=("4Gi", "16Gi"))
    ev = aq_evaluate(ensemble=gen.outputs["ensemble"], config=config, dataset=dataset)
    step(ev, "aqgan-evaluate", cpu="2", memory=("2Gi", "8Gi"))
