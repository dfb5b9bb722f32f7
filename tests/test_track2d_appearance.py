"""Appearance (chroma_r, chroma_g) travels from detections to tracklet rows (mctrack.track2d.tracker)."""
import numpy as np
import pandas as pd

from mctrack.tables import DETECTION, TRACKLET2D
from mctrack.track2d import TrackerConfig, track_chunk
from mctrack.track2d.tracker import attach_appearance


def _detections(n_frames=12):
    rows = []
    for f in range(n_frames):
        for k, (x, col) in enumerate([(20 + 3 * f, (0.30, 0.36)), (200 - 3 * f, (0.40, 0.30))]):
            rows.append(dict(camera_id="c1", frame=f, det_index=k, x1=x, y1=50, x2=x + 20, y2=62,
                             confidence=0.9, class_id=0, chroma_r=col[0], chroma_g=col[1]))
    return DETECTION.coerce(pd.DataFrame(rows))


def test_tracklet_rows_carry_their_detection_appearance(tmp_path):
    dets = _detections()
    rows = track_chunk(TrackerConfig.from_dict({"kind": "bytetrack", "n_init": 1}, fps=30), dets, 0, 12, "c1",
                       None, tmp_path / "s.pkl", tmp_path / "t.parquet")
    det = rows[rows["frame_status"] == "detected"]
    assert len(det) >= 18
    ref = dets.set_index(["frame", "det_index"])[["chroma_r", "chroma_g"]]
    got = ref.loc[list(zip(det["frame"], det["det_index"]))].to_numpy()
    np.testing.assert_allclose(det[["chroma_r", "chroma_g"]].to_numpy(), got)
    assert rows.loc[rows["frame_status"] != "detected", "chroma_r"].isna().all()


def test_attach_appearance_ignores_other_cameras_and_missing_columns():
    tr = TRACKLET2D.coerce(pd.DataFrame(dict(
        camera_id="c1", track_id=[1, 1, 2], frame=[0, 1, 1], x1=0.0, y1=0.0, x2=1.0, y2=1.0, cx=0.5, cy=0.5,
        frame_status=["detected", "coasted", "detected"], det_index=[0, -1, 1], confidence=0.9)))
    d = DETECTION.coerce(pd.DataFrame(dict(camera_id=["c1", "c2", "c1"], frame=[0, 1, 1], det_index=[0, 1, 1],
                                           x1=0.0, y1=0.0, x2=1.0, y2=1.0, confidence=0.9, class_id=0,
                                           chroma_r=[0.2, 0.9, 0.4], chroma_g=[0.3, 0.9, 0.5])))
    out = attach_appearance(tr, d, "c1")
    np.testing.assert_allclose(out["chroma_r"].to_numpy(), [0.2, np.nan, 0.4])
    # detections written before appearance existed (no chroma columns): rows unchanged, NaN
    old = d.drop(columns=["chroma_r", "chroma_g"])
    assert attach_appearance(tr, old, "c1")["chroma_r"].isna().all()
