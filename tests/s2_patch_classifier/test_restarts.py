"""Networks that do not take off (``--restarts``): one whose validation foreground IoU is still 0
after a third of the epochs starts again from another seed, up to the given number of times; one
that takes off trains exactly as without the rule."""

import logging

import torch

from components.s2_patch_classifier.train import RESTART_SEED, train

from .test_training_loop import _cfg, _patches


def test_a_network_that_never_takes_off_starts_again_from_other_seeds(caplog):
    ps = _patches()
    cfg = _cfg(epochs=3, lr=0.0, head_prior=0.01, val_fraction=0.0, restarts=2, members=2, seed=5)
    with caplog.at_level(logging.WARNING):
        res = train(ps, cfg)  # no step moves a weight: ship pixels stay at 0.01, IoU 0
    members = res.metrics["members"]
    assert [m["restarts"] for m in members] == [2, 2]
    assert [m["seed"] for m in members] == [5 + 2 * RESTART_SEED, 6 + 2 * RESTART_SEED]
    assert [m["epochs_run"] for m in members] == [3, 3]          # the last try runs every epoch
    restarts = [r.getMessage() for r in caplog.records if "did not take off" in r.getMessage()]
    assert len(restarts) == 4 and "after 1 epochs" in restarts[0] and f"seed {5 + RESTART_SEED}" in restarts[0]
    assert train(ps, _cfg(epochs=3, lr=0.0, head_prior=0.01, val_fraction=0.0)).metrics["restarts"] == 0


def test_the_time_budget_holds_for_a_network_and_its_restarts():
    ps = _patches()
    cfg = _cfg(epochs=3, lr=0.0, head_prior=0.01, val_fraction=0.0, restarts=2, members=2,
               max_seconds=1e-6)
    members = train(ps, cfg).metrics["members"]  # the budget is spent in the first epoch
    assert [(m["restarts"], m["epochs_run"]) for m in members] == [(0, 1), (0, 1)]


def test_a_network_that_takes_off_trains_as_without_restarts():
    ps = _patches()
    once = train(ps, _cfg(epochs=3, val_fraction=0.0, restarts=2))
    plain = train(ps, _cfg(epochs=3, val_fraction=0.0))
    assert once.metrics["restarts"] == 0 and once.metrics["per_class"]["1"]["iou"] > 0
    assert [h["loss"] for h in once.history] == [h["loss"] for h in plain.history]
    for a, b in zip(once.model.state_dict().values(), plain.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_service_takes_restarts_and_records_them(tmp_path, capsys):
    from .fixtures import trains_and_records

    trains_and_records(tmp_path, capsys, "restarts", "2", "-1")
