"""The network: a ResNet-50 encoder (the standard layout, any number of bands), the U-Net
output shape, batch-norm folding, losses and augmentation."""

import numpy as np
import pytest
import torch

from components.common.errors import ServiceError
from components.s2_patch_classifier import augment
from components.s2_patch_classifier.losses import cross_entropy, focal_dice, focal_loss, soft_dice
from components.s2_patch_classifier.model import (ENCODER_BLOCKS, Arch, ResNetEncoder, build, fold_batchnorm,
                                                   index_positions, parameter_count)

RESNET50_WITHOUT_FC = 23_508_032  # torchvision's resnet50 (25,557,032) less its 2048 x 1000 + 1000 classifier


def test_encoder_is_resnet50():
    enc = ResNetEncoder(3, "resnet50", 64)
    assert parameter_count(enc) == RESNET50_WITHOUT_FC
    assert [len(s) for s in (enc.layer1, enc.layer2, enc.layer3, enc.layer4)] == list(ENCODER_BLOCKS["resnet50"])
    assert enc.channels == (64, 256, 512, 1024, 2048)
    # 13 bands: only the stem differs
    assert parameter_count(ResNetEncoder(13, "resnet50", 64)) == RESNET50_WITHOUT_FC + 10 * 64 * 7 * 7


@pytest.mark.parametrize("bands, classes, size", [(1, 2, 64), (5, 3, 64), (13, 11, 96)])
def test_unet_any_band_count(bands, classes, size):
    model = build(Arch(bands, classes, "resnet14", 8)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, bands, size, size) * 3000)
    assert out.shape == (2, classes, size, size) and torch.isfinite(out).all()


def test_strides_of_the_features():
    feats = ResNetEncoder(4, "resnet14", 8)(torch.rand(1, 4, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]


def test_normalise_and_nan():
    model = build(Arch(2, 2, "resnet14", 8))
    model.normalise.set_stats([0, 0], [100, 10], [50, 5], [10, 2])
    x = torch.tensor([[[[200.0]], [[float("nan")]]]])
    y = model.normalise(x)
    assert y[0, 0, 0, 0] == pytest.approx(5.0) and y[0, 1, 0, 0] == 0


def test_indices_are_normalised_differences_of_raw_values():
    bands = ["B2", "B3", "B4", "B8", "B11"]
    arch = Arch(5, 2, "resnet14", 8, index_positions(["NDWI", "NDBI"], bands))
    assert arch.indices == ((1, 3), (4, 3)) and arch.channels == 7
    assert Arch(**arch.as_dict()) == arch and "indices" not in Arch(5, 2).as_dict()
    model = build(arch)
    model.normalise.set_stats([0] * 5, [1000] * 5, [0] * 5, [1] * 5)  # clipping must not reach the indices
    x = torch.tensor([[3000.0, 3000.0, 0.0, 1000.0, 0.0]]).view(1, 5, 1, 1).repeat(2, 1, 1, 1)
    x[1, 3] = float("nan")  # no data: the index is 0, not NaN
    y = model.normalise(x)
    assert y.shape == (2, 7, 1, 1)
    assert y[0, 5, 0, 0] == pytest.approx(0.5) and y[0, 6, 0, 0] == pytest.approx(-1.0)
    assert y[1, 5, 0, 0] == 0 and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="index NDBI needs band\\(s\\) B11, not among B2,B3,B4,B8"):
        index_positions(["NDBI"], bands[:4])


def test_folded_batchnorm_gives_the_same_output():
    torch.manual_seed(0)
    model = build(Arch(3, 2, "resnet14", 8))
    for m in model.modules():  # non-trivial statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        folded = fold_batchnorm(model)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(ref, folded, atol=1e-4)


def test_losses():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    target[0, 0, :] = 255  # ignored
    assert focal_loss(logits, target, gamma=0.0) == pytest.approx(float(cross_entropy(logits, target)), rel=1e-5)
    assert focal_loss(logits, target) < cross_entropy(logits, target)
    confident = torch.zeros(1, 2, 4, 4)
    confident[:, 1] = 10.0
    assert focal_loss(confident, torch.ones(1, 4, 4, dtype=torch.long)) < 1e-6


