"""Tests of the 3D tracking metrics (mctrack.evaluate.evaluate_3d_tracking, unassociated_fraction)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mctrack.errors import InputError
from mctrack.evaluate import evaluate_3d_tracking, unassociated_fraction, write_metrics


def gt_two_targets(n=20):
    """Targets 1 and 2, 0.5 m apart, moving 1 cm per frame along x."""
    rows = [(f, k, 0.01 * f, 0.5 * k, 0.2) for f in range(n) for k in (1, 2)]
    return pd.DataFrame(rows, columns=["frame", "target_id", "x", "y", "z"])


def as_points(gt, ids, offset=(0.0, 0.0, 0.0)):
    p = gt.rename(columns={"target_id": "global_id"}).copy()
    p["global_id"] = ids
    p[["x", "y", "z"]] += np.asarray(offset)
    return p


def test_perfect_tracks_score_one():
    gt = gt_two_targets()
    m = evaluate_3d_tracking(as_points(gt, gt["target_id"] + 10), gt, radius=0.02)
    assert m["IDF1"] == 1.0 and m["MOTA"] == 1.0 and m["IDSW"] == 0
    assert m["HOTA"] == pytest.approx(1.0) and m["n_tracks_3d"] == 2 and m["FP"] == m["FN"] == 0


def test_swap_gives_one_idsw_per_target_and_known_idf1():
    """Ids swap at frame 10 of 20: CLEAR counts 2 switches, IDF1 = (10 + 10) / 40 per best mapping."""
    gt = gt_two_targets(20)
    ids = np.where(gt["frame"] < 10, gt["target_id"], 3 - gt["target_id"])
    m = evaluate_3d_tracking(as_points(gt, ids), gt, radius=0.02)
    assert m["IDSW"] == 2
    assert m["IDF1"] == pytest.approx(0.5)
    assert m["MOTA"] == pytest.approx(1 - 2 / 40)


def test_radius_decides_a_match():
    """A constant 1.45 cm offset (similarity 1 - 1.45 / 4 at 2 cm) matches at a 2 cm radius, misses at 1 cm."""
    gt = gt_two_targets()
    pts = as_points(gt, gt["target_id"], offset=(0.0145, 0.0, 0.0))
    near, far = evaluate_3d_tracking(pts, gt, 0.02), evaluate_3d_tracking(pts, gt, 0.01)
    assert near["IDF1"] == 1.0 and near["MOTP"] == pytest.approx(0.6375)
    assert far["IDF1"] == 0.0 and far["FP"] == far["FN"] == 40
    # HOTA's alpha thresholds 0.05..0.95 on similarity 0.6375: all matched at 12 of 19 (0.05..0.60), none above
    assert near["HOTA"] == pytest.approx(12 / 19)
    assert far["HOTA"] == pytest.approx(5 / 19)  # similarity 0.275 at 1 cm: alphas 0.05..0.25


def test_missing_frames_and_extra_track():
    gt = gt_two_targets()
    pts = as_points(gt, gt["target_id"])
    pts = pts[~((pts["global_id"] == 2) & (pts["frame"] >= 15))]  # target 2 lost for 5 frames
    ghost = pd.DataFrame({"frame": [3], "global_id": [9], "x": [5.0], "y": [5.0], "z": [5.0]})
    m = evaluate_3d_tracking(pd.concat([pts, ghost]), gt, 0.02)
    assert (m["FN"], m["FP"], m["IDSW"], m["n_tracks_3d"]) == (5, 1, 0, 3)
    assert m["MOTA"] == pytest.approx(1 - 6 / 40)


def test_bad_radius_and_columns_raise():
    gt = gt_two_targets()
    with pytest.raises(InputError, match="match_distance_3d"):
        evaluate_3d_tracking(as_points(gt, gt["target_id"]), gt, 0.0)
    with pytest.raises(InputError, match="column 'global_id'"):
        evaluate_3d_tracking(gt, gt, 0.02)


def test_unassociated_fraction():
    tr = pd.DataFrame({"camera_id": ["a"] * 4 + ["b"] * 2 + ["c"] * 2, "track_id": [1, 1, 1, 2, 1, 1, 5, 5],
                       "frame_status": ["detected"] * 8})
    assoc = pd.DataFrame({"camera_id": ["a", "a", "b", "c"], "track_id": [1, 2, 1, 5], "global_id": [0, 1, 0, 2]})
    u = unassociated_fraction(tr, assoc)
    # tracklets a1+b1 linked (global 0); a2 and c5 alone
    assert u == {"unassociated_tracklets": 0.5, "unassociated_rows": 3 / 8, "n_tracklets": 4}


def test_write_metrics_is_strict_json(tmp_path):
    write_metrics({"tracking_3d": {"IDF1": float("nan"), "n": np.int64(3)}}, tmp_path / "m.json", tmp_path / "m.tsv")
    m = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert m["tracking_3d"] == {"IDF1": None, "n": 3}
    assert not math.isnan(m["tracking_3d"]["n"])


def test_std_ratio_reports_error_bar_calibration():
    """Points off by exactly their stated std along x (and 0 along y, z): ratio 1 in x, 0 in y and z;
    stating half the std gives 2 (overconfident)."""
    gt = gt_two_targets()
    pts = as_points(gt, gt["target_id"], offset=(0.005, 0.0, 0.0))
    pts[["std_x", "std_y", "std_z"]] = 0.005
    m = evaluate_3d_tracking(pts, gt, 0.02)
    assert (m["std_ratio_x"], m["std_ratio_y"], m["std_ratio_z"]) == (pytest.approx(1.0), 0.0, 0.0)
    pts["std_x"] = 0.0025
    assert evaluate_3d_tracking(pts, gt, 0.02)["std_ratio_x"] == pytest.approx(2.0)
    assert "std_ratio_x" not in evaluate_3d_tracking(pts.drop(columns=["std_x"]), gt, 0.02)
