"""Loss weights along the water line (``--shore_weight``) and the start at a prior
(``--head_prior``): the kernel's values, their use in training, and the parameters' checks
(``--seed_threshold``'s among them; its prediction is tested in test_predict)."""

import numpy as np
import pytest
import torch

from components.common.errors import InvalidParameter, ServiceError
from components.s2_patch_classifier.shore_weights import SHIP_CLEAR, SHORE_HALF, band_positions, shore_weights

GREEN, NIR = 1, 3  # positions of B3 and B8 in the test bands B2, B3, B4, B8


def harbour() -> tuple[np.ndarray, np.ndarray]:
    """One patch (1, 4, 24, 32): water (B3 > B8) left of column 16, land right of it; a ship far
    out in the water and one moored against the quay; a no-data corner on land."""
    img = np.full((1, 4, 24, 32), 1000.0, np.float32)
    img[0, NIR, :, :16] = 300.0          # water: the near infrared dark
    img[0, NIR, :, 16:] = 2500.0         # land
    lab = np.zeros((1, 24, 32), np.uint8)
    lab[0, 3:6, 4:7] = 1                 # at sea: no shore near it
    lab[0, 14:18, 12:16] = 1             # moored: its hull meets the quay
    img[0, NIR, 14:18, 12:16] = 2500.0   # a hull is bright in the near infrared
    img[0, :, 20:, 28:] = np.nan         # no data: not water
    lab[0, 20:, 28:] = 255
    return img, lab


def test_the_background_along_the_water_line_weighs_one_plus_w_away_from_ships():
    img, lab = harbour()
    w = shore_weights(img, lab, 5.0, GREEN, NIR)[0]
    assert w.dtype == np.float32 and set(np.unique(w)) == {1.0, 6.0}
    # far from the ships the shore is the columns within SHORE_HALF px of the line
    np.testing.assert_array_equal(w[0], [6.0 if 16 - SHORE_HALF <= c < 16 + SHORE_HALF else 1.0 for c in range(32)])
    assert (w[lab[0] == 1] == 1).all()                       # objects are not background
    assert (w[3 - SHIP_CLEAR:6 + SHIP_CLEAR, 4 - SHIP_CLEAR:7 + SHIP_CLEAR] == 1).all()  # no shore at sea
    assert (w[13:19, 14:18] == 1).all()                      # the quay beside the moored hull keeps 1
    assert (w[lab[0] == 255] == 1).all()                     # ignored pixels are not background
    assert (shore_weights(img, lab, 0.0, GREEN, NIR) == 1).all()


@pytest.mark.parametrize("half", [1, 4])
def test_the_band_reaches_half_px_on_each_side_of_the_water_line(half):
    img, lab = harbour()
    w = shore_weights(img, lab, 5.0, GREEN, NIR, half)[0]
    np.testing.assert_array_equal(w[0], [6.0 if 16 - half <= c < 16 + half else 1.0 for c in range(32)])


def test_a_band_under_one_px_is_refused():
    img, lab = harbour()  # scipy would dilate zero iterations "until nothing changes": all the background
    with pytest.raises(ValueError, match="shore band of 0 px"):
        shore_weights(img, lab, 5.0, GREEN, NIR, 0)


def test_band_positions_need_green_and_near_infrared():
    assert band_positions(("B2", "B3", "B4", "B8")) == (GREEN, NIR)
    assert band_positions(("B2", "B4", "B8")) is None


def _shore_patches():
    from .test_training_loop import _patches

    ps = _patches()
    ps.images[:, NIR, :, :16] = 200.0    # water on the left of every patch, land on the right
    ps.images[:, NIR, :, 16:] = 3000.0
    return ps


