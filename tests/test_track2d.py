"""Tests of mctrack.track2d: chunk chaining, probation, coasting, state files, config errors,
and tracking accuracy on real data (TUD-Campus, MOT15) with GT-derived noisy detections."""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mctrack.errors import InputError
from mctrack.tables import DETECTION, TRACKLET2D, read_table, read_tables
from mctrack.track2d import TRACKERS, Tracker2D, TrackerConfig, track_chunk

# the three original kinds; the other boxmot kinds are covered by tests/test_track2d_kinds.py
KINDS = ["botsort", "bytetrack", "ocsort"]
assert set(KINDS) <= set(TRACKERS)
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCTRACK_SHARED", REPO.parent / "shared"))
TUD_GT = SHARED / "data" / "tud_campus" / "gt.txt"
TUD_FRAMES = 71


# ---------------------------------------------------------------------------
# detection builders
# ---------------------------------------------------------------------------

def gt_detections(gt_path: Path, drop: float = 0.1, jitter: float = 0.03, seed: int = 0,
                  camera_id: str = "tud") -> pd.DataFrame:
    """DETECTION rows from a MOTChallenge gt.txt: deterministic jitter and dropped boxes.

    Each corner moves by N(0, jitter * box size) px, a fraction ``drop`` of the
    boxes is removed (so tracks must coast), confidences are U(0.5, 1.0) (all
    above the default det_thresh 0.3). Frames become 0-based.
    """
    a = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    rng = np.random.default_rng(seed)
    a = a[rng.random(len(a)) >= drop]
    n = len(a)
    w, h = a[:, 4], a[:, 5]
    e = rng.normal(0.0, jitter, (n, 4))
    df = pd.DataFrame({
        "camera_id": camera_id,
        "frame": a[:, 0].astype(np.int64) - 1,
        "x1": a[:, 2] + e[:, 0] * w, "y1": a[:, 3] + e[:, 1] * h,
        "x2": a[:, 2] + w + e[:, 2] * w, "y2": a[:, 3] + h + e[:, 3] * h,
        "confidence": rng.uniform(0.5, 1.0, n), "class_id": 0,
    })
    df["det_index"] = df.groupby("frame").cumcount()
    return DETECTION.coerce(df)


def synthetic(objects: dict[int, list[int]], camera_id: str = "cam0") -> pd.DataFrame:
    """DETECTION rows of well separated 40x80 px boxes moving +2 px/frame in x.

    ``objects`` maps an object number k (its box starts at x = 20 + 150 k) to the
    frames where it is detected.
    """
    rows = []
    for k, frames in objects.items():
        for f in frames:
            x = 20.0 + 150.0 * k + 2.0 * f
            rows.append((f, x, 100.0, x + 40.0, 180.0, k))
    df = pd.DataFrame(rows, columns=["frame", "x1", "y1", "x2", "y2", "obj"]).sort_values(["frame", "obj"])
    df["camera_id"] = camera_id
    df["confidence"] = 0.9
    df["class_id"] = 0
    df["det_index"] = df.groupby("frame").cumcount()
    return DETECTION.coerce(df)


def concat_sorted(parts: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True)
    return TRACKLET2D.coerce(df.sort_values(["frame", "track_id"], kind="stable").reset_index(drop=True))


def run_chunked(cfg: TrackerConfig, det: pd.DataFrame, cuts: list[int], tmp: Path, cam: str) -> list[pd.DataFrame]:
    """track_chunk over consecutive [cuts[i], cuts[i+1]) with state files; returns the tables read back."""
    paths, state = [], None
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        out, st = tmp / f"trk_{i}.parquet", tmp / f"state_{i}.pkl"
        ret = track_chunk(cfg, det, a, b, cam, state, st, out)
        back = read_table(out, TRACKLET2D)
        pd.testing.assert_frame_equal(back, ret)
        paths.append(out)
        state = st
    return [read_table(p, TRACKLET2D) for p in paths]


