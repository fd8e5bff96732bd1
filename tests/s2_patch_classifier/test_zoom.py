"""Scale augmentation: samples zoomed about their centre, labels and loss weights with the image."""

import math

import pytest
import torch

from components.s2_patch_classifier import augment
from components.s2_patch_classifier.losses import IGNORE


def _ship(n=3, size=32):
    """n samples: a bright 8 x 4 ship at the centre of dark water, its label, a no-data row."""
    x = torch.zeros(n, 2, size, size)
    y = torch.zeros(n, size, size, dtype=torch.long)
    x[:, :, 12:20, 14:18] = 1.0
    y[:, 12:20, 14:18] = 1
    y[:, 0] = IGNORE
    return x, y


def test_a_zoom_enlarges_or_shrinks_the_ship_about_the_centre():
    x, y = _ship()
    f = torch.tensor([1.0, 1.5, 1 / 1.5])
    ys = augment.zoomed(y.unsqueeze(1).float(), f, "nearest")[:, 0]
    xs = augment.zoomed(x, f, "bilinear")
    torch.testing.assert_close(xs[0], x[0])  # a factor of 1 leaves the sample as it was
    assert torch.equal(ys[0], y[0].float())
    areas = [(ys[i] == 1).sum().item() for i in range(3)]
    assert areas[0] == 32 and 60 <= areas[1] <= 84 and 10 <= areas[2] <= 18  # 32 x 1.5^2 = 72, 32 / 2.25 = 14
    rows, cols = torch.nonzero(ys[1] == 1, as_tuple=True)
    assert rows.float().mean().item() == pytest.approx(15.5, abs=0.5)  # still centred
    assert cols.float().mean().item() == pytest.approx(15.5, abs=0.5)
    assert (xs[1][0][ys[1] == 1] > 0.5).all()  # the image moved with its label


def test_zoom_factors_stay_within_the_jitter_on_a_log_scale():
    f = augment.zoom_factors(4000, 0.3, torch.Generator().manual_seed(0))
    assert f.min() >= 1 / 1.3 and f.max() <= 1.3
    assert abs(f.log().mean().item()) < 0.01  # as many enlarged as shrunk
    assert f.log().abs().max().item() == pytest.approx(math.log(1.3), abs=0.01)


def test_augment_zooms_labels_and_weights_alike_and_keeps_no_data():
    x, y = _ship(8)
    w = (y == 1).float() * 4 + 1  # weights that mark the ship
    xa, ya, wa = augment.augment(x, y, torch.Generator().manual_seed(1), w, scale_jitter=0.5)
    assert xa.shape == x.shape and ya.shape == y.shape and wa.shape == w.shape and ya.dtype == y.dtype
    assert set(ya.unique().tolist()) <= {0, 1, IGNORE}
    assert torch.equal(wa == 5, ya == 1)  # the weights followed the labels pixel for pixel
    areas = {(ya[i] == 1).sum().item() for i in range(8)}
    assert len(areas) > 1  # the samples were zoomed by different factors
    assert (ya == IGNORE).any()  # no-data pixels stay no data


def test_without_jitter_augment_draws_as_before():
    x, y = _ship(4)
    w = torch.rand(4, 32, 32)
    gen = torch.Generator().manual_seed(2)
    xg, yg = augment.geometric(torch.cat([x, w.unsqueeze(1)], 1), y, gen)
    expected = augment.radiometric(xg[:, :2], gen)
    xa, ya, wa = augment.augment(x, y, torch.Generator().manual_seed(2), w)
    assert torch.equal(xa, expected) and torch.equal(ya, yg) and torch.equal(wa, xg[:, 2])


def test_training_zooms_its_samples_when_asked():
    from components.s2_patch_classifier.train import train

    from .test_training_loop import _cfg, _patches

    ps = _patches()
    plain = train(ps, _cfg(data_aug=True, epochs=1)).history[0]["loss"]
    assert train(ps, _cfg(data_aug=True, epochs=1)).history[0]["loss"] == plain  # the runs themselves repeat
    assert train(ps, _cfg(data_aug=True, epochs=1, scale_jitter=0.3)).history[0]["loss"] != plain


def test_the_service_trains_with_zoomed_samples_and_records_the_jitter(tmp_path, capsys):
    from .fixtures import trains_and_records

    trains_and_records(tmp_path, capsys, "scale_jitter", "0.3", "1.5", extra=("-data_aug", "True"))