def test_training_batches_carry_the_shore_weights_once_per_patch(monkeypatch):
    from components.s2_patch_classifier import train as trainmod

    ps = _shore_patches()
    ps.labels[::2, 8:16, 23:28] = 1                          # a second ship: gap weights too
    calls = []
    monkeypatch.setattr(trainmod, "shore_weights", lambda *a: calls.append(1) or shore_weights(*a))
    batches = trainmod.Batches(ps, torch.device("cpu"), 10.0, (5.0, GREEN, NIR))
    idx = np.array([3, 0, 2, 0])
    _, y, w = batches.training(idx)
    rows = np.sort(idx)
    gap = trainmod.gap_weights(ps.labels[rows], 10.0)
    shore = shore_weights(ps.images[rows], ps.labels[rows], 5.0, GREEN, NIR)
    assert (shore > 1).any() and (gap > 1).any()
    assert torch.equal(w, torch.from_numpy(gap + shore - 1))
    first = len(calls)
    again = batches.training(np.array([2, 3]))[2]
    assert len(calls) == first                               # drawn before: not recomputed
    assert torch.equal(again, w[2:])


def test_shifted_windows_of_a_real_port_carry_their_own_shore_weights(tmp_path):
    from components.s2_patch_classifier.data import find_tiles
    from components.s2_patch_classifier.patches import extract
    from components.s2_patch_classifier.shifts import Shifts
    from components.s2_patch_classifier.train import Batches

    from .fixtures import port_crop

    (tile,) = find_tiles(port_crop(tmp_path))
    ps = extract([tile], tmp_path / "p", (), 64, (1,), False)
    green, nir = band_positions(ps.bands)
    idx = np.repeat(np.arange(len(ps)), 4)
    x, y, w = Batches(ps, torch.device("cpu"), 0.0, (5.0, green, nir)).training(
        idx, Shifts(ps, np.arange(len(ps)), 32, np.random.default_rng(3)))
    expect = shore_weights(x.numpy(), y.numpy().astype(np.uint8), 5.0, green, nir)
    assert torch.equal(w, torch.from_numpy(expect))
    assert 0.02 < (expect > 1).mean() < 0.5                  # the port's shores, not the whole window


def test_training_with_shore_weights_changes_the_losses_and_needs_green_and_near_infrared():
    from components.s2_patch_classifier.train import train

    from .test_training_loop import _cfg

    ps = _shore_patches()
    plain = train(ps, _cfg(epochs=1))
    weighted = train(ps, _cfg(epochs=1, shore_weight=5.0))
    assert weighted.history[0]["loss"] > plain.history[0]["loss"]
    wider = train(ps, _cfg(epochs=1, shore_weight=5.0, shore_half=4))  # more shore pixels weigh 1 + w
    assert wider.history[0]["loss"] > weighted.history[0]["loss"]
    ps.index["bands"] = ["B2", "B3", "B4", "B11"]
    with pytest.raises(ServiceError, match="shore_weight.*B3 and B8.*B2, B3, B4, B11"):
        train(ps, _cfg(epochs=1, shore_weight=5.0))


def test_the_head_starts_at_the_prior():
    from components.s2_patch_classifier.train import make_model

    from .test_training_loop import _cfg, _patches

    ps = _patches()
    x = torch.from_numpy(np.nan_to_num(ps.images[:4], nan=1000.0))
    for prior, low, high in ((0.01, 0.005, 0.02), (0.0, 0.2, 0.8)):
        torch.manual_seed(0)
        model = make_model(ps, _cfg(head_prior=prior)).eval()
        with torch.no_grad():
            ship = torch.softmax(model(x), 1)[:, 1].mean().item()
        assert low < ship < high, (prior, ship)


def test_the_service_trains_with_shore_weights_and_a_prior_and_records_them(tmp_path, capsys):
    from .fixtures import trains_and_records

    trains_and_records(tmp_path, capsys, "shore_weight", "5", "-1", extra=("--head_prior", "0.01"))
    trains_and_records(tmp_path / "prior", capsys, "head_prior", "0.01", "0.6")


@pytest.mark.parametrize("args, name", [
    ({"shore_weight": 5.0, "bands": ("B2", "B4", "B8")}, "shore_weight"),
    ({"seed_threshold": 0.2, "grow_threshold": 0.25}, "seed_threshold"),
])
def test_parameters_that_cannot_work_together_are_refused(args, name):
    from components.s2_patch_classifier.params import S2PatchClassifierParams

    with pytest.raises(InvalidParameter, match=name):
        S2PatchClassifierParams(action="train", **args)