def test_low_scores_warn_and_cannot_start_tracks(caplog):
    """Detections at or below det_thresh start no track, and tracking says so; at 0 they are tracked."""
    det = synthetic({0: list(range(20)), 1: list(range(20))})
    det["confidence"] = np.where(det["x1"] < 150, 0.9, 0.55).astype(np.float32)  # object 1 is faint
    with caplog.at_level("WARNING", logger="mctrack"):
        rows = Tracker2D(TrackerConfig(kind="ocsort", det_thresh=0.6), "cam0").run(det, 0, 20)
    assert rows["track_id"].nunique() == 1 and (rows["x1"] < 150).all()
    assert "20 of 40 detections (50 %) score at or below track_2d.det_thresh = 0.6" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mctrack"):
        rows = Tracker2D(TrackerConfig(kind="ocsort", det_thresh=0.0), "cam0").run(det, 0, 20)
    assert rows["track_id"].nunique() == 2 and "det_thresh" not in caplog.text


# ---------------------------------------------------------------------------
# real data (TUD-Campus)
# ---------------------------------------------------------------------------

needs_tud = pytest.mark.skipif(not TUD_GT.exists(),
                               reason=f"shared data not found: {TUD_GT} (set MCTRACK_SHARED to the shared folder)")


@pytest.fixture(scope="module")
def tud_det() -> pd.DataFrame:
    return gt_detections(TUD_GT)


@pytest.fixture(scope="module")
def tud_full(tud_det) -> dict[str, pd.DataFrame]:
    return {k: Tracker2D(TrackerConfig(kind=k), "tud").run(tud_det, 0, TUD_FRAMES) for k in KINDS}


@pytest.mark.shared
@needs_tud
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cuts", [[0, 20, 45, TUD_FRAMES], [0, 1, 2, 35, 36, 37, 60, TUD_FRAMES]])
def test_chunked_equals_unchunked_tud(kind, cuts, tud_det, tud_full, tmp_path):
    cfg = TrackerConfig(kind=kind)
    parts = run_chunked(cfg, tud_det, cuts, tmp_path, "tud")
    pd.testing.assert_frame_equal(concat_sorted(parts), tud_full[kind])
    # read_tables of the chunk files gives the same rows
    files = sorted(tmp_path.glob("trk_*.parquet"), key=lambda p: int(p.stem.split("_")[1]))
    pd.testing.assert_frame_equal(concat_sorted([read_tables(files, TRACKLET2D)]), tud_full[kind])


@pytest.mark.shared
@needs_tud
@pytest.mark.parametrize("kind", KINDS)
def test_tracklet_row_contract_tud(kind, tud_det, tud_full):
    cfg = TrackerConfig(kind=kind)
    df = tud_full[kind]
    pd.testing.assert_frame_equal(df, TRACKLET2D.coerce(df))
    assert len(df) > 300 and df.track_id.nunique() >= 5
    assert not df.duplicated(["track_id", "frame"]).any()
    assert df.equals(df.sort_values(["frame", "track_id"], kind="stable").reset_index(drop=True))
    np.testing.assert_array_equal(df.cx, (df.x1 + df.x2) * np.float32(0.5))
    np.testing.assert_array_equal(df.cy, (df.y1 + df.y2) * np.float32(0.5))
    det = df[df.frame_status == "detected"]
    coast = df[df.frame_status == "coasted"]
    assert len(coast) > 0, "dropped boxes must produce coasted rows"
    # detected rows carry the matched detection's own box, index and confidence
    m = det.merge(tud_det, on=["frame", "det_index"], suffixes=("", "_d"), how="left", validate="one_to_one")
    for c in ("x1", "y1", "x2", "y2", "confidence"):
        np.testing.assert_array_equal(m[c].to_numpy(), m[f"{c}_d"].to_numpy())
    assert not det.duplicated(["frame", "det_index"]).any()
    assert (coast.det_index == -1).all() and coast.confidence.isna().all()
    assert (det.det_index >= 0).all() and det.confidence.notna().all()
    # every track starts with a detection and never coasts longer than max_coast_frames
    for _, g in df.groupby("track_id"):
        assert g.frame_status.iloc[0] == "detected"
        assert (g.frame_status == "detected").sum() >= cfg.n_init
        assert np.all(np.diff(g.frame.to_numpy()) == 1), "rows of a track are contiguous in frames"
        last_det = g.frame.where(g.frame_status == "detected").ffill()
        assert (g.frame - last_det).max() <= cfg.max_coast_frames


