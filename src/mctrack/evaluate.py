"""Evaluation against ground truth: per-camera 2D tracking, cross-camera identity, 3D error.

2D (:func:`evaluate_2d`): HOTA / IDF1 / MOTA of each camera's tracklets against
its MOTChallenge ``gt.txt``. Cross-camera (:func:`association_purity`): whether
the tracklets given one global id show one ground-truth target. 3D
(:func:`evaluate_3d_tracking`): HOTA / IDF1 / MOTA / ID switches of the 3D
tracks on a distance similarity; :func:`evaluate_3d`: position error and
identity consistency of the triangulated global ids against 3D ground truth
(the synthetic scene).
:func:`evaluate_session` runs all that apply; :func:`main_subject_consistency`
reports identity consistency on real footage without ground truth.

Metrics come from TrackEval's metric classes (``trackeval.metrics.HOTA``,
``CLEAR``, ``Identity``; Luiten et al., IJCV 2021, the MOTChallenge reference
implementation), fed directly with the per-timestep data dict that TrackEval's
dataset classes would build from files; no files are written. The
preprocessing of that data dict is done here (see :func:`evaluate_2d`).

TrackEval compatibility (trackeval 1.3.0 from the package registry, numpy 2):
the metric classes use no removed numpy aliases (``np.float``/``np.int``) and
run unchanged, so no shim is installed. Two things are handled here: the metric
classes print their config unless ``PRINT_CONFIG`` is False (we pass False), and
they only read ``gt_ids``, ``tracker_ids``, ``similarity_scores`` and the
``num_*`` fields of the data dict, with ids relabelled to ``0..n-1``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from .errors import InputError

__all__ = ["INCLUDE_COASTED", "MATCH_DISTANCE_3D", "association_purity", "box_iou", "evaluate_2d", "evaluate_3d",
           "evaluate_3d_tracking", "evaluate_detections", "evaluate_session", "main_subject_consistency",
           "read_gt3d", "read_mot_gt", "unassociated_fraction", "write_metrics"]

#: Accepted values of ``include_coasted`` in :func:`evaluate_2d`.
INCLUDE_COASTED = ("none", "bridged", "all")

#: IoU threshold for a match in CLEAR (MOTA) and Identity (IDF1) and for the
#: ignore-region matching; 0.5 is the MOTChallenge / TrackEval default.
IOU_THRESHOLD = 0.5

def read_mot_gt(path: str | os.PathLike, frame_offset: int = 0) -> pd.DataFrame:
    """Read a MOTChallenge ground-truth file (``gt.txt``) via :func:`mctrack.io.mot.read_mot`.

    Each line is ``frame, id, bb_left, bb_top, bb_width, bb_height[, conf[, class[, visibility[, ...]]]]``
    (frames 1-based, frame 1 = first decoded frame of the camera's video; 1-based
    pixels). MOT15 files have 3D world coordinates in columns 8-10, which are
    read as class/visibility (TrackEval's MOT15 mode ignores them too).

    Parameters
    ----------
    path : path
        The ``gt.txt``.
    frame_offset : int
        The camera sheet's ``frame_offset``: session frame = file frame - 1 -
        ``frame_offset`` (rows before session frame 0 get negative frames;
        :func:`evaluate_session` drops frames outside the processed range).

    Returns
    -------
    DataFrame
        Columns ``frame`` (int64, 0-based session frame), ``id`` (int64),
        ``x1, y1, x2, y2`` (float32, 0-based pixel-corner xyxy px), ``conf``
        (float32; 0 marks an ignored / "don't care" box), ``class_id`` (int32),
        ``visibility`` (float32), sorted by ``(frame, id)``. Missing optional
        columns default to ``conf = 1``, ``class_id = -1``, ``visibility = -1``.

    Raises
    ------
    InputError
        Naming the file and ``line N, field k (name)`` for a missing file, a
        header, fewer than 6 fields, a non-numeric value, a non-integer or < 1
        frame, a non-integer id, a bad box, or an id repeated within one frame.
    """
    from .io.mot import read_mot

    return read_mot(path, "gt", frame_offset).drop(columns="line")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(N, M) float64`` of xyxy px boxes ``a (N, 4)`` and ``b (M, 4)``.

    Same formula as TrackEval's ``_calculate_box_ious`` (boxes with zero area
    have IoU 0 with everything).
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > np.finfo(float).eps)
    return np.clip(out, 0.0, 1.0)


def select_tracklet_rows(tr: pd.DataFrame, include_coasted: str) -> pd.DataFrame:
    """TRACKLET2D rows to score (and to export) under ``include_coasted``.

    ``"none"``: detected rows only; ``"all"``: every row; ``"bridged"``:
    detected rows plus non-detected rows between a track's first and last
    detected frame (coasting that ended in a re-detection). Shared by
    evaluation and the MOTChallenge export so both count the same rows.
    """
    detected = tr["frame_status"].astype(str).to_numpy() == "detected"
    if include_coasted == "all":
        return tr
    if include_coasted == "none":
        return tr[detected]
    # bridged: coasted rows between the first and last detected row of their track
    keys = ["camera_id", "track_id"] if "camera_id" in tr.columns else ["track_id"]
    fr = tr["frame"].to_numpy(np.int64)
    det_fr = pd.Series(np.where(detected, fr, np.nan), index=tr.index, dtype="float64")
    g = det_fr.groupby([tr[k] for k in keys])
    first = g.transform("min").to_numpy()
    last = g.transform("max").to_numpy()
    with np.errstate(invalid="ignore"):
        keep = detected | ((fr >= first) & (fr <= last))
    return tr[keep]


def _eval_camera(tr: pd.DataFrame, gt: pd.DataFrame) -> dict:
    """TrackEval HOTA / CLEAR / Identity of one camera (tracker rows already selected)."""
    g_frame = gt["frame"].to_numpy(np.int64)
    g_id = gt["id"].to_numpy(np.int64)
    g_box = gt[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    g_valid = gt["conf"].to_numpy(np.float64) != 0
    t_frame = tr["frame"].to_numpy(np.int64)
    t_id = tr["track_id"].to_numpy(np.int64)
    t_box = tr[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)

    frames = np.union1d(g_frame, t_frame)
    go, to = np.argsort(g_frame, kind="stable"), np.argsort(t_frame, kind="stable")
    g_frame, g_id, g_box, g_valid = g_frame[go], g_id[go], g_box[go], g_valid[go]
    t_frame, t_id, t_box = t_frame[to], t_id[to], t_box[to]
    gb = np.searchsorted(g_frame, np.r_[frames, frames[-1] + 1] if len(frames) else [0])
    tb = np.searchsorted(t_frame, np.r_[frames, frames[-1] + 1] if len(frames) else [0])

    gt_ids, tr_ids, sims = [], [], []
    for k in range(len(frames)):
        gs, ge, ts, te = gb[k], gb[k + 1], tb[k], tb[k + 1]
        gid, gbox, gval = g_id[gs:ge], g_box[gs:ge], g_valid[gs:ge]
        tid, tbox = t_id[ts:te], t_box[ts:te]
        sim = box_iou(gbox, tbox)
        if (~gval).any() and len(tid):
            # MOTChallenge-style ignore regions: Hungarian match (IoU >= 0.5) against
            # all GT; tracker boxes matched to an ignored GT box are removed.
            score = np.where(sim >= IOU_THRESHOLD - np.finfo(float).eps, sim, 0.0)
            r, c = linear_sum_assignment(-score)
            ok = score[r, c] > np.finfo(float).eps
            drop = c[ok][~gval[r[ok]]]
            keep_t = np.ones(len(tid), bool)
            keep_t[drop] = False
            tid, sim = tid[keep_t], sim[:, keep_t]
        gt_ids.append(gid[gval])
        tr_ids.append(tid)
        sims.append(sim[gval])

    return _trackeval_scores(gt_ids, tr_ids, sims, IOU_THRESHOLD)


def evaluate_2d(tracklets: pd.DataFrame, gt: pd.DataFrame | Mapping[str, pd.DataFrame],
                include_coasted: str = "bridged") -> dict[str, dict]:
    """Per-camera 2D tracking metrics of TRACKLET2D rows against ground truth.

    Parameters
    ----------
    tracklets : DataFrame
        TRACKLET2D rows (``camera_id, track_id, frame, x1, y1, x2, y2,
        frame_status``; px, 0-based frames). At most one row per
        ``(camera_id, track_id, frame)``.
    gt : DataFrame or mapping camera_id -> DataFrame
        Ground truth as returned by :func:`read_mot_gt` (0-based frames, xyxy
        px, ``conf == 0`` = ignored). A DataFrame with a ``camera_id`` column is
        split per camera; one without it applies to the single camera of
        ``tracklets``.
    include_coasted : {"none", "bridged", "all"}
        Which tracker rows count: ``"none"`` only ``detected`` rows;
        ``"bridged"`` (default) also ``coasted`` rows that lie between two
        detected rows of the same track (gaps filled, trailing coasts after the
        last detection dropped); ``"all"`` every row.

    Returns
    -------
    dict
        ``{camera_id: metrics}`` for every camera of the ground truth, where
        metrics has ``HOTA, DetA, AssA, LocA`` (TrackEval HOTA, averaged over
        the 19 localisation thresholds alpha = 0.05..0.95), ``IDF1, IDP, IDR``
        (Identity), ``MOTA, MOTP, IDSW, FP, FN`` (CLEAR), ``n_gt_ids,
        n_tracks, n_gt_dets, n_tracker_dets`` (after preprocessing). CLEAR and
        Identity match at IoU >= 0.5. Frames evaluated = union of GT and tracker
        frames (tracker rows in frames without GT count as false positives).

    Preprocessing (MOTChallenge style): per frame, GT rows with ``conf == 0``
    are ignore regions: tracker boxes matched to them by a Hungarian assignment
    over all GT boxes of the frame at IoU >= 0.5 are removed, then the ignored
    GT rows are removed. (TrackEval itself removes only tracker boxes matched to
    distractor *classes*; class ids are not used here.)

    Raises
    ------
    InputError
        Bad ``include_coasted``, missing columns, duplicated
        ``(camera_id, track_id, frame)`` rows, or GT without ``camera_id`` while
        ``tracklets`` has several cameras.
    """
    if include_coasted not in INCLUDE_COASTED:
        raise InputError(None, "include_coasted", f"unknown value {include_coasted!r}",
                         f"use one of {list(INCLUDE_COASTED)}")
    need = ["track_id", "frame", "x1", "y1", "x2", "y2", "frame_status"]
    missing = [c for c in need if c not in tracklets.columns]
    if missing:
        raise InputError(None, f"Tracklet2D column '{missing[0]}'", "missing", "pass a TRACKLET2D table")
    tr = tracklets
    if "camera_id" not in tr.columns:
        tr = tr.assign(camera_id="")
    tr = tr.assign(camera_id=tr["camera_id"].astype(str))
    if tr.duplicated(["camera_id", "track_id", "frame"]).any():
        raise InputError(None, "Tracklet2D", "several rows for one (camera_id, track_id, frame)",
                         "pass each track's rows once (do not concatenate a chunk twice)")
    tr = select_tracklet_rows(tr, include_coasted)

    if isinstance(gt, Mapping):
        gts = {str(k): v for k, v in gt.items()}
    elif "camera_id" in gt.columns:
        gts = {str(k): v for k, v in gt.groupby(gt["camera_id"].astype(str), sort=True)}
    else:
        cams = tr["camera_id"].unique()
        if len(cams) > 1:
            raise InputError(None, "gt", f"no camera_id column but tracklets have cameras {sorted(cams)}",
                             "pass a mapping camera_id -> ground truth")
        gts = {str(cams[0]) if len(cams) else "": gt}
    for cam, g in gts.items():
        miss = [c for c in ("frame", "id", "x1", "y1", "x2", "y2", "conf") if c not in g.columns]
        if miss:
            raise InputError(None, f"gt column '{miss[0]}'", f"missing (camera {cam!r})",
                             "read ground truth with read_mot_gt")
    by_cam = {str(k): v for k, v in tr.groupby("camera_id", sort=True)}
    return {cam: _eval_camera(by_cam.get(cam, tr.iloc[:0]), g) for cam, g in gts.items()}


# ---------------------------------------------------------------------------
# cross-camera identity and 3D
# ---------------------------------------------------------------------------


def read_gt3d(path: str | os.PathLike) -> pd.DataFrame:
    """Read 3D ground truth CSV ``frame,target_id,x,y,z`` (0-based frames, world units).

    Raises :class:`~mctrack.errors.InputError` when the file or a column is missing.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "3D ground truth not found", "run the simulate rule or fix the path")
    gt = pd.read_csv(path)
    for col in ("frame", "target_id", "x", "y", "z"):
        if col not in gt.columns:
            raise InputError(path, f"column '{col}'", "missing", "write a header frame,target_id,x,y,z")
    return gt


