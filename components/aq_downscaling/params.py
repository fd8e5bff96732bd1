"""Parameters of ``aqgan-predict`` as a service with declared parameters (the AI4EU Experiments
entry); the input netCDF and the model file are its inputs."""

from __future__ import annotations

from dataclasses import dataclass

from components.common.params import ServiceParams, param

from .config import MAX_ENSEMBLE, MAX_SEED


@dataclass(frozen=True)
class PredictParams(ServiceParams):
    members: int = param(0, "Ensemble size (0: the model's configured outputs.ensemble_size)", minimum=0,
                         maximum=MAX_ENSEMBLE)
    seed: int = param(0, "Noise seed", minimum=0, maximum=MAX_SEED)