# Accuracy thresholds. Measured with the default config on these GT-derived
# detections (3 % jitter, 10 % dropped), include_coasted="bridged", boxmot 25.0.0:
#              seed 0 (this test)            seeds 0-9 (min - max)
#   ocsort    HOTA .903 IDF1 .996 MOTA .992   HOTA .828-.911  IDF1 .867-1.00  MOTA .897-1.00
#   bytetrack HOTA .818 IDF1 .900 MOTA .930   HOTA .772-.850  IDF1 .864-.957  MOTA .891-.983
#   botsort   HOTA .824 IDF1 .924 MOTA .891   HOTA .778-.860  IDF1 .867-.962  MOTA .886-.989
# The remaining errors are tracker behaviour (e.g. a track of a person who left
# the view coasts and is re-attached to a passer-by), not wrapper faults. The
# thresholds sit about 0.05 below the worst of the 10 noise seeds, so a boxmot
# update that changes one association does not fail the test, while losing
# identities, wrong boxes or a broken tracker still does.
ACCURACY_MIN = {"HOTA": 0.72, "IDF1": 0.81, "MOTA": 0.83}


@pytest.mark.shared
@needs_tud
@pytest.mark.parametrize("kind", KINDS)
def test_tracking_accuracy_tud(kind, tud_full):
    from mctrack.evaluate import evaluate_2d, read_mot_gt

    res = evaluate_2d(tud_full[kind], read_mot_gt(TUD_GT))["tud"]
    for key, lo in ACCURACY_MIN.items():
        assert res[key] > lo, (kind, key, res)
    assert res["n_gt_ids"] == 8
    assert 5 <= res["n_tracks"] <= 12


# ---------------------------------------------------------------------------
# synthetic cases (no shared data)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_probation_short_track_hidden_long_track_backfilled(kind):
    # object 0: 2 detections (< n_init) then gone; object 1: frames 3..14
    det = synthetic({0: [0, 1], 1: list(range(3, 15))})
    out = Tracker2D(TrackerConfig(kind=kind, n_init=3), "cam0").run(det, 0, 20)
    assert out.track_id.nunique() == 1, out
    tr = out[out.frame_status == "detected"]
    assert tr.frame.tolist() == list(range(3, 15)), "backfilled from the first detection"
    assert np.allclose(tr.x1, 20 + 150 + 2 * tr.frame)


def test_probation_counts_non_consecutive_matches():
    # OC-SORT keeps a tentative track alive through misses: detections at 0, 2, 4
    # confirm it at frame 4 (3 matches); the coasted frames 1, 3 are backfilled too.
    det = synthetic({0: [0, 2, 4, 5]})
    out = Tracker2D(TrackerConfig(kind="ocsort", n_init=3, max_coast_frames=3), "cam0").run(det, 0, 6)
    assert out.frame.tolist() == [0, 1, 2, 3, 4, 5]
    assert out.frame_status.tolist() == ["detected", "coasted", "detected", "coasted", "detected", "detected"]
    # n_init = 4 would need one more match: frame 5 gives it
    out4 = Tracker2D(TrackerConfig(kind="ocsort", n_init=4, max_coast_frames=3), "cam0").run(det, 0, 6)
    assert out4.frame.tolist() == [0, 1, 2, 3, 4, 5]
    out5 = Tracker2D(TrackerConfig(kind="ocsort", n_init=5, max_coast_frames=3), "cam0").run(det, 0, 6)
    assert len(out5) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_backfill_crosses_chunk_boundary(kind, tmp_path):
    det = synthetic({0: list(range(30)), 1: list(range(8, 30))})
    cfg = TrackerConfig(kind=kind, n_init=3)
    full = Tracker2D(cfg, "cam0").run(det, 0, 30)
    parts = run_chunked(cfg, det, [0, 9, 20, 30], tmp_path, "cam0")
    late = full[full.frame == 8].track_id.max()
    assert late not in set(parts[0].track_id), "still in probation at the end of chunk 0"
    assert 8 in set(parts[1][parts[1].track_id == late].frame), "chunk 1 backfills frame 8"
    pd.testing.assert_frame_equal(concat_sorted(parts), full)


