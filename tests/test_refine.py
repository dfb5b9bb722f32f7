"""Tracklet refinement (mctrack.track2d.refine) and chunked == unchunked with refinement and ReID."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from mctrack.errors import InputError
from mctrack.tables import DETECTION, TRACKLET2D, read_table
from mctrack.track2d import RefineConfig, TrackerConfig, refine_camera, refine_tracklets, track_chunk


def _rows(track_id: int, frames, x0: float, vx: float, y0: float = 100.0, w: float = 40.0, h: float = 100.0,
          status: str = "detected") -> pd.DataFrame:
    f = np.asarray(list(frames))
    x = x0 + vx * f
    return pd.DataFrame({"camera_id": "c", "track_id": track_id, "frame": f, "x1": x, "y1": y0, "x2": x + w,
                         "y2": y0 + h, "cx": x + w / 2, "cy": y0 + h / 2, "frame_status": status,
                         "det_index": 0 if status == "detected" else -1,
                         "confidence": 0.8 if status == "detected" else np.nan})


def _table(*parts: pd.DataFrame) -> pd.DataFrame:
    return TRACKLET2D.coerce(pd.concat(parts, ignore_index=True))


def test_links_fragment_interpolates_gap_and_drops_short():
    tr = _table(
        _rows(1, range(0, 30), 0, 3.0),                     # target A, frames 0-29
        _rows(1, range(30, 35), 0, 3.0, status="coasted"),  # tracker's coasted rows in the gap
        _rows(5, range(40, 80), 0, 3.0),                    # A again after a 10-frame gap, new id
        _rows(2, range(0, 80), 600, -1.0, y0=300),          # target B, untouched
        _rows(9, range(50, 53), 300, 0.0, y0=20),           # 3-frame false track
    )
    out = refine_tracklets(tr, fps=30.0)
    assert sorted(out["track_id"].unique()) == [1, 2], "fragment 5 linked to 1, short track 9 dropped"
    a = out[out["track_id"] == 1].sort_values("frame")
    assert a["frame"].tolist() == list(range(0, 80)), "gap 30-39 filled"
    gap = a[a["frame"].between(30, 39)]
    assert (gap["frame_status"] == "interpolated").all() and (gap["det_index"] == -1).all()
    assert gap["confidence"].isna().all()
    np.testing.assert_allclose(gap["x1"], 3.0 * gap["frame"], atol=1e-3)  # linear between detections
    assert (out["frame_status"] != "coasted").all()
    assert list(out.columns) == list(TRACKLET2D.columns)
    assert (np.diff(out["frame"].to_numpy()) >= 0).all()


def test_no_link_when_motion_disagrees_or_appearance_differs():
    far = _table(_rows(1, range(0, 30), 0, 3.0), _rows(5, range(40, 80), 500, 3.0))
    assert sorted(refine_tracklets(far, 30.0)["track_id"].unique()) == [1, 5]
    near = _table(_rows(1, range(0, 30), 0, 3.0), _rows(5, range(40, 80), 0, 3.0))
    d = near[near["frame_status"] == "detected"]
    e1, e2 = np.eye(4)[0], np.eye(4)[1]
    emb = pd.DataFrame({"frame": d["frame"], "det_index": d["det_index"]})
    # det_index is 0 for all rows, frames are distinct: one embedding per row
    vec = np.where((d["track_id"] == 1).to_numpy()[:, None], e1, e2)
    emb = pd.concat([emb.reset_index(drop=True), pd.DataFrame(vec, columns=[f"e{i}" for i in range(4)])], axis=1)
    assert sorted(refine_tracklets(near, 30.0, embeddings=emb)["track_id"].unique()) == [1, 5], "different people"
    same = emb.assign(e0=1.0, e1=0.0)
    assert sorted(refine_tracklets(near, 30.0, embeddings=same)["track_id"].unique()) == [1]


def test_durations_scale_with_fps():
    """A 40-frame gap is 0.67 s at 60 fps (linked with max_gap_seconds 1) but 1.33 s at 30 fps (not linked)."""
    tr = _table(_rows(1, range(0, 30), 0, 1.0), _rows(5, range(70, 100), 0, 1.0))
    cfg = RefineConfig(max_gap_seconds=1.0)
    assert refine_tracklets(tr, 60.0, cfg)["track_id"].nunique() == 1
    assert refine_tracklets(tr, 30.0, cfg)["track_id"].nunique() == 2
    # interpolation limit in seconds too: max_interp_seconds 1.0 fills 40 frames at 60 fps, not at 30 fps
    out60 = refine_tracklets(tr, 60.0, RefineConfig(max_gap_seconds=2.0))
    out30 = refine_tracklets(tr, 30.0, RefineConfig(max_gap_seconds=2.0))
    assert (out60["frame_status"] == "interpolated").sum() == 40 and out30["track_id"].nunique() == 1
    assert (out30["frame_status"] == "interpolated").sum() == 0


def test_disabled_and_bad_config():
    tr = _table(_rows(1, range(0, 5), 0, 1.0), _rows(1, range(5, 8), 0, 1.0, status="coasted"))
    out = refine_tracklets(tr, 30.0, RefineConfig(enabled=False))
    assert len(out) == 8 and (out["frame_status"] == "coasted").sum() == 3
    with pytest.raises(InputError, match="track_2d.refine.max_gap"):
        RefineConfig.from_dict({"max_gap": 3})
    with pytest.raises(InputError, match="track_2d.refine.min_length_seconds"):
        RefineConfig.from_dict({"min_length_seconds": -1})
    with pytest.raises(InputError, match="several cameras"):
        refine_tracklets(pd.concat([tr, tr.assign(camera_id="d")]), 30.0)


def _tud_detections(seed: int = 0) -> pd.DataFrame:
    """TUD-Campus GT boxes as detections: jittered, 10 % dropped, confidences spread over [0.1, 1]."""
    from mctrack.evaluate import read_mot_gt

    gt = read_mot_gt(shared_path("data", "tud_campus", "gt.txt"))
    rng = np.random.default_rng(seed)
    gt = gt[rng.random(len(gt)) >= 0.1].reset_index(drop=True)
    h = (gt["y2"] - gt["y1"]).to_numpy()
    j = rng.normal(0, 0.03, (len(gt), 4)) * h[:, None]
    df = pd.DataFrame({"camera_id": "cam", "frame": gt["frame"], "x1": gt["x1"] + j[:, 0], "y1": gt["y1"] + j[:, 1],
                       "x2": gt["x2"] + j[:, 2], "y2": gt["y2"] + j[:, 3],
                       "confidence": rng.uniform(0.1, 1.0, len(gt)), "class_id": 0})
    df["det_index"] = df.groupby("frame").cumcount()
    return DETECTION.coerce(df)


def _chunked_vs_whole(tmp_path, cfg: TrackerConfig, video=None, chunk: int = 20):
    det = _tud_detections()
    n = 71
    paths, embs, state = [], [], None
    for k, a in enumerate(range(0, n, chunk)):
        b = min(a + chunk, n)
        out, st, em = tmp_path / f"c{k}.parquet", tmp_path / f"c{k}.state", tmp_path / f"c{k}.emb.parquet"
        track_chunk(cfg, det, a, b, "cam", state, st, out, video=video, embeddings_out=em)
        paths.append(out)
        embs.append(em)
        state = st
    track_chunk(cfg, det, 0, n, "cam", None, tmp_path / "w.state", tmp_path / "w.parquet", video=video,
                embeddings_out=tmp_path / "w.emb.parquet")
    chunked = refine_camera(paths, tmp_path / "chunked.parquet", 25.0, RefineConfig(), embs, "cam")
    whole = refine_camera([tmp_path / "w.parquet"], tmp_path / "whole.parquet", 25.0, RefineConfig(),
                          [tmp_path / "w.emb.parquet"], "cam")
    pd.testing.assert_frame_equal(chunked, whole)
    pd.testing.assert_frame_equal(read_table(tmp_path / "chunked.parquet", TRACKLET2D), whole)
    assert (whole["frame_status"] == "interpolated").any() and whole["track_id"].nunique() >= 6
    return state


@pytest.mark.parametrize("kind", ["bytetrack", "ocsort"])
def test_chunked_equals_unchunked_with_refinement(kind, tmp_path):
    _chunked_vs_whole(tmp_path, TrackerConfig.from_dict({"kind": kind}, fps=25.0))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["botsort", "deepocsort", "strongsort"])
def test_chunked_equals_unchunked_with_reid(kind, tmp_path):
    """ReID on (online in the tracker and in refinement): 20-frame chunks == one chunk; no session in the state."""
    model = shared_path("models", "osnet_x0_25_msmt17.onnx")
    video = shared_path("data", "tud_campus", "TUD-Campus.mp4")
    # StrongSORT drops detections below min_conf (= det_thresh 0.6) and these test confidences are U(0.1, 1):
    # let it see every box, as the BYTE-style trackers do, so that it keeps most of the 8 people
    params = {"min_conf": 0.1} if kind == "strongsort" else {}
    cfg = TrackerConfig.from_dict({"kind": kind, "reid": str(model), "params": params}, fps=25.0)
    state = _chunked_vs_whole(tmp_path, cfg, video=str(video))
    emb = pd.read_parquet(tmp_path / "w.emb.parquet")
    assert emb.shape[1] == 2 + 512 and np.allclose(np.linalg.norm(emb.iloc[:, 2:].to_numpy(), axis=1), 1, atol=1e-4)
    blob = open(state, "rb").read()
    assert b"onnxruntime" not in blob and b"InferenceSession" not in blob
    with pytest.raises(InputError, match="no video"):
        track_chunk(cfg, _tud_detections(), 0, 5, "cam", None, tmp_path / "x.state", tmp_path / "x.parquet")


def test_auto_refinement_is_off_only_for_calibrated_multi_camera_sessions():
    cfg = RefineConfig.from_dict({})
    assert cfg.enabled == "auto"
    assert cfg.resolve(multi_view=True).enabled is False  # association + 3D stitching bridge the gaps
    assert cfg.resolve(multi_view=False).enabled is True  # one camera: refinement is the only linker
    assert RefineConfig.from_dict({"enabled": True}).resolve(multi_view=True).enabled is True
    with pytest.raises(InputError, match="track_2d.refine.enabled"):
        RefineConfig.from_dict({"enabled": "sometimes"})