def _match_votes(rows: pd.DataFrame, a_id: str, b_id: str) -> dict:
    """One-to-one map ``a_id -> b_id`` maximising co-occurring rows (Hungarian on the vote matrix)."""
    if rows.empty:
        return {}
    votes = pd.crosstab(rows[a_id], rows[b_id])
    r, c = linear_sum_assignment(-votes.to_numpy())
    return {votes.index[i]: votes.columns[j] for i, j in zip(r, c) if votes.iat[i, j] > 0}


def evaluate_3d(points: pd.DataFrame, gt3d: pd.DataFrame, match_distance: float = 0.05) -> dict:
    """3D accuracy and identity of triangulated global ids against 3D ground truth.

    Each 3D point (POINTS3D row) is paired with the nearest GT target of its
    frame when closer than ``match_distance`` (world units). Global ids are
    mapped one-to-one to GT targets maximising the number of such pairs
    (Hungarian). Returns (distances in world units, m):

    - ``median_error_m``, ``p90_error_m``: distance of each mapped global id's
      points to its target, over all frames where both exist (no gating);
    - ``coverage``: fraction of GT target-frames for which the target's mapped
      global id has a point within ``match_distance``;
    - ``id_consistency``: of the points near some target, the fraction whose
      global id is the one mapped to that target (1 = no identity confusion);
    - ``false_point_fraction``: points farther than ``match_distance`` from every target;
    - ``n_targets``, ``n_global_ids_3d``, ``n_points``.
    """
    gt = gt3d.rename(columns={"x": "gx", "y": "gy", "z": "gz"})
    pairs = points[["frame", "global_id", "x", "y", "z"]].merge(gt, on="frame")
    pairs["dist"] = np.linalg.norm(pairs[["x", "y", "z"]].to_numpy() - pairs[["gx", "gy", "gz"]].to_numpy(), axis=1)
    nearest = pairs.loc[pairs.groupby(["frame", "global_id"])["dist"].idxmin()] if len(pairs) else pairs
    near = nearest[nearest["dist"] < match_distance]
    gid_to_target = _match_votes(near, "global_id", "target_id")
    mapped = pairs[pairs["global_id"].map(gid_to_target) == pairs["target_id"]]
    covered = mapped[mapped["dist"] < match_distance].drop_duplicates(["frame", "target_id"])
    consistent = (near["global_id"].map(gid_to_target) == near["target_id"]).mean() if len(near) else np.nan
    return {
        "median_error_m": float(mapped["dist"].median()) if len(mapped) else float("nan"),
        "p90_error_m": float(mapped["dist"].quantile(0.9)) if len(mapped) else float("nan"),
        "coverage": float(len(covered) / max(len(gt), 1)),
        "id_consistency": float(consistent),
        "false_point_fraction": float(1 - len(near) / len(points)) if len(points) else float("nan"),
        "n_targets": int(gt["target_id"].nunique()),
        "n_global_ids_3d": int(points["global_id"].nunique()),
        "n_points": int(len(points)),
    }


