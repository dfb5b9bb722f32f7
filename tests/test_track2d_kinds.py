"""The boxmot tracker kinds beyond BoT-SORT / ByteTrack / OC-SORT: Deep OC-SORT, Hybrid-SORT, BoostTrack,
SFSORT and StrongSORT through :class:`mctrack.track2d.Tracker2D`.

Synthetic data: one sequence of ``benchmarks/walkers.py`` (pedestrians crossing
each other, missed and low-score detections, false positives) and, for the
kinds that take appearance, embeddings that are one fixed random unit vector
per person plus noise (false positives get random vectors), so no ReID model is
needed here. The real ONNX model runs in ``tests/test_refine.py`` (slow).
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mctrack.errors import InputError
from mctrack.tables import TRACKLET2D
from mctrack.track2d import TRACKERS, Tracker2D, TrackerConfig
from mctrack.track2d.boxmot_adapter import NEEDS_REID

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from walkers import walkers  # noqa: E402

NEW = ["boosttrack", "deepocsort", "hybridsort", "sfsort", "strongsort"]
#: kinds that take embeddings when track_2d.reid is set
WITH_EMB = ["boosttrack", "deepocsort", "hybridsort", "strongsort"]
N = 60
FPS = 30.0


@pytest.fixture(scope="module")
def seq():
    """(gt, detections, embeddings) of one 60-frame walkers sequence (seed 3)."""
    gt, det = walkers(3, n_frames=N, fps=FPS)
    rng = np.random.default_rng(0)
    # identity of each detection: the GT box of the same frame with the highest IoU >= 0.5, else -1
    ident = np.full(len(det), -1)
    for f, idx in det.groupby("frame").indices.items():
        g = gt[gt.frame == f]
        if not len(g):
            continue
        a = det.iloc[idx][["x1", "y1", "x2", "y2"]].to_numpy()[:, None]
        b = g[["x1", "y1", "x2", "y2"]].to_numpy()[None]
        inter = np.prod(np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None), -1)
        iou = inter / (np.prod(a[..., 2:] - a[..., :2], -1) + np.prod(b[..., 2:] - b[..., :2], -1) - inter)
        best = iou.argmax(1)
        ident[idx] = np.where(iou.max(1) >= 0.5, g["id"].to_numpy()[best], -1)
    d = 32
    proto = rng.normal(size=(int(gt["id"].max()) + 2, d))
    e = np.where(ident[:, None] >= 0, proto[ident], rng.normal(size=(len(det), d))) + 0.3 * rng.normal(size=(len(det), d))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    emb = pd.DataFrame(e.astype(np.float32), columns=[f"e{j}" for j in range(d)])
    emb.insert(0, "det_index", det["det_index"].to_numpy())
    emb.insert(0, "frame", det["frame"].to_numpy())
    return gt, det, emb


def _cfg(kind: str, reid: bool) -> TrackerConfig:
    # any existing file passes the config check; the embeddings are given directly, no model is loaded
    return TrackerConfig.from_dict({"kind": kind, "reid": __file__ if reid else None}, fps=FPS)


def _chunked(cfg: TrackerConfig, det, emb, cuts, tmp: Path) -> tuple[pd.DataFrame, list[bytes]]:
    """Tracker2D over [cuts[i], cuts[i+1]) chained through saved state files (as track_chunk does)."""
    parts, blobs, state = [], [], None
    for i in range(len(cuts) - 1):
        t = Tracker2D(cfg, "cam") if state is None else Tracker2D.load(state)
        parts.append(t.run(det, cuts[i], cuts[i + 1], emb if cfg.reid else None))
        state = tmp / f"s{i}.pkl"
        t.save(state)
        blobs.append(state.read_bytes())
    df = pd.concat(parts, ignore_index=True).sort_values(["frame", "track_id"], kind="stable")
    return TRACKLET2D.coerce(df.reset_index(drop=True)), blobs


CASES = [(k, False) for k in NEW if k not in NEEDS_REID] + [(k, True) for k in WITH_EMB]


@pytest.mark.parametrize("kind, reid", CASES)
def test_chunked_equals_unchunked(kind, reid, seq, tmp_path):
    """20-frame chunks through pickled state == one run; coasted rows; the tracker really tracks."""
    gt, det, emb = seq
    cfg = _cfg(kind, reid)
    t = Tracker2D(cfg, "cam")
    assert t._tracker.uses_embeddings == reid
    whole = t.run(det, 0, N, emb if reid else None)
    chunked, blobs = _chunked(cfg, det, emb, [0, 20, 40, N], tmp_path)
    pd.testing.assert_frame_equal(chunked, whole)
    for b in blobs:
        assert b"onnxruntime" not in b and b"InferenceSession" not in b
        assert isinstance(pickle.loads(b), Tracker2D)
    assert (whole.frame_status == "coasted").any(), "walkers lose detections: confirmed tracks must coast"
    # tracking, not noise: most confident detections end up in a tracklet, with far fewer ids than rows
    det_rows = whole[whole.frame_status == "detected"]
    strong = det[det.confidence > 0.7]
    used = strong.merge(det_rows[["frame", "det_index"]], on=["frame", "det_index"]).shape[0]
    assert used >= 0.8 * len(strong), (used, len(strong))
    assert whole.track_id.nunique() <= 2 * gt.id.nunique()
    # at most one row per (track, frame) and per used detection
    assert not whole.duplicated(["track_id", "frame"]).any()
    assert not det_rows.duplicated(["frame", "det_index"]).any()


@pytest.mark.parametrize("kind", NEW)
def test_coasts_exactly_max_coast_frames(kind):
    """One box moving +2 px/frame, detected 0..9 and 40..49: coasted rows 10..14, then a new track."""
    frames = list(range(10)) + list(range(40, 50))
    det = pd.DataFrame({"camera_id": "c", "frame": frames, "det_index": 0, "x1": [20.0 + 2 * f for f in frames],
                        "y1": 100.0, "x2": [60.0 + 2 * f for f in frames], "y2": 180.0, "confidence": 0.9,
                        "class_id": 0})
    e = np.zeros((len(frames), 4), np.float32)
    e[:, 0] = 1
    emb = pd.DataFrame({"frame": frames, "det_index": 0, **{f"e{j}": e[:, j] for j in range(4)}})
    reid = kind in NEEDS_REID
    cfg = TrackerConfig.from_dict({"kind": kind, "max_coast_frames": 5, "reid": __file__ if reid else None})
    out = Tracker2D(cfg, "c").run(det, 0, 50, emb if reid else None)
    first = out[out.track_id == out.track_id.min()]
    co = first[first.frame_status == "coasted"]
    assert co.frame.tolist() == [10, 11, 12, 13, 14]
    assert (co.det_index == -1).all() and co.confidence.isna().all()
    truth = 20 + 2 * co.frame.to_numpy()
    if kind == "sfsort":    # no motion model: the last detected box
        assert np.allclose(co.x1, 38.0)
    else:                   # Kalman prediction follows the constant velocity
        assert np.all(np.abs(co.x1.to_numpy() - truth) < 3.0)
    assert out.track_id.nunique() == 2 and out[out.track_id == out.track_id.max()].frame.tolist() == list(range(40, 50))


def test_kinds_registered():
    assert set(NEW) <= set(TRACKERS)


@pytest.mark.parametrize("kind", sorted(NEEDS_REID))
def test_kind_needing_reid_without_it_is_an_input_error(kind):
    with pytest.raises(InputError, match=r"track_2d\.reid") as e:
        TrackerConfig.from_dict({"kind": kind})
    assert "osnet_x0_25_msmt17.onnx" in str(e.value)


@pytest.mark.parametrize("kind, params, field", [
    ("deepocsort", {"match_thresh": 0.8}, "track_2d.params.match_thresh"),     # a ByteTrack parameter
    ("boosttrack", {"use_cmc": True}, "track_2d.params.use_cmc"),             # reserved
    ("deepocsort", {"cmc_off": False}, "track_2d.params.cmc_off"),            # reserved
    ("sfsort", {"central_timeout": 3}, "track_2d.params.central_timeout"),    # set from max_coast_frames
    ("hybridsort", {"delta_t": "x"}, "track_2d.params"),                      # boxmot rejects the value
])
def test_params_checked_against_the_kind(kind, params, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        TrackerConfig.from_dict({"kind": kind, "params": params})


@pytest.mark.parametrize("kind, params", [
    ("boosttrack", {"lambda_iou": 0.6, "use_dlo_boost": False}), ("deepocsort", {"w_association_emb": 0.7}),
    ("hybridsort", {"low_thresh": 0.2}), ("sfsort", {"new_track_th": 0.8}),
])
def test_own_params_accepted(kind, params):
    cfg = TrackerConfig.from_dict({"kind": kind, "params": params})
    assert cfg.params == params
