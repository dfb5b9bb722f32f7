"""MOTChallenge reader/writer (mctrack.io.mot), det.txt checks at planning time, frame_offset in evaluation."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mctrack.errors import InputError
from mctrack.io.mot import read_mot, write_mot

# A hand-made det.txt: MOT pixels are 1-based, so bb_left 11 is 0-based pixel-corner x1 = 10.
DET_TXT = """\
1,-1,11,21,30,40,0.9
1,-1,101.5,51,20,60,0.3,2

3,-1,1,1,10,10,1,-1,-1,-1
"""


def test_read_hand_made_det_file(tmp_path):
    p = tmp_path / "det.txt"
    p.write_text(DET_TXT)
    d = read_mot(p, "det")
    assert d["frame"].tolist() == [0, 0, 2]
    np.testing.assert_array_equal(d[["x1", "y1", "x2", "y2"]].to_numpy(),
                                  [[10, 20, 40, 60], [100.5, 50, 120.5, 110], [0, 0, 10, 10]])
    np.testing.assert_allclose(d["conf"], [0.9, 0.3, 1.0], rtol=1e-6)
    assert d["class_id"].tolist() == [0, 2, 0], "class -1 (MOT world x) reads as class 0 in det files"
    assert d["line"].tolist() == [1, 2, 4]
    shifted = read_mot(p, "det", frame_offset=2)
    assert shifted["frame"].tolist() == [-2, -2, 0], "session frame = file frame - 1 - frame_offset"


def test_write_then_read_round_trip_and_exact_text(tmp_path):
    df = pd.DataFrame({"frame": [0, 4], "track_id": [7, 3], "x1": [10.0, 0.0], "y1": [20.0, 5.25],
                       "x2": [40.0, 12.5], "y2": [60.0, 30.0], "confidence": [0.75, np.nan]})
    out = tmp_path / "res.txt"
    write_mot(df, out, id_column="track_id", conf_column="confidence")
    assert out.read_text() == "1,7,11,21,30,40,0.75\n5,3,1,6.25,12.5,24.75,1\n"
    back = read_mot(out, "result")
    np.testing.assert_array_equal(back[["x1", "y1", "x2", "y2"]].to_numpy(), df[["x1", "y1", "x2", "y2"]].to_numpy())
    assert back["frame"].tolist() == [0, 4] and back["id"].tolist() == [7, 3]
    write_mot(df, out, id_column="track_id", frame_offset=3)
    assert read_mot(out, "result", frame_offset=3)["frame"].tolist() == [0, 4]


@pytest.mark.parametrize("text, where, what", [
    ("frame,id,bb_left,bb_top,bb_width,bb_height,conf\n1,-1,1,1,5,5,0.9\n", "line 1", "header"),
    ("1,-1,1,1,5,5,0.9\n2,-1,1,1,5\n", "line 2", "5 comma-separated fields"),
    ("1,-1,1,1,5,5,0.9\n0,-1,1,1,5,5,0.9\n", "line 2, field 1 (frame)", "0-based"),
    ("1,-1,1,1,5,5,1.7\n", "line 1, field 7 (conf)", "outside [0, 1]"),
    ("1,-1,1,x,5,5,0.5\n", "line 1, field 4 (bb_top)", "not a number"),
])
def test_bad_det_file_names_file_and_line(tmp_path, text, where, what):
    p = tmp_path / "det.txt"
    p.write_text(text)
    with pytest.raises(InputError) as ei:
        read_mot(p, "det")
    msg = str(ei.value)
    assert str(p) in msg and where in msg and what in msg, msg


def _sheet(tmp_path, rows: list[str], header: str = "session\tcamera\tdetections\tfps\tn_frames") -> dict:
    sheet = tmp_path / "cameras.tsv"
    sheet.write_text("\n".join([header, *rows]) + "\n")
    return {"cameras": str(sheet), "chunk_frames": 20, "max_frames": None, "detect": {"backend": "precomputed"}}


def test_plan_sessions_validates_det_files_before_any_job(tmp_path):
    from mctrack.config import plan_sessions

    good = tmp_path / "good.txt"
    good.write_text(DET_TXT)
    plans = plan_sessions(_sheet(tmp_path, [f"s\tc1\t{good}\t25\t50"]))
    p = plans["s"]
    assert p.n_frames == 50 and p.fps == 25.0 and p.chunks == [(0, 20), (20, 40), (40, 50)]
    assert p.cameras["c1"].detections == str(good) and p.cameras["c1"].video == ""
    bad = tmp_path / "bad.txt"
    bad.write_text("1,-1,1,1,5,5,0.9\n0,-1,1,1,5,5,0.9\n")
    with pytest.raises(InputError) as ei:
        plan_sessions(_sheet(tmp_path, [f"s\tc1\t{good}\t25\t50", f"s\tc2\t{bad}\t25\t50"]))
    assert str(bad) in str(ei.value) and "line 2" in str(ei.value)
    with pytest.raises(InputError, match="column 'fps'.*required for a camera without video"):
        plan_sessions(_sheet(tmp_path, [f"s\tc1\t{good}\t\t50"]))
    with pytest.raises(InputError, match="column 'n_frames'"):
        plan_sessions(_sheet(tmp_path, [f"s\tc1\t{good}\t25\tmany"]))
    cfg = _sheet(tmp_path, [f"s\tc1\t{good}\t25\t50"])
    cfg["detect"] = {"backend": "background"}
    with pytest.raises(InputError, match="column 'video'"):
        plan_sessions(cfg)


def test_precomputed_backend_chunks(tmp_path):
    from mctrack.detect import make_detector, run_detect
    from mctrack.tables import DETECTION, read_table

    p = tmp_path / "det.txt"
    p.write_text(DET_TXT)
    det = make_detector({"backend": "precomputed"})
    a = det.detect_chunk(p, 0, 2, "c1")
    b = det.detect_chunk(p, 2, 5, "c1")
    assert a["frame"].tolist() == [0, 0] and a["det_index"].tolist() == [0, 1] and b["frame"].tolist() == [2]
    assert make_detector({"backend": "precomputed", "conf": 0.5}).detect_chunk(p, 0, 5, "c1")["frame"].tolist() == [0, 2]
    assert make_detector({"backend": "precomputed", "classes": [2]}).detect_chunk(p, 0, 5, "c1")["x1"].tolist() == [100.5]
    run_detect({"backend": "precomputed"}, p, 1, 3, "c1", 1, tmp_path / "d.parquet")
    assert read_table(tmp_path / "d.parquet", DETECTION)["frame"].tolist() == [1], "frame_offset 1: file frame 3 -> 1"
    with pytest.raises(InputError, match="detect.conf"):
        make_detector({"backend": "precomputed", "conf": 2})


def _gt_text(rows: np.ndarray, frame_shift: int) -> str:
    return "".join(f"{int(f) + 1 + frame_shift},{int(i)},{x + 1},{y + 1},{w},{h},1,1,1\n" for f, i, x, y, w, h in rows)


def _switching_tracks(T: int):
    """Three boxes moving for ``T`` frames (GT rows ``(frame, id, x, y, w, h)``) and TRACKLET2D rows of
    one camera ``c`` whose track ids switch at frame 30 (id i + 1 -> i + 11): three identity switches."""
    from mctrack.tables import TRACKLET2D

    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        x0, y0 = rng.uniform(50, 400, 2)
        for f in range(T):
            rows.append((f, i + 1, x0 + 2 * f, y0 + f, 30.0, 80.0))
    rows = np.array(rows)
    tr = pd.DataFrame({"camera_id": "c", "track_id": rows[:, 1].astype(int) + 10 * (rows[:, 0] >= 30),
                       "frame": rows[:, 0].astype(int), "x1": rows[:, 2] + 1, "y1": rows[:, 3],
                       "x2": rows[:, 2] + 31, "y2": rows[:, 3] + 80, "cx": 0.0, "cy": 0.0,
                       "frame_status": "detected", "det_index": 0, "confidence": 0.9})
    return rows, TRACKLET2D.coerce(tr)


def test_per_camera_blocks_by_global_id_and_before_association(tmp_path):
    """``cameras_global`` scores rows by global id: the two tracklets of each target (switch at frame 30)
    joined by the association give IDF1 1 and no switch, while ``cameras`` (tracklet ids) counts 3
    switches; ``cameras_track2d`` scores the tracker's own output."""
    from mctrack.evaluate import evaluate_session
    from mctrack.tables import ASSOCIATION, POINTS3D

    T = 50
    rows, tr = _switching_tracks(T)
    gt = tmp_path / "gt.txt"
    gt.write_text(_gt_text(rows, 0))
    assoc = ASSOCIATION.coerce(pd.DataFrame({"camera_id": "c", "track_id": [1, 2, 3, 11, 12, 13],
                                             "global_id": [0, 1, 2, 0, 1, 2], "n_frames": 0,
                                             "n_linked_cameras": 1}))
    m = evaluate_session(tr, {"c": gt}, association=assoc, points=POINTS3D.empty(), gt3d_path=None,
                         n_frames=T, raw_tracklets=tr)
    assert m["cameras"]["c"]["IDSW"] == 3 and m["cameras"]["c"]["IDF1"] < 0.7
    assert m["cameras_global"]["c"]["IDSW"] == 0 and m["cameras_global"]["c"]["IDF1"] == pytest.approx(1.0)
    assert m["cameras_track2d"]["c"] == m["cameras"]["c"]
    assert m["summary"]["mean_IDF1_global"] == pytest.approx(1.0)


