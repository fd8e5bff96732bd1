"""MoCo views made for the whole batch at once equal the per-sample operations they replace:
torch's own interpolation of each crop, and a Gaussian blur of each sample with its own sigma."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from components.s2_patch_classifier.pretrain import blur, blur_kernels, crop_boxes, crop_resize, pretrain, view


def _one_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian of radius round(2 sigma), reflect-padded: one sample at a time."""
    r = max(1, int(round(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _inside(size: int, p: int = 32) -> torch.Tensor:
    at = (torch.arange(p) + 0.5) * size / p - 0.5  # interpolate's sample points in the crop
    return (at >= 0) & (at <= size - 1)


def _batch(n=6, c=3, p=16):
    return torch.randn(n, c, p, p, generator=torch.Generator().manual_seed(0))


def test_each_sample_is_blurred_with_its_own_sigma():
    x = _batch()
    sigma = torch.tensor([0.1, 0.4, 0.75, 1.2, 2.0, 0.0])
    out = blur(x, blur_kernels(sigma))
    for i, s in enumerate(sigma.tolist()):
        want = x[i:i + 1] if s == 0 else _one_blur(x[i:i + 1], s)
        torch.testing.assert_close(out[i:i + 1], want, atol=1e-5, rtol=1e-5)


def test_crops_are_resampled_like_interpolate():
    x = _batch(p=32)
    boxes = torch.tensor([[0, 0, 32, 32], [3, 5, 20, 14], [10, 0, 22, 30], [0, 17, 4, 15], [8, 8, 16, 16],
                          [20, 1, 12, 31]], dtype=torch.float32)
    out = crop_resize(x, boxes)
    torch.testing.assert_close(out[0], x[0], atol=1e-5, rtol=0)  # the whole patch: unchanged
    for i, (y0, x0, h, w) in enumerate(boxes.int().tolist()):
        want = F.interpolate(x[i:i + 1, :, y0:y0 + h, x0:x0 + w], size=(32, 32), mode="bilinear", align_corners=False)
        # interpolate clamps where its sample points fall outside the crop (upsampled edges), the batched
        # crop reads the pixels beyond it there: compare where the points lie within the crop
        rows, cols = _inside(h), _inside(w)
        torch.testing.assert_close(out[i][:, rows][:, :, cols], want[0][:, rows][:, :, cols], atol=1e-5, rtol=1e-5)
        assert rows.sum() >= 24 and cols.sum() >= 24  # most of the patch is compared


def test_crop_boxes_stay_inside_the_patch():
    boxes = crop_boxes(2000, 64, torch.Generator().manual_seed(1))
    y0, x0, h, w = boxes.unbind(1)
    assert bool(((h >= 4) & (w >= 4) & (y0 >= 0) & (x0 >= 0) & (y0 + h <= 64) & (x0 + w <= 64)).all())
    area = (h * w / 64 ** 2).numpy()
    assert 0.25 < area.min() and area.max() <= 1.0 and np.ptp(area) > 0.5


def test_views_differ_and_repeat_with_the_seed():
    x = _batch(n=8, c=4, p=32)
    a = view(x, torch.Generator().manual_seed(3))
    b = view(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert not torch.allclose(a, view(x, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("batch_size", [2, 5])
def test_pretraining_repeats_with_its_seed(batch_size):
    rng = np.random.default_rng(0)
    images = rng.normal(1000, 200, (10, 3, 32, 32)).astype(np.float32)
    stats = {"low": [0.0] * 3, "high": [3000.0] * 3, "mean": [1000.0] * 3, "std": [200.0] * 3}
    kw = dict(encoder="resnet14", width=8, epochs=2, batch_size=batch_size, lr=1e-3, device=torch.device("cpu"))
    enc_a, hist_a = pretrain(images, stats, **kw)
    enc_b, hist_b = pretrain(images, stats, **kw)
    assert [h["loss"] for h in hist_a] == [h["loss"] for h in hist_b] and np.isfinite(hist_a[-1]["loss"])
    for (name, a), b in zip(enc_a.state_dict().items(), enc_b.state_dict().values()):
        assert torch.equal(a, b), name
