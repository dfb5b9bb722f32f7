"""Tests of mctrack.evaluate: MOTChallenge GT reading and TrackEval-based 2D metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mctrack.errors import InputError
from mctrack.evaluate import box_iou, evaluate_2d, read_mot_gt
from mctrack.tables import TRACKLET2D


def gt_frame(rows) -> pd.DataFrame:
    """GT table (read_mot_gt layout) from (frame, id, x1, y1, x2, y2[, conf]) tuples."""
    rows = [r if len(r) == 7 else (*r, 1.0) for r in rows]
    df = pd.DataFrame(rows, columns=["frame", "id", "x1", "y1", "x2", "y2", "conf"])
    df["class_id"] = 1
    df["visibility"] = 1.0
    return df


def tracklets(rows, camera_id="cam0") -> pd.DataFrame:
    """TRACKLET2D from (frame, track_id, x1, y1, x2, y2[, status]) tuples."""
    rows = [r if len(r) == 7 else (*r, "detected") for r in rows]
    df = pd.DataFrame(rows, columns=["frame", "track_id", "x1", "y1", "x2", "y2", "frame_status"])
    df["camera_id"] = camera_id
    df["cx"] = (df.x1 + df.x2) / 2
    df["cy"] = (df.y1 + df.y2) / 2
    df["det_index"] = np.where(df.frame_status == "detected", 0, -1)
    df["confidence"] = np.where(df.frame_status == "detected", 0.9, np.nan)
    return TRACKLET2D.coerce(df)


def two_walkers(n=10):
    """Two well separated objects (ids 1, 2) moving right for n frames."""
    return [(f, k, 100.0 * k + 3 * f, 50.0, 100.0 * k + 3 * f + 40, 150.0) for f in range(n) for k in (1, 2)]


# ---------------------------------------------------------------------------
# read_mot_gt
# ---------------------------------------------------------------------------

def test_read_mot_gt_frame_base_and_boxes(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("1,7,10,20,30,40,1,1,0.5\n\n2,7,12,20,30,40,0,3,1.0,-1\n1,3,0,0,5,5\n")
    gt = read_mot_gt(p)
    assert gt.columns.tolist() == ["frame", "id", "x1", "y1", "x2", "y2", "conf", "class_id", "visibility"]
    assert gt.frame.tolist() == [0, 0, 1], "file frame 1 is session frame 0; sorted by (frame, id)"
    assert gt.id.tolist() == [3, 7, 7]
    r = gt.iloc[1]
    assert (r.x1, r.y1, r.x2, r.y2) == (9, 19, 39, 59), "1-based MOT pixels -> 0-based pixel-corner xyxy"
    assert gt.conf.tolist() == [1.0, 1.0, 0.0], "missing conf defaults to 1"
    assert gt.class_id.tolist() == [-1, 1, 3] and gt.visibility.tolist()[1:] == [0.5, 1.0]
    assert gt.x1.dtype == np.float32 and gt.frame.dtype == np.int64


@pytest.mark.parametrize("text, where", [
    ("1,1,10,20,30,40\n1,2,abc,20,30,40\n", "line 2, field 3 (bb_left)"),
    ("1,1,10,20\n", "line 1"),
    ("0,1,10,20,30,40\n", "line 1, field 1 (frame)"),
    ("1.5,1,10,20,30,40\n", "line 1, field 1 (frame)"),
    ("1,1,10,20,-3,40\n", "line 1, field 5 (bb_width)"),
    ("1,1,10,20,30,40\n2,1,10,20,30,40\n1,1,11,20,30,40\n", "line 3, field 2 (id)"),
])
def test_read_mot_gt_malformed(tmp_path, text, where):
    p = tmp_path / "gt.txt"
    p.write_text(text)
    with pytest.raises(InputError) as ei:
        read_mot_gt(p)
    assert str(p) in str(ei.value) and where in str(ei.value)


def test_read_mot_gt_missing(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_mot_gt(tmp_path / "nope.txt")


# ---------------------------------------------------------------------------
# evaluate_2d
# ---------------------------------------------------------------------------

def test_perfect_tracker_scores_one():
    rows = two_walkers()
    res = evaluate_2d(tracklets(rows), gt_frame(rows))
    m = res["cam0"]
    for key in ("HOTA", "DetA", "AssA", "IDF1", "MOTA"):
        assert m[key] == pytest.approx(1.0), key
    assert (m["IDSW"], m["FP"], m["FN"], m["n_gt_ids"], m["n_tracks"]) == (0, 0, 0, 2, 2)


def test_id_swap_halfway():
    # tracker ids swap at frame 5 of 10: each track covers each object for 5 frames.
    gt_rows = two_walkers()
    tr_rows = [(f, (k if f < 5 else 3 - k), *rest) for f, k, *rest in gt_rows]
    m = evaluate_2d(tracklets(tr_rows), gt_frame(gt_rows))["cam0"]
    # IDF1: best one-to-one id map keeps 5 of 10 frames per object -> IDTP 10, IDFP 10, IDFN 10 -> 0.5
    assert m["IDF1"] == pytest.approx(0.5)
    # CLEAR: every box matched, one switch per object -> MOTA = (20 - 2) / 20
    assert m["IDSW"] == 2 and m["MOTA"] == pytest.approx(0.9)
    # HOTA: DetA 1, every TP has association score 5 / (10 + 10 - 5) -> HOTA = sqrt(1/3)
    assert m["DetA"] == pytest.approx(1.0)
    assert m["AssA"] == pytest.approx(1 / 3)
    assert m["HOTA"] == pytest.approx(math.sqrt(1 / 3))


def test_ignored_gt_creates_no_false_positive():
    gt_rows = [(f, 1, 0.0, 0.0, 50.0, 100.0) for f in range(4)]
    gt_rows += [(f, 9, 300.0, 0.0, 350.0, 100.0, 0.0) for f in range(4)]   # conf 0: ignore region
    tr_rows = [(f, 1, 1.0, 0.0, 51.0, 100.0) for f in range(4)]
    tr_rows += [(f, 2, 302.0, 1.0, 352.0, 101.0) for f in range(4)]         # sits on the ignored box
    m = evaluate_2d(tracklets(tr_rows), gt_frame(gt_rows))["cam0"]
    assert m["FP"] == 0 and m["FN"] == 0 and m["MOTA"] == pytest.approx(1.0)
    assert m["n_gt_ids"] == 1 and m["n_tracks"] == 1
    # a box on nothing is still a false positive
    tr_rows.append((0, 3, 500.0, 0.0, 550.0, 100.0))
    m = evaluate_2d(tracklets(tr_rows), gt_frame(gt_rows))["cam0"]
    assert m["FP"] == 1 and m["n_tracks"] == 2


def test_include_coasted_modes():
    st = ["detected", "detected", "coasted", "coasted", "detected", "coasted", "coasted"]
    gt_rows = [(f, 1, 10.0, 10.0, 60.0, 110.0) for f in range(7)]
    tr_rows = [(f, 4, 10.0, 10.0, 60.0, 110.0, st[f]) for f in range(7)]
    gt = gt_frame(gt_rows)
    n = {mode: evaluate_2d(tracklets(tr_rows), gt, mode)["cam0"]["n_tracker_dets"]
         for mode in ("none", "bridged", "all")}
    assert n == {"none": 3, "bridged": 5, "all": 7}
    with pytest.raises(InputError, match="include_coasted"):
        evaluate_2d(tracklets(tr_rows), gt, "some")


def test_per_camera_results_and_errors():
    rows = two_walkers(6)
    tr = pd.concat([tracklets(rows, "a"), tracklets(rows[:6], "b")], ignore_index=True)
    gt = pd.concat([gt_frame(rows).assign(camera_id="a"), gt_frame(rows).assign(camera_id="b")])
    res = evaluate_2d(tr, gt)
    assert set(res) == {"a", "b"}
    assert res["a"]["IDF1"] == pytest.approx(1.0) and res["b"]["FN"] == 6
    assert evaluate_2d(tr, {"b": gt_frame(rows)})["b"] == res["b"]
    with pytest.raises(InputError, match="camera_id"):
        evaluate_2d(tr, gt_frame(rows))
    with pytest.raises(InputError, match="several rows"):
        evaluate_2d(pd.concat([tr, tr]), gt)
    empty = evaluate_2d(TRACKLET2D.empty(), {"a": gt_frame(rows)})["a"]
    assert empty["FN"] == len(rows) and empty["HOTA"] == 0.0 and empty["n_tracks"] == 0


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 10]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0], [0.0, 0.0]])


def test_matches_motmetrics_on_noisy_tracks():
    """IDF1 / MOTA / IDSW / FP / FN agree with py-motmetrics on a random case with swaps and misses."""
    import motmetrics as mm  # in the test extra: this cross-check must run, not skip
    rng = np.random.default_rng(3)
    gt_rows, tr_rows = [], []
    for f in range(40):
        for k in range(6):
            x, y = 60.0 * k + 2 * f, 100.0 + 10 * math.sin(f / 5 + k)
            gt_rows.append((f, k, x, y, x + 50, y + 120))
            if rng.random() < 0.85:
                j = rng.normal(0, 6, 4)
                tid = k if f < 20 or k > 2 else (k + 1) % 3     # swap among 0..2 at frame 20
                tr_rows.append((f, tid, x + j[0], y + j[1], x + 50 + j[2], y + 120 + j[3]))
        if rng.random() < 0.3:
            tr_rows.append((f, 99, 500.0, 10.0, 540.0, 90.0))    # clutter track
    gt, tr = gt_frame(gt_rows), tracklets(tr_rows)
    ours = evaluate_2d(tr, gt)["cam0"]
    acc = mm.MOTAccumulator(auto_id=True)
    for f in range(40):
        g, h = gt[gt.frame == f], tr[tr.frame == f]
        iou = box_iou(g[["x1", "y1", "x2", "y2"]].to_numpy(), h[["x1", "y1", "x2", "y2"]].to_numpy())
        acc.update(g.id.tolist(), h.track_id.tolist(), np.where(iou >= 0.5, 1 - iou, np.nan))
    ref = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches", "num_false_positives",
                                                    "num_misses"]).iloc[0]
    assert ours["IDF1"] == pytest.approx(ref["idf1"], abs=1e-9)
    assert ours["MOTA"] == pytest.approx(ref["mota"], abs=1e-9)
    assert (ours["IDSW"], ours["FP"], ours["FN"]) == (ref["num_switches"], ref["num_false_positives"],
                                                     ref["num_misses"])
    assert 0.3 < ours["IDF1"] < 0.95 and ours["IDSW"] > 0


def test_detection_recall_precision_and_merges():
    import pandas as pd

    from mctrack.evaluate import evaluate_detections
    from mctrack.tables import DETECTION

    gt = pd.DataFrame({"frame": [0, 0, 1], "id": [1, 2, 1], "x1": [0.0, 12.0, 0.0], "y1": [0.0, 0.0, 0.0],
                       "x2": [10.0, 22.0, 10.0], "y2": [10.0, 10.0, 10.0], "conf": [1.0, 1.0, 1.0]})
    # frame 0: one blob covering both targets (a merge, matches neither at IoU 0.5); frame 1: exact + a false positive
    det = DETECTION.coerce(pd.DataFrame({"camera_id": "c", "frame": [0, 1, 1], "det_index": [0, 0, 1],
                                         "x1": [0.0, 0.0, 50.0], "y1": [0.0, 0.0, 50.0], "x2": [22.0, 10.0, 60.0],
                                         "y2": [10.0, 10.0, 60.0], "confidence": 0.9, "class_id": 0}))
    m = evaluate_detections(det, {"c": gt})["c"]
    assert m["det_recall"] == 1 / 3 and m["det_precision"] == 1 / 3 and m["merged_detections"] == 1
