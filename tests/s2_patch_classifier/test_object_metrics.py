"""Object-level ship scores: one-to-one matching of predicted components and annotated ships."""

import numpy as np

from components.s2_patch_classifier.metrics import object_summary, objects


def _ships():
    truth = np.zeros((20, 30), np.int32)
    truth[2:5, 2:8] = 1
    truth[2:5, 9:15] = 2     # moored beside ship 1: a separate instance
    truth[2:5, 16:22] = 3
    truth[12:16, 3:9] = 4
    truth[12:16, 20:26] = 5
    return truth


def test_a_component_over_three_ships_is_one_match():
    truth = _ships()
    pred = np.zeros(truth.shape, bool)
    pred[1:6, 1:23] = True   # one blob over ships 1-3
    pred[13:15, 4:6] = True  # ship 4, split in two components
    pred[13:15, 7:9] = True
    pred[8, 28] = True       # a speck on open water
    c = objects(pred, truth)
    assert (c["true_objects"], c["predicted_objects"], c["tp"], c["fp"], c["fn"], c["merged"]) == (5, 4, 2, 2, 3, 1)
    s = object_summary([c])
    assert s["object_precision"] == 0.5 and s["object_recall"] == 0.4


def test_matching_prefers_more_pairs_to_more_overlap():
    truth = np.zeros((10, 20), np.int32)
    truth[2:6, 2:8] = 1
    truth[2:6, 9:12] = 2
    pred = np.zeros(truth.shape, bool)
    pred[2:6, 2:10] = True   # A: all of ship 1 and a column of ship 2
    pred[2:6, 11:14] = True  # B: one column of ship 2 only
    c = objects(pred, truth)
    assert (c["tp"], c["fp"], c["fn"]) == (2, 0, 0)


def test_boolean_truth_uses_its_components_and_diagonals_connect():
    truth = np.zeros((8, 8), bool)
    truth[1:3, 1:3] = True
    truth[5:7, 5:7] = True
    pred = np.zeros((8, 8), bool)
    pred[1, 1] = pred[2, 2] = pred[3, 3] = True  # one component by 8-connectivity
    c = objects(pred, truth)
    assert (c["predicted_objects"], c["tp"], c["fn"]) == (1, 1, 1)
    assert objects(np.zeros((8, 8), bool), truth)["tp"] == 0