#: Default 3D match radius (m) of :func:`evaluate_3d_tracking`: 2 cm, a quarter
#: of the synthetic fish's 8 cm body length (issue 6 measures at 2 cm).
MATCH_DISTANCE_3D = 0.02


def _trackeval_scores(gt_ids: list, tr_ids: list, sims: list, threshold: float) -> dict:
    """Run TrackEval's HOTA, CLEAR and Identity on per-timestep id lists and similarity matrices.

    ``gt_ids[t]``, ``tr_ids[t]``: int arrays of the ids present at timestep
    ``t``; ``sims[t]``: ``(len(gt_ids[t]), len(tr_ids[t]))`` similarity in
    [0, 1]. CLEAR and Identity match at ``similarity >= threshold``; HOTA
    averages over its 19 thresholds 0.05..0.95. Ids are relabelled to
    ``0..n-1`` as TrackEval's dataset classes do. Returns the metric dict
    documented in :func:`evaluate_3d_tracking`.
    """
    from trackeval.metrics import CLEAR, HOTA, Identity

    all_g = np.unique(np.concatenate(gt_ids)) if gt_ids else np.empty(0, np.int64)
    all_t = np.unique(np.concatenate(tr_ids)) if tr_ids else np.empty(0, np.int64)
    data = {
        "gt_ids": [np.searchsorted(all_g, x).astype(int) for x in gt_ids],
        "tracker_ids": [np.searchsorted(all_t, x).astype(int) for x in tr_ids],
        "similarity_scores": sims,
        "num_gt_ids": len(all_g), "num_tracker_ids": len(all_t),
        "num_gt_dets": int(sum(len(x) for x in gt_ids)), "num_tracker_dets": int(sum(len(x) for x in tr_ids)),
        "num_timesteps": len(gt_ids),
    }
    cfg = {"THRESHOLD": threshold, "PRINT_CONFIG": False}
    hota = HOTA().eval_sequence(data)
    clear = CLEAR(dict(cfg)).eval_sequence(data)
    ident = Identity(dict(cfg)).eval_sequence(data)
    return {
        "HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
        "AssA": float(np.mean(hota["AssA"])), "LocA": float(np.mean(hota["LocA"])),
        "IDF1": float(ident["IDF1"]), "IDP": float(ident["IDP"]), "IDR": float(ident["IDR"]),
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]), "IDSW": int(clear["IDSW"]),
        "FP": int(clear["CLR_FP"]), "FN": int(clear["CLR_FN"]),
        "n_gt_ids": int(data["num_gt_ids"]), "n_tracks": int(data["num_tracker_ids"]),
        "n_gt_dets": int(data["num_gt_dets"]), "n_tracker_dets": int(data["num_tracker_dets"]),
    }