@pytest.mark.parametrize("kind", KINDS)
def test_coasting_in_detection_gap(kind):
    # detected 0..9, nothing in 10..39, detected again 40..49 (far beyond max_coast_frames)
    frames = list(range(10)) + list(range(40, 50))
    det = synthetic({0: frames})
    cfg = TrackerConfig(kind=kind, n_init=3, max_coast_frames=5)
    out = Tracker2D(cfg, "cam0").run(det, 0, 50)
    first = out[out.track_id == out.track_id.min()]
    co = first[first.frame_status == "coasted"]
    assert co.frame.tolist() == [10, 11, 12, 13, 14], "coasts exactly max_coast_frames frames"
    assert (co.det_index == -1).all() and co.confidence.isna().all()
    # the prediction follows the constant-velocity motion (true x1 = 20 + 2 f)
    assert np.all(np.abs(co.x1.to_numpy() - (20 + 2 * co.frame.to_numpy())) < 6.0)
    assert out.track_id.nunique() == 2, "after the track died a new one starts"
    second = out[out.track_id == out.track_id.max()]
    assert second.frame.tolist() == list(range(40, 50))
    # max_coast_frames = 0: no coasted rows at all
    out0 = Tracker2D(TrackerConfig(kind=kind, max_coast_frames=0), "cam0").run(det, 0, 50)
    assert (out0.frame_status == "detected").all()


@pytest.mark.parametrize("kind", KINDS)
def test_update_frame_by_frame_equals_run(kind):
    det = synthetic({0: list(range(25)), 1: [2, 3, 5, 6, 7, 9, 10, 11, 12], 2: list(range(5, 12))})
    cfg = TrackerConfig(kind=kind)
    ref = Tracker2D(cfg, "cam0").run(det, 0, 25)
    t = Tracker2D(cfg, "cam0")
    for f in range(25):
        t.update(f, det[det.frame == f])
    pd.testing.assert_frame_equal(t.flush(), ref)
    assert len(t.flush()) == 0


def test_state_file_round_trip(tmp_path):
    det = synthetic({0: list(range(40)), 1: list(range(5, 40, 2)), 2: list(range(12, 40))})
    cfg = TrackerConfig(kind="ocsort", n_init=3, max_coast_frames=4)
    t = Tracker2D(cfg, "cam0")
    first = t.run(det, 0, 13)           # object 2 is in probation at frame 12
    t.save(tmp_path / "s.pkl")
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"
    loaded = Tracker2D.load(tmp_path / "s.pkl")
    assert loaded.camera_id == "cam0" and loaded.cfg == cfg and loaded.next_frame == 13
    ref = copy.deepcopy(t).run(det, 13, 40)
    pd.testing.assert_frame_equal(loaded.run(det, 13, 40), ref)
    pd.testing.assert_frame_equal(concat_sorted([first, ref]), Tracker2D(cfg, "cam0").run(det, 0, 40))