def test_frame_offset_gt_gives_same_metrics_as_unshifted(tmp_path):
    """GT frame 1 = first decoded frame of the video; with frame_offset k, session frame = GT frame - 1 - k.

    The same session-frame tracklets scored against an unshifted GT (offset 0) and
    against the GT of a video that starts 7 frames earlier (offset 7, GT frames
    shifted by 7, plus GT rows before session frame 0 and after the processed
    range, which must not count) give identical metrics.
    """
    from mctrack.evaluate import evaluate_session
    from mctrack.tables import ASSOCIATION, POINTS3D

    T = 50
    rows, tr = _switching_tracks(T)
    plain = tmp_path / "gt0.txt"
    plain.write_text(_gt_text(rows, 0))
    shifted = tmp_path / "gt7.txt"
    extra_before = rows[rows[:, 0] < 7].copy()          # frames 0..6 of the file = session frames -7..-1
    extra_after = rows[rows[:, 0] < 5].copy()
    extra_after[:, 0] += T + 7                          # beyond the processed range
    shifted.write_text(_gt_text(extra_before, 0) + _gt_text(rows, 7) + _gt_text(extra_after, 7))
    kw = dict(association=ASSOCIATION.empty(), points=POINTS3D.empty(), gt3d_path=None, n_frames=T)
    m0 = evaluate_session(tr, {"c": plain}, frame_offsets={"c": 0}, **kw)
    m7 = evaluate_session(tr, {"c": shifted}, frame_offsets={"c": 7}, **kw)
    assert m0["cameras"]["c"] == m7["cameras"]["c"]
    assert m0["cameras"]["c"]["IDSW"] == 3 and m0["cameras"]["c"]["n_gt_dets"] == 3 * T
    # ignoring the offset would misalign every frame
    wrong = evaluate_session(tr, {"c": shifted}, frame_offsets={"c": 0}, **kw)
    assert wrong["cameras"]["c"]["HOTA"] < 0.5 * m0["cameras"]["c"]["HOTA"]


def test_metrics_json_is_strict(tmp_path):
    from mctrack.evaluate import write_metrics

    write_metrics({"cameras": {"c": {"HOTA": float("nan"), "n": np.int64(3)}}, "summary": {"x": np.float32(0.5)}},
                  tmp_path / "m.json", tmp_path / "m.tsv")
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text
    m = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert m["cameras"]["c"] == {"HOTA": None, "n": 3} and m["summary"]["x"] == 0.5