def evaluate_3d_tracking(points: pd.DataFrame, gt3d: pd.DataFrame, radius: float = MATCH_DISTANCE_3D) -> dict:
    """3D multi-object tracking metrics (HOTA, IDF1, MOTA, ID switches) of 3D tracks against 3D ground truth.

    Parameters
    ----------
    points : DataFrame
        One row per ``(frame, global_id)`` with ``x, y, z`` (world m), e.g. a
        POINTS3D table; rows with a non-finite coordinate are ignored.
    gt3d : DataFrame
        ``frame, target_id, x, y, z`` (as :func:`read_gt3d` returns; world m).
    radius : float
        Match radius in m (> 0). The similarity of a point and a target is
        ``max(0, 1 - d / (2·radius))`` (``d`` = Euclidean distance, m), the 3D
        analogue of IoU: it is 0.5 at ``d = radius``, so CLEAR (MOTA, IDSW)
        and Identity (IDF1), at TrackEval's default threshold 0.5 (as IoU
        0.5 in 2D), match a point and a target when ``d <= radius``; HOTA
        averages over its thresholds alpha = 0.05..0.95, i.e. over match
        distances ``2·(1 - alpha)·radius`` from 0.1·radius to 1.9·radius.
        (This is the convention of the figures in issue 6: at 2 cm the
        synthetic default scored IDF1 0.84, HOTA 0.76.)

    Returns
    -------
    dict
        TrackEval's ``HOTA, DetA, AssA, LocA`` (HOTA class, mean over alpha),
        ``IDF1, IDP, IDR`` (Identity), ``MOTA, MOTP, IDSW, FP, FN`` (CLEAR),
        ``n_gt_ids, n_tracks, n_gt_dets, n_tracker_dets``, plus
        ``n_tracks_3d`` (global ids with at least one 3D point) and
        ``match_radius_m``. Frames evaluated: union of GT and point frames.
        When ``points`` has ``std_x, std_y, std_z`` (m; POINTS3D, TRACK3D)
        also ``std_ratio_x, std_ratio_y, std_ratio_z``: RMS of the actual
        error along that axis over RMS of the predicted std, for points within
        ``radius`` of their nearest target (1 = calibrated error bars, > 1 =
        overconfident; None when nothing matches).

    Raises
    ------
    InputError
        Missing columns or a non-positive ``radius``.

    Metrics: Luiten et al., "HOTA", IJCV 2021 (TrackEval); Bernardin &
    Stiefelhagen 2008 (CLEAR MOT); Ristani et al. 2016 (IDF1).
    """
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(None, "evaluate.match_distance_3d", f"must be > 0, got {radius!r}", "use e.g. 0.02 (m)")
    for name, df, cols in (("points", points, ("frame", "global_id", "x", "y", "z")),
                           ("gt3d", gt3d, ("frame", "target_id", "x", "y", "z"))):
        miss = [c for c in cols if c not in df.columns]
        if miss:
            raise InputError(None, f"{name} column '{miss[0]}'", "missing", f"pass a table with columns {list(cols)}")
    pts = points[np.isfinite(points[["x", "y", "z"]].to_numpy(np.float64)).all(1)]
    p_frame, g_frame = pts["frame"].to_numpy(np.int64), gt3d["frame"].to_numpy(np.int64)
    po, go = np.argsort(p_frame, kind="stable"), np.argsort(g_frame, kind="stable")
    p_frame, p_id = p_frame[po], pts["global_id"].to_numpy(np.int64)[po]
    p_xyz = pts[["x", "y", "z"]].to_numpy(np.float64)[po]
    g_frame, g_id = g_frame[go], gt3d["target_id"].to_numpy(np.int64)[go]
    g_xyz = gt3d[["x", "y", "z"]].to_numpy(np.float64)[go]
    frames = np.union1d(p_frame, g_frame)
    pb = np.searchsorted(p_frame, frames), np.searchsorted(p_frame, frames, side="right")
    gb = np.searchsorted(g_frame, frames), np.searchsorted(g_frame, frames, side="right")
    has_std = all(c in pts.columns for c in ("std_x", "std_y", "std_z"))
    p_std = pts[["std_x", "std_y", "std_z"]].to_numpy(np.float64)[po] if has_std else None
    gt_ids, tr_ids, sims, errs, stds = [], [], [], [], []
    for ps, pe, gs, ge in zip(*pb, *gb):  # one timestep per frame, as TrackEval iterates
        d = np.linalg.norm(g_xyz[gs:ge, None, :] - p_xyz[None, ps:pe, :], axis=2)
        gt_ids.append(g_id[gs:ge])
        tr_ids.append(p_id[ps:pe])
        sims.append(np.clip(1.0 - d / (2.0 * radius), 0.0, 1.0))
        if has_std and d.size:
            near = np.argmin(d, axis=0)
            hit = d[near, np.arange(pe - ps)] <= radius
            errs.append(p_xyz[ps:pe][hit] - g_xyz[gs:ge][near[hit]])
            stds.append(p_std[ps:pe][hit])
    out = _trackeval_scores(gt_ids, tr_ids, sims, threshold=0.5)
    out["n_tracks_3d"] = int(pts["global_id"].nunique())
    out["match_radius_m"] = float(radius)
    if has_std:
        e = np.concatenate(errs) if errs else np.zeros((0, 3))
        sd = np.concatenate(stds) if stds else np.zeros((0, 3))
        ok = np.isfinite(sd).all(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.sqrt((e[ok] ** 2).mean(0)) / np.sqrt((sd[ok] ** 2).mean(0)) if ok.any() else np.full(3, np.nan)
        out.update({f"std_ratio_{a}": float(r) if np.isfinite(r) else None for a, r in zip("xyz", ratio)})
    return out


def unassociated_fraction(tracklets: pd.DataFrame, association: pd.DataFrame) -> dict:
    """How much of the 2D tracking the cross-camera association left single-camera.

    A tracklet ``(camera_id, track_id)`` is *unassociated* when its global id
    (ASSOCIATION table) holds tracklets of only its own camera (or it has no
    global id). Returns ``unassociated_tracklets`` (fraction of tracklets),
    ``unassociated_rows`` (fraction of detected TRACKLET2D rows, i.e. weighted
    by length) and ``n_tracklets``; NaN-free (0.0 when there are no tracklets).
    """
    det = tracklets[tracklets["frame_status"] == "detected"] if "frame_status" in tracklets else tracklets
    lengths = det.groupby(["camera_id", "track_id"]).size().rename("n").reset_index()
    keys = tracklets[["camera_id", "track_id"]].drop_duplicates()
    keys = keys.merge(lengths, on=["camera_id", "track_id"], how="left").fillna({"n": 0})
    a = association[["camera_id", "track_id", "global_id"]]
    n_cam = a.groupby("global_id")["camera_id"].nunique().rename("n_cam")
    keys = keys.merge(a, on=["camera_id", "track_id"], how="left").merge(n_cam, on="global_id", how="left")
    single = ~(keys["n_cam"].fillna(0).to_numpy() >= 2)
    n = keys["n"].to_numpy(np.float64)
    return {"unassociated_tracklets": float(single.mean()) if len(keys) else 0.0,
            "unassociated_rows": float(n[single].sum() / n.sum()) if n.sum() > 0 else 0.0,
            "n_tracklets": int(len(keys))}


def association_purity(tracklets: pd.DataFrame, association: pd.DataFrame, gt2d: Mapping[str, pd.DataFrame]) -> dict:
    """Cross-camera identity against per-camera 2D ground truth with shared target ids.

    Each detected tracklet row is labelled with the GT id of the box it
    overlaps best (IoU >= 0.5, :data:`IOU_THRESHOLD`) in its camera's ground
    truth. Returns:

    - ``purity``: fraction of labelled rows whose GT id is the majority GT id of
      their global id (1 = no global id mixes targets);
    - ``ids_per_target``: mean number of multi-camera global ids that carry
      each GT target (1 = each target has one global id across cameras);
    - ``n_multi_camera_ids``: global ids linked across ≥ 2 cameras.
    Only meaningful when GT ids denote the same target in every camera (true
    for the synthetic scene).
    """
    rows = tracklets[tracklets["frame_status"] == "detected"].merge(
        association[["camera_id", "track_id", "global_id", "n_linked_cameras"]], on=["camera_id", "track_id"])
    labelled = []
    for cam, gt in gt2d.items():
        r = rows[rows["camera_id"] == cam].reset_index(drop=True)
        g = gt[gt["conf"] > 0].reset_index(drop=True)
        m = r.reset_index().merge(g.reset_index(), on="frame", suffixes=("", "_gt"))
        if m.empty:
            continue
        a = m[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
        b = m[["x1_gt", "y1_gt", "x2_gt", "y2_gt"]].to_numpy(np.float64)
        lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        union = np.prod(a[:, 2:] - a[:, :2], axis=1) + np.prod(b[:, 2:] - b[:, :2], axis=1) - inter
        m["iou"] = inter / np.maximum(union, 1e-9)
        best = m.loc[m.groupby("index")["iou"].idxmax()]
        best = best[best["iou"] >= IOU_THRESHOLD]
        labelled.append(best[["global_id", "n_linked_cameras", "id"]])
    if not labelled:
        return {"purity": float("nan"), "ids_per_target": float("nan"), "n_multi_camera_ids": 0}
    lab = pd.concat(labelled, ignore_index=True)
    majority = lab.groupby("global_id")["id"].agg(lambda s: s.value_counts().index[0])
    purity = float((lab["id"].to_numpy() == lab["global_id"].map(majority).to_numpy()).mean())
    multi = lab[lab["n_linked_cameras"] >= 2]
    per_target = multi.assign(major=multi["global_id"].map(majority))
    per_target = per_target[per_target["major"] == per_target["id"]].groupby("id")["global_id"].nunique()
    return {"purity": purity, "ids_per_target": float(per_target.mean()) if len(per_target) else float("nan"),
            "n_multi_camera_ids": int(multi["global_id"].nunique())}


def evaluate_detections(detections: pd.DataFrame, gt2d: Mapping[str, pd.DataFrame]) -> dict[str, dict]:
    """Per-camera detection recall and precision at IoU >= 0.5 (one-to-one, Hungarian per frame).

    ``detections``: DETECTION table; ``gt2d``: camera -> :func:`read_mot_gt`
    table (``conf == 0`` rows ignored). As in :func:`_eval_camera` (CLEAR /
    Identity), IoUs below 0.5 are set to 0 *before* the assignment, so the
    Hungarian matching maximises the number of IoU >= 0.5 pairs rather than the
    total IoU. Also counts ``merged_detections``: detections overlapping two or
    more GT boxes (IoU > 0.1), the signature of touching targets detected as one
    blob. Returns ``{camera: {det_recall, det_precision, merged_detections,
    n_detections, n_gt}}`` (recall / precision 0 when there is nothing to count).
    """
    out = {}
    for cam, gt in gt2d.items():
        g = gt[gt["conf"] > 0]
        d = detections[detections["camera_id"] == cam]
        tp = merged = 0
        d_by_frame = dict(tuple(d.groupby("frame")))
        for f, gg in g.groupby("frame"):
            dd = d_by_frame.get(f)
            if dd is None:
                continue
            iou = box_iou(dd[["x1", "y1", "x2", "y2"]].to_numpy(), gg[["x1", "y1", "x2", "y2"]].to_numpy())
            score = np.where(iou >= IOU_THRESHOLD - np.finfo(float).eps, iou, 0.0)
            r, c = linear_sum_assignment(-score)
            tp += int((score[r, c] > 0).sum())
            merged += int(((iou > 0.1).sum(1) >= 2).sum())
        out[cam] = {"det_recall": tp / max(len(g), 1), "det_precision": tp / max(len(d), 1),
                    "merged_detections": merged, "n_detections": int(len(d)), "n_gt": int(len(g))}
    return out


def _in_range(df: pd.DataFrame | None, n_frames: int | None) -> pd.DataFrame | None:
    """Rows of ``df`` with ``0 <= frame < n_frames`` (all rows with frame >= 0 when ``n_frames`` is None)."""
    if df is None:
        return None
    f = df["frame"].to_numpy(np.int64)
    keep = f >= 0
    if n_frames is not None:
        keep &= f < int(n_frames)
    return df if keep.all() else df[keep].reset_index(drop=True)


def evaluate_session(tracklets: pd.DataFrame, gt2d_paths: Mapping[str, str | os.PathLike], association: pd.DataFrame,
                     points: pd.DataFrame, gt3d_path: str | os.PathLike | None, cfg: Mapping | None = None,
                     detections: pd.DataFrame | None = None, tracks3d: pd.DataFrame | None = None,
                     frame_offsets: Mapping[str, int] | None = None, n_frames: int | None = None,
                     raw_tracklets: pd.DataFrame | None = None) -> dict:
    """All metrics that the available ground truth allows, as one JSON-able dict.

    ``cfg`` is the config's ``evaluate`` section (``include_coasted``,
    ``match_distance_3d`` in m, default :data:`MATCH_DISTANCE_3D`,
    ``gt_ids_shared``). ``frame_offsets``: camera -> the camera sheet's
    ``frame_offset`` (GT frame 1 is the first decoded frame of that camera's
    video, so session frame = GT frame - 1 - offset); ``n_frames``: session
    frames processed. Only session frames ``0 <= f < n_frames`` are evaluated:
    GT, tracklet and detection rows outside that range are dropped (a GT file
    longer than the processed range does not count missed targets in frames
    never tracked).

    Returns ``{"cameras": {camera: 2D metrics, plus :func:`evaluate_detections`'
    keys when ``detections`` is given}, "association": association_purity(...)
    (only when ≥ 2 cameras have GT and ``cfg["gt_ids_shared"]`` is true: GT ids
    name the same target in every camera), "association_coverage":
    unassociated_fraction(...), "tracking_3d": evaluate_3d_tracking(...) merged
    with evaluate_3d(...) of the triangulated ``points`` (when 3D GT is given),
    "tracking_3d_smoothed": the same for ``tracks3d`` (TRACK3D, smoothed and
    gap-filled, when given), "cameras_global": per camera 2D metrics of the
    associated rows identified by their *global* id (what a user of one
    identity per animal sees in each view), "cameras_track2d": per camera 2D
    metrics of ``raw_tracklets`` (the per-camera tracker before association,
    when given), "summary": {...}}``. Comparing the three per-camera blocks
    shows whether association helped or hurt each view.
    """
    cfg = dict(cfg or {})
    offs = dict(frame_offsets or {})
    gts = {cam: _in_range(read_mot_gt(p, int(offs.get(cam, 0))), n_frames) for cam, p in gt2d_paths.items()}
    tracklets = _in_range(tracklets, n_frames)
    detections = _in_range(detections, n_frames)
    out: dict = {"cameras": evaluate_2d(tracklets, gts, cfg.get("include_coasted", "bridged")) if gts else {}}
    if detections is not None:
        for cam, m in evaluate_detections(detections, gts).items():
            out["cameras"].setdefault(cam, {}).update(m)
    if gts and len(association):
        ids = tracklets.merge(association[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"])
        ids = ids.assign(track_id=ids["global_id"]).drop(columns="global_id")
        rank = ids["frame_status"].astype(str).map({"detected": 0, "reprojected": 1}).fillna(2)
        ids = ids.assign(_r=rank).sort_values(["camera_id", "track_id", "frame", "_r"], kind="stable")
        ids = ids.drop_duplicates(["camera_id", "track_id", "frame"]).drop(columns="_r")
        out["cameras_global"] = evaluate_2d(ids, gts, cfg.get("include_coasted", "bridged"))
    if gts and raw_tracklets is not None:
        out["cameras_track2d"] = evaluate_2d(_in_range(raw_tracklets, n_frames), gts,
                                             cfg.get("include_coasted", "bridged"))
    if len(gts) >= 2 and cfg.get("gt_ids_shared", False):
        out["association"] = association_purity(tracklets, association, gts)
    if len(association):
        out["association_coverage"] = unassociated_fraction(tracklets, association)
    if gt3d_path:
        gt3d = read_gt3d(gt3d_path)
        radius = cfg.get("match_distance_3d", MATCH_DISTANCE_3D)
        out["tracking_3d"] = {**evaluate_3d_tracking(points, gt3d, radius), **evaluate_3d(points, gt3d, radius)}
        if tracks3d is not None:
            out["tracking_3d_smoothed"] = {**evaluate_3d_tracking(tracks3d, gt3d, radius),
                                           **evaluate_3d(tracks3d, gt3d, radius),
                                           "filled_fraction": float(tracks3d["filled"].mean()) if len(tracks3d)
                                           else 0.0}
    cams = out["cameras"].values()
    summary = {f"mean_{k}": float(np.mean([c[k] for c in cams])) for k in ("HOTA", "IDF1", "MOTA") if cams}
    for block in ("cameras_global", "cameras_track2d"):
        if out.get(block):
            summary.update({f"mean_{k}_{block.split('_')[1]}": float(np.mean([c[k] for c in out[block].values()]))
                            for k in ("HOTA", "IDF1")})
    if "tracking_3d" in out:
        summary.update({f"3d_{k}": out["tracking_3d"][k] for k in ("HOTA", "IDF1", "MOTA", "IDSW", "n_tracks_3d",
                                                                    "median_error_m", "coverage", "id_consistency")})
    if "tracking_3d_smoothed" in out:
        summary.update({f"3d_smoothed_{k}": out["tracking_3d_smoothed"][k] for k in ("IDF1", "HOTA", "median_error_m")})
    if "association_coverage" in out:
        summary["unassociated_tracklets"] = out["association_coverage"]["unassociated_tracklets"]
    if "association" in out:
        summary["association_purity"] = out["association"]["purity"]
    out["summary"] = summary
    return out


def _strict_json(v):
    """``v`` with NaN / inf floats replaced by None and numpy scalars by Python ones (recursively)."""
    if isinstance(v, dict):
        return {str(k): _strict_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strict_json(x) for x in v]
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if np.isfinite(v) else None
    return v


def write_metrics(metrics: dict, json_path: str | os.PathLike, tsv_path: str | os.PathLike) -> None:
    """Write ``metrics`` as strict JSON and as a flat ``section, key, value`` TSV (atomically).

    JSON is strict (RFC 8259): NaN and infinite values are written as ``null``
    (``json.dumps(allow_nan=False)`` would raise otherwise); the TSV keeps them
    as empty cells.
    """
    import json

    from .errors import atomic_path

    rows = []
    for section, val in metrics.items():
        if section == "cameras":
            rows += [(f"camera {cam}", k, v) for cam, m in val.items() for k, v in m.items()]
        else:
            rows += [(section, k, v) for k, v in val.items()]
    with atomic_path(json_path) as tmp:
        Path(tmp).write_text(json.dumps(_strict_json(metrics), indent=2, allow_nan=False, default=float))
    with atomic_path(tsv_path) as tmp:
        pd.DataFrame(rows, columns=["section", "metric", "value"]).to_csv(tmp, sep="\t", index=False)


def main_subject_consistency(session: dict, n_subjects: int = 2) -> dict:
    """Identity consistency of the most-triangulated global ids, without ground truth.

    ``session`` is :func:`mctrack.session.read_session`'s dict. For the
    ``n_subjects`` global ids with the most triangulated frames, reports the
    frames (of all ``T``) in which the id is triangulated, triangulated from
    ≥ 3 cameras and from every camera, and per camera the frames with a box of
    that id. A subject that keeps one global id across cameras has high counts
    everywhere; identity switches or missed links show as low counts and as
    extra global ids.
    """
    n_cam = session["n_cameras"]
    T, K = n_cam.shape
    tri = (n_cam >= 2).sum(0)
    top = np.argsort(-tri, kind="stable")[:n_subjects]
    C = len(session["camera_names"])
    subjects = []
    for k in top:
        subjects.append({
            "global_id": int(k),
            "frames_triangulated": int(tri[k]),
            "frames_with_3plus_cameras": int((n_cam[:, k] >= 3).sum()),
            "frames_with_all_cameras": int((n_cam[:, k] >= C).sum()),
            "frames_with_box_per_camera": {cam: int(np.isfinite(session["bboxes"][cam][:, k, 0]).sum())
                                           for cam in session["camera_names"]},
            "median_reprojection_error_px": float(np.nanmedian(session["reprojection_residual"][:, k]))
            if tri[k] else float("nan"),
        })
    return {"n_frames": int(T), "n_global_ids": int(K), "n_global_ids_triangulated": int((tri > 0).sum()),
            "subjects": subjects}


def ground_foot_agreement(tracklets: pd.DataFrame, association: pd.DataFrame, points: pd.DataFrame,
                          cameras: Mapping, max_reprojection_error: float = 40.0) -> dict:
    """Ground-plane foot positions vs triangulated foot points of the same detections (issue 8, real footage).

    For every (frame, global id) whose detected TRACKLET2D rows come from >= 2
    cameras, the foot point of each box (bottom centre, px) is (a) mapped to
    the world plane ``z = 0`` with :func:`mctrack.ground.homography_from_camera`
    and averaged over the cameras — what ground-plane mode reports — and (b)
    triangulated with the full calibration
    (:func:`mctrack.triangulate.triangulate_points`, gate
    ``max_reprojection_error`` px). ``cameras``: camera id →
    :class:`~mctrack.calibration.Camera` (world frame in m, z up from the floor).

    Returns ``n`` (points compared), ``median_m`` / ``p90_m`` (horizontal
    distance between (a) and (b), m), ``median_foot_z_m`` (height of the
    triangulated feet above the calibration's ``z = 0``: the floor plane's
    offset) and ``centre_median_m`` (distance of (a) to the x, y of the
    box-centre 3D ``points`` of the same frame and global id, for reference;
    NaN without common points).
    """
    from .ground import foot_points, ground_positions, homography_from_camera
    from .triangulate import triangulate_points

    cams = list(cameras)
    maps = {c: homography_from_camera(cameras[c]) for c in cams}
    tr = tracklets[(tracklets["frame_status"].astype(str) == "detected")
                   & tracklets["camera_id"].astype(str).isin(cams)].reset_index(drop=True)
    g = ground_positions(tr, maps)
    uv = foot_points(tr)
    rows = tr[["camera_id", "track_id", "frame"]].assign(camera_id=tr["camera_id"].astype(str), gx=g[:, 0],
                                                         gy=g[:, 1], u=uv[:, 0], v=uv[:, 1])
    rows = rows.merge(association[["camera_id", "track_id", "global_id"]].astype({"camera_id": str}),
                      on=["camera_id", "track_id"])
    rows = rows[np.isfinite(rows[["gx", "gy"]].to_numpy()).all(axis=1)]
    rows = rows.drop_duplicates(["frame", "global_id", "camera_id"])
    rows = rows[rows.groupby(["frame", "global_id"])["camera_id"].transform("size") >= 2]
    keys = rows[["frame", "global_id"]].drop_duplicates().reset_index(drop=True)
    if keys.empty:
        return {"n": 0, "median_m": float("nan"), "p90_m": float("nan"), "median_foot_z_m": float("nan"),
                "centre_median_m": float("nan")}
    kidx = pd.MultiIndex.from_frame(keys)
    k = kidx.get_indexer(pd.MultiIndex.from_frame(rows[["frame", "global_id"]]))
    c = pd.Index(cams).get_indexer(rows["camera_id"])
    obs = np.zeros((len(keys), len(cams), 2))
    mask = np.zeros((len(keys), len(cams)), bool)
    obs[k, c] = rows[["u", "v"]].to_numpy()
    mask[k, c] = True
    X, _, _ = triangulate_points(obs, mask, [cameras[n] for n in cams], max_reprojection_error)
    ground = rows.groupby(["frame", "global_id"])[["gx", "gy"]].mean().reindex(kidx).to_numpy()
    ok = np.isfinite(X).all(axis=1)
    d = np.hypot(*(ground[ok] - X[ok, :2]).T)
    cen = keys.assign(gx=ground[:, 0], gy=ground[:, 1]).merge(points[["frame", "global_id", "x", "y"]])
    dc = np.hypot(cen["gx"] - cen["x"], cen["gy"] - cen["y"])
    return {"n": int(ok.sum()), "median_m": float(np.median(d)) if ok.any() else float("nan"),
            "p90_m": float(np.quantile(d, 0.9)) if ok.any() else float("nan"),
            "median_foot_z_m": float(np.median(X[ok, 2])) if ok.any() else float("nan"),
            "centre_median_m": float(np.median(dc)) if len(dc) else float("nan")}

