"""U-Net with a ResNet encoder, in plain PyTorch (no torchvision), for any number of bands.

The encoder is the ResNet-50 of He et al. (2016) with bottleneck blocks (1x1, 3x3, 1x1 convs,
expansion 4), laid out like the usual implementations (stem conv 7x7/2 + max-pool, four stages
of 3, 4, 6, 3 blocks at strides 4, 8, 16, 32, stride on the 3x3 conv). Two shallower members of
the same family (``resnet26``: 2, 2, 2, 2 blocks; ``resnet14``: 1, 1, 1, 1) and a base width
other than 64 serve small machines and tests; ``resnet50`` at width 64 is the default.

The decoder is a U-Net: five up-sampling steps (x2 nearest + two 3x3 conv-BN-ReLU) joined to the
encoder features at strides 16, 8, 4 and 2 and to a full-resolution feature map computed from the
input by a small conv block, so objects of a few pixels (ships at 10 m) keep their detail.

The model takes **raw band values**: its first layer is :class:`Normalise` (per-band clip and
z-score with the statistics of the training data, kept as buffers), so a saved PyTorch or ONNX
file needs nothing but the bands in the recorded order. Optional normalised-difference indices
(``Arch.indices``, e.g. NDWI) are computed there from the raw values and appended as channels
(ratios a first convolution cannot form; on the sen2ships ports they did not help, see the
README).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .params import INDICES

ENCODER_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet26": (2, 2, 2, 2), "resnet14": (1, 1, 1, 1)}
EXPANSION = 4
# Input height and width must be multiples of this (five halvings).
STRIDE = 32


@dataclass(frozen=True)
class Arch:
    """What is needed to rebuild a model: saved with every checkpoint."""

    in_channels: int
    num_classes: int
    encoder: str = "resnet50"
    width: int = 64
    indices: tuple[tuple[int, int], ...] = ()  # band positions (a, b) of each normalised difference

    def __post_init__(self):
        object.__setattr__(self, "indices", tuple((int(a), int(b)) for a, b in self.indices))

    @property
    def channels(self) -> int:
        """Channels after :class:`Normalise`: the bands, then the indices."""
        return self.in_channels + len(self.indices)

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.indices:
            d["indices"] = [list(pair) for pair in self.indices]
        else:  # files without indices keep the keys they always had
            del d["indices"]
        return d


def index_positions(names, bands) -> tuple[tuple[int, int], ...]:
    """Band positions of the named indices (:data:`INDICES`) in ``bands``; ValueError naming a
    missing band."""
    bands = list(bands)
    pairs = []
    for name in names:
        a, b = INDICES[name]
        missing = [x for x in (a, b) if x not in bands]
        if missing:
            raise ValueError(f"index {name} needs band(s) {', '.join(missing)}, not among {','.join(bands)}")
        pairs.append((bands.index(a), bands.index(b)))
    return tuple(pairs)


class Normalise(nn.Module):
    """``(clip(x, low, high) - mean) / std`` per band; NaN (no data) becomes 0 after scaling.
    ``indices`` (pairs of band positions) append ``(a - b) / (a + b)`` of the raw values, limited
    to [-1, 1] (0 where undefined)."""

    def __init__(self, channels: int, indices: tuple[tuple[int, int], ...] = ()):
        super().__init__()
        self.first = [a for a, _ in indices]
        self.second = [b for _, b in indices]
        for name, value in (("low", -1e30), ("high", 1e30), ("mean", 0.0), ("std", 1.0)):
            self.register_buffer(name, torch.full((1, channels, 1, 1), value))

    def set_stats(self, low, high, mean, std) -> None:
        for name, value in (("low", low), ("high", high), ("mean", mean), ("std", std)):
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.minimum(torch.maximum(x, self.low), self.high)
        z = torch.nan_to_num((z - self.mean) / self.std, nan=0.0)
        if not self.first:
            return z
        a, b = x[:, self.first], x[:, self.second]
        nd = torch.nan_to_num((a - b) / (a + b), nan=0.0, posinf=0.0, neginf=0.0).clamp(-1.0, 1.0)
        return torch.cat([z, nd], dim=1)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]


class Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * EXPANSION
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        # zero-init of the last BN of each residual branch (Goyal et al. 2017): each block
        # starts as the identity, which trains better from scratch
        nn.init.zeros_(self.bn3.weight)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


class ResNetEncoder(nn.Module):
    """ResNet trunk returning the feature maps at strides 2, 4, 8, 16 and 32."""

    def __init__(self, in_channels: int, encoder: str = "resnet50", width: int = 64):
        super().__init__()
        if encoder not in ENCODER_BLOCKS:
            raise ValueError(f"unknown encoder {encoder!r}")
        blocks = ENCODER_BLOCKS[encoder]
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], width
        for i, n in enumerate(blocks):
            planes = width * 2 ** i
            layer = [Bottleneck(cin, planes, 1 if i == 0 else 2)]
            cin = planes * EXPANSION
            layer += [Bottleneck(cin, planes, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels = (width, width * 4, width * 8, width * 16, width * 32)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x) -> list[torch.Tensor]:
        f1 = F.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f1, f2, f3, f4, f5]


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(*_conv_bn(cin + cskip, cout, 3), nn.ReLU(inplace=True),
                                  *_conv_bn(cout, cout, 3), nn.ReLU(inplace=True))

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    """U-Net over a ResNet encoder; logits at full resolution, (N, classes, H, W)."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        w = arch.width
        self.normalise = Normalise(arch.in_channels, arch.indices)
        self.encoder = ResNetEncoder(arch.channels, arch.encoder, w)
        c1, c2, c3, c4, c5 = self.encoder.channels
        dec = (w * 4, w * 2, w, w // 2, max(w // 4, 4))
        full = max(w // 4, 4)
        self.full_res = nn.Sequential(*_conv_bn(arch.channels, full, 3), nn.ReLU(inplace=True),
                                      *_conv_bn(full, full, 3), nn.ReLU(inplace=True))
        self.decoder = nn.ModuleList([
            DecoderBlock(c5, c4, dec[0]), DecoderBlock(dec[0], c3, dec[1]), DecoderBlock(dec[1], c2, dec[2]),
            DecoderBlock(dec[2], c1, dec[3]), DecoderBlock(dec[3], full, dec[4])])
        self.head = nn.Conv2d(dec[4], arch.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for raw band values."""
        return self.forward_normalised(self.normalise(x))

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for band values already normalised (training applies its jitter in between)."""
        f1, f2, f3, f4, f5 = self.encoder(x)
        skips = [f4, f3, f2, f1, self.full_res(x)]
        y = f5
        for block, skip in zip(self.decoder, skips):
            y = block(y, skip)
        return self.head(y)


class Ensemble(nn.Module):
    """U-Nets of one architecture (trained from different seeds) whose class probabilities are
    averaged. ``forward`` returns the log of the average: a softmax over it gives the average
    back, so whatever takes a U-Net's logits (evaluation, prediction, the ONNX export) takes an
    ensemble unchanged."""

    def __init__(self, members: list[UNet]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.arch = members[0].arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = sum(torch.softmax(m(x).float(), dim=1) for m in self.members)
        return torch.log((total / len(self.members)).clamp_min(1e-30))


def start_at_prior(model: UNet, foreground: float) -> None:
    """Set the head's bias so that each foreground class starts near probability ``foreground``
    (at most 1 / (2 x their number)) and the background (class 0) near the rest; the head's
    weights keep their small random start."""
    k = model.arch.num_classes
    p = min(foreground, 0.5 / max(k - 1, 1))
    with torch.no_grad():
        model.head.bias[0] = math.log(1 - (k - 1) * p)
        model.head.bias[1:] = math.log(p)


def networks(model: UNet | Ensemble) -> list[UNet]:
    """The networks of an ensemble, or the one network."""
    return list(getattr(model, "members", [model]))


def build(arch: Arch, members: int = 1) -> UNet | Ensemble:
    """One U-Net, or an ensemble of ``members`` of them."""
    return UNet(arch) if members == 1 else Ensemble([UNet(arch) for _ in range(members)])


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the convolution before it (in place; inference only)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        for i in range(1, 4):
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{i}", nn.Identity())
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
    return model