def test_balanced_focal_loss_weighs_foreground_by_alpha():
    # one ship pixel at p = 0.2 and one sea pixel at p(sea) = 0.8: -(1 - p)^2 log p each
    p_ship = torch.tensor(0.2)
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1] = torch.log(p_ship / (1 - p_ship))  # p(ship) = 0.2 at both pixels
    target = torch.tensor([[[1, 0]]])
    term = float(-(0.8 ** 2) * torch.log(p_ship))   # the missed ship
    easy = float(-(0.2 ** 2) * torch.log(torch.tensor(0.8)))  # the sea, well classified
    assert float(focal_loss(logits, target)) == pytest.approx((term + easy) / 2, rel=1e-5)
    assert float(focal_loss(logits, target, alpha=0.75)) == pytest.approx((0.75 * term + 0.25 * easy) / 2, rel=1e-5)
    ignored = torch.tensor([[[1, 255]]])  # no data weighs nothing, whatever alpha gives the background
    assert float(focal_loss(logits, ignored, alpha=0.75)) == pytest.approx(0.75 * term, rel=1e-5)
    assert float(focal_dice(logits, target, alpha=0.75)) == pytest.approx(
        float(focal_loss(logits, target, alpha=0.75) + soft_dice(logits, target)), rel=1e-6)


def test_training_with_a_balanced_focal_loss_equals_the_plain_loop_with_it(tmp_path, capsys):
    from components.s2_patch_classifier.train import train

    from .fixtures import trains_and_records
    from .test_training_loop import _cfg, _patches, _plain_loop

    ps = _patches()
    cfg = _cfg(criterion="focal_loss", focal_alpha=0.75)
    res = train(ps, cfg)
    _, losses, _ = _plain_loop(ps, cfg)
    assert [h["loss"] for h in res.history] == losses
    assert [h["loss"] for h in train(ps, _cfg(criterion="focal_loss")).history] != losses
    with pytest.raises(ServiceError, match="--focal_alpha 0.75: weighs a focal loss, not cross_entropy"):
        train(ps, _cfg(focal_alpha=0.75))
    trains_and_records(tmp_path, capsys, "focal_alpha", "0.75", "1.5", extra=("-criterion", "focal_loss"))


def test_soft_dice_weighs_a_small_object_like_its_surroundings():
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[0, 4:7, 4:8] = 1    # a 12-pixel ship among 500 pixels of sea
    target[1, :, :3] = 255     # no data: ignored whatever the logits say
    right = torch.where(target == 1, 8.0, -8.0)
    logits = torch.stack([-right, right], 1)
    assert float(soft_dice(logits, target)) < 0.01
    missed = logits.clone()
    missed[0, :, 4:7, 4:8] = missed[0, :, 4:7, 4:8].flip(0)   # the ship called sea: 12 of 500 pixels
    assert float(soft_dice(missed, target)) > 0.9 and float(cross_entropy(missed, target)) < 0.5
    noisy = logits.clone()
    noisy[1, 1, :, :3] = 8.0   # "ship" where there is no data
    assert float(soft_dice(noisy, target)) == pytest.approx(float(soft_dice(logits, target)), abs=1e-6)
    assert float(focal_dice(missed, target)) == pytest.approx(
        float(focal_loss(missed, target) + soft_dice(missed, target)), rel=1e-6)


def test_augmentation_moves_image_and_labels_together():
    gen = torch.Generator().manual_seed(1)
    x = torch.arange(2 * 2 * 8 * 8, dtype=torch.float32).reshape(2, 2, 8, 8)
    y = x[:, 0].long()
    xa, ya = augment.geometric(x, y, gen)
    assert torch.equal(xa[:, 0].long(), ya)
    assert sorted(xa[0, 0].flatten().tolist()) == sorted(x[0, 0].flatten().tolist())
    xr = augment.radiometric(x, gen)
    assert xr.shape == x.shape and not torch.equal(xr, x)
    assert np.allclose((xr / x.clamp(min=1)).mean().item(), 1.0, atol=0.2)