def test_state_errors(tmp_path):
    det = synthetic({0: list(range(10))})
    cfg = TrackerConfig()
    track_chunk(cfg, det, 0, 5, "cam0", None, tmp_path / "s0.pkl", tmp_path / "t0.parquet")
    with pytest.raises(InputError, match="not found"):
        Tracker2D.load(tmp_path / "missing.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="unreadable"):
        Tracker2D.load(tmp_path / "junk.pkl")
    with pytest.raises(InputError, match="camera"):
        track_chunk(cfg, det, 5, 10, "cam1", tmp_path / "s0.pkl", tmp_path / "s1.pkl", tmp_path / "t1.parquet")
    with pytest.raises(InputError, match="configuration"):
        track_chunk(TrackerConfig(n_init=2), det, 5, 10, "cam0", tmp_path / "s0.pkl", tmp_path / "s1.pkl",
                    tmp_path / "t1.parquet")
    with pytest.raises(InputError, match="expects frame 5"):
        track_chunk(cfg, det, 6, 10, "cam0", tmp_path / "s0.pkl", tmp_path / "s1.pkl", tmp_path / "t1.parquet")
    assert not (tmp_path / "t1.parquet").exists() and not (tmp_path / "s1.pkl").exists()


def test_detection_table_from_parquet_and_other_cameras(tmp_path):
    from mctrack.tables import write_table

    a = synthetic({0: list(range(10))}, camera_id="cam0")
    b = synthetic({1: list(range(10))}, camera_id="cam1")
    write_table(pd.concat([a, b], ignore_index=True), DETECTION, tmp_path / "det.parquet")
    out = track_chunk(TrackerConfig(), tmp_path / "det.parquet", 0, 10, "cam1", None, tmp_path / "s.pkl",
                      tmp_path / "t.parquet")
    assert (out.camera_id == "cam1").all() and np.allclose(out.x1, 170 + 2 * out.frame)


def test_empty_and_invalid_detections():
    t = Tracker2D(TrackerConfig(), "cam0")
    out = t.run(DETECTION.empty(), 0, 10)
    pd.testing.assert_frame_equal(out, TRACKLET2D.empty())
    bad = synthetic({0: [10]})
    bad.loc[0, "confidence"] = 1.5
    with pytest.raises(InputError, match="confidence"):
        t.run(bad, 10, 11)
    # empty / degenerate boxes are dropped instead of crashing boxmot
    deg = synthetic({0: list(range(20, 26))})
    deg.loc[deg.frame == 22, "x2"] = deg.loc[deg.frame == 22, "x1"]
    out = t.run(deg, 10, 26)
    assert out[out.frame == 22].frame_status.tolist() == ["coasted"]
    with pytest.raises(InputError, match="stop"):
        t.run(deg, 26, 25)


@pytest.mark.parametrize("d, field", [
    ({"kind": "sort"}, "track_2d.kind"),
    ({"n_init": 0}, "track_2d.n_init"),
    ({"n_init": "3"}, "track_2d.n_init"),
    ({"max_coast_frames": -1}, "track_2d.max_coast_frames"),
    ({"det_thresh": 1.5}, "track_2d.det_thresh"),
    ({"max_age": 10}, "track_2d.max_age"),
    ({"params": {"min_hits": 2}}, "track_2d.params.min_hits"),
    ({"params": {"no_such_option": 1}}, "track_2d.params.no_such_option"),
    ({"kind": "bytetrack", "params": {"delta_t": 2}}, "track_2d.params.delta_t"),
    ({"params": {"asso_func": "nope"}}, "track_2d.params"),
    ({"params": [1, 2]}, "track_2d.params"),
])
def test_bad_config_names_field(d, field):
    with pytest.raises(InputError) as ei:
        TrackerConfig.from_dict(d)
    assert ei.value.field == field
    assert field in str(ei.value) and "Fix:" in str(ei.value)


def test_config_from_dict_defaults_and_params():
    assert TrackerConfig.from_dict(None) == TrackerConfig()
    cfg = TrackerConfig.from_dict({"kind": "bytetrack", "n_init": 2, "params": {"match_thresh": 0.7}})
    assert cfg.to_dict() == {"kind": "bytetrack", "n_init": 2, "max_coast_frames": 30, "det_thresh": 0.6,
                             "params": {"match_thresh": 0.7}, "reid": None}
    assert Tracker2D(cfg, "c")._tracker._trk.match_thresh == 0.7


def test_coasting_default_scales_with_fps():
    """max_coast_frames: null = 1 s of video; boxmot's buffer follows (a 60 fps video gets 60 frames)."""
    for fps, frames in ((25.0, 25), (30.0, 30), (60.0, 60), (120.0, 120)):
        cfg = TrackerConfig.from_dict({"kind": "bytetrack"}, fps=fps)
        assert cfg.max_coast_frames == frames
        assert Tracker2D(cfg, "c")._tracker._trk.max_time_lost == frames
    assert TrackerConfig.from_dict({"max_coast_frames": 7}, fps=60.0).max_coast_frames == 7
    assert TrackerConfig.from_dict({"refine": {"enabled": False}}) == TrackerConfig.from_dict({})
    with pytest.raises(InputError, match="fps"):
        TrackerConfig.from_dict({}, fps=0)
    with pytest.raises(InputError, match="track_2d.reid"):
        TrackerConfig.from_dict({"reid": "/no/such/model.onnx"})
