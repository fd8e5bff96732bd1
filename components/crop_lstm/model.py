"""The crop-type LSTM: raw reflectance time series in, class logits out.

Input normalisation is part of the network (per-band mean and standard deviation of the training
set, stored as buffers), so the model, its ``.h5`` file and its ONNX export all take the values as
they are in ``train.npy`` and in the monthly composites (reflectance x 10000, 0 = no observation).
A missing observation (0) is fed to the LSTM as the band mean (0 after normalisation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network before loading its weights."""

    n_features: int
    n_timesteps: int
    n_classes: int
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.2
    bidirectional: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in ("n_features", "n_timesteps", "n_classes") if n not in d)
        if missing:
            raise KeyError(", ".join(missing))
        return cls(**{k: v for k, v in d.items() if k in names})


class CropLSTM(nn.Module):
    """Normalisation -> stacked LSTM -> last hidden state -> dropout -> linear classifier."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("mean", torch.zeros(c.n_features))
        self.register_buffer("std", torch.ones(c.n_features))
        self.lstm = nn.LSTM(c.n_features, c.hidden_size, c.num_layers, batch_first=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0, bidirectional=c.bidirectional)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), c.n_classes)

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        z = torch.where(x == 0, torch.zeros_like(z), z)
        _, (h, _) = self.lstm(z)
        feat = torch.cat([h[-2], h[-1]], dim=1) if self.config.bidirectional else h[-1]
        return self.head(self.dropout(feat))


def normalisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over the observed (non-zero) values of [N, T, B]."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    observed = flat != 0
    count = np.maximum(observed.sum(axis=0), 1)
    mean = (flat * observed).sum(axis=0) / count
    var = (((flat - mean) * observed) ** 2).sum(axis=0) / count
    std = np.sqrt(var)
    std = np.where(std > 1e-6, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


@torch.no_grad()
def predict_logits(model: CropLSTM, x: np.ndarray, batch: int = 8192, device: str | torch.device = "cpu") -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32)).to(device)
        out.append(model(xb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.n_classes), np.float32)
