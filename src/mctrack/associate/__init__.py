"""Cross-camera association: one global id per target, from calibrated geometry.

Runs once per session on the tracklets of all cameras and chunks (so a global
id never changes at a chunk border), in four steps:

1. **Evidence** (:mod:`.evidence`): every pair of tracklets of different
   cameras that overlap in time is scored over (a sample of) its shared
   frames with a soft geometric likelihood — the ray–ray distance through a
   Gaussian kernel whose width comes from the calibration and the box sizes —
   minus negative evidence from cameras that should see the pair's 3D point
   but show nothing there.
2. **Grouping** (:mod:`.solve`): correlation clustering of the tracklet graph
   with hard cannot-links (two tracklets of one camera alive in one frame,
   coasted frames included); exact MILP (``scipy.optimize.milp``) for small
   components, greedy contraction for large ones. One target may have several
   fragments per camera over time. Each group's *support* is its weakest link.
3. **3D feedback** (:mod:`.refine`): tracklets that leave their group's 3D
   track (identity switch in one camera) are split and regrouped; groups
   whose 3D tracks continue each other across a gap are stitched.
4. **Reprojection** (:mod:`.refine`): where a camera missed a target that
   other cameras see, its projected 3D position is added to the tracklet as
   ``frame_status = "reprojected"`` (never ``"detected"``).

:func:`associate_session` does all four and returns the refined tracklets;
:func:`associate` returns only the association of the given tracklets (steps
1, 2 and the stitching of 3; no tracklet is split or extended).

For long sessions, :class:`.blocks.BlockAssociation` gives the same result
(``method: frames``) from blocks of frames, holding one block's rows at a time
(the workflow's associate rule uses it).

Global ids are numbered 0..K−1 by decreasing number of detected observations
(ties: first tracklet in ``(camera_id, track_id)`` order), so id 0 is the most
observed target and the numbering does not depend on row order.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..calibration import Camera
from ..tables import ASSOCIATION, PAIR_EVIDENCE, TRACKLET2D
from .config import AssociationConfig
from .data import TrackletIndex
from .encounters import resolve_encounters
from .evidence import EVIDENCE_COLUMNS, candidate_pairs, closest_points, kernel_evidence, pair_scores, ray_distance
from .frames import appearance_sigma, pieces_table, track_detections, tracklet_pieces
from .refine import apply_splits, find_splits, group_points, reprojected_rows, row_labels, stitch_groups
from .solve import group_support, solve_groups

__all__ = ["AssociationConfig", "AssociationResult", "associate", "associate_session", "candidate_pairs",
           "closest_points", "kernel_evidence", "pair_evidence", "ray_distance"]

log = logging.getLogger("mctrack.associate")


class AssociationResult(NamedTuple):
    """Output of :func:`associate_session`.

    ``tracklets``: TRACKLET2D rows after the 3D feedback (split tracklets have
    new track ids; ``"reprojected"`` rows added). ``association``: ASSOCIATION
    table of those tracklets. ``evidence``: PAIR_EVIDENCE table.
    """

    tracklets: pd.DataFrame
    association: pd.DataFrame
    evidence: pd.DataFrame


def pair_evidence(tracklets: pd.DataFrame, cameras: dict[str, Camera],
                  cfg: AssociationConfig | None = None) -> pd.DataFrame:
    """Soft evidence of every overlapping tracklet pair of two cameras (PAIR_EVIDENCE columns but ``linked``).

    See :func:`mctrack.associate.evidence.pair_scores`; tracklets of cameras
    not in ``cameras`` are ignored.
    """
    cfg = cfg or AssociationConfig()
    tr = tracklets[tracklets["camera_id"].astype(str).isin(list(cameras))]
    return pair_scores(TrackletIndex.build(tr), cameras, cfg)[EVIDENCE_COLUMNS]


def _group(idx: TrackletIndex, ev: pd.DataFrame, cfg: AssociationConfig,
           extra: set[tuple[int, int]] | None = None) -> np.ndarray:
    k = idx.keys
    return solve_groups(len(k), ev["a"].to_numpy(), ev["b"].to_numpy(), ev["score"].to_numpy(),
                        k["cam"].to_numpy(), k["first"].to_numpy(), k["end"].to_numpy(), cfg.exact_max_nodes, extra)


def _contradiction_links(idx: TrackletIndex, labels: np.ndarray, pieces, new_idx: TrackletIndex
                         ) -> set[tuple[int, int]]:
    """Cannot-links of disagreeing pieces with the other cameras' tracklets of their old group that overlap them."""
    old = idx.keys.assign(group=labels)
    pos = pd.Series(np.arange(len(new_idx.keys)),
                    index=pd.MultiIndex.from_frame(new_idx.keys[["camera_id", "track_id"]]))
    nk = new_idx.keys
    out = set()
    old_of = pd.Series(labels, index=pd.MultiIndex.from_frame(idx.keys[["camera_id", "track_id"]]))
    for cam, new_tid, old_tid, dis in pieces:
        if not dis:
            continue
        p = int(pos[(cam, new_tid)])
        g = old_of[(cam, old_tid)]
        mates = old[(old["group"] == g) & (old["camera_id"] != cam)]
        for c2, t2 in zip(mates["camera_id"], mates["track_id"]):
            if (c2, t2) not in pos.index:
                continue
            q = int(pos[(c2, t2)])
            if nk["first"].iat[p] <= nk["end"].iat[q] and nk["first"].iat[q] <= nk["end"].iat[p]:
                out.add((min(p, q), max(p, q)))
    return out


def _merge_back(tr, idx, labels, parent, cameras, cfg):
    """Pieces of one split tracklet that were regrouped into one target get one track id again.

    A cut that the regrouping does not confirm (both sides in one global id)
    is undone, so splitting never fragments a camera's track for nothing.
    """
    k = idx.keys.assign(group=labels, parent=parent)
    first_id = k.sort_values("first").groupby(["camera_id", "parent", "group"])["track_id"].transform("first")
    first_id = first_id.reindex(k.index)
    if (first_id.to_numpy() == k["track_id"].to_numpy()).all():
        return tr, idx, labels, parent, None
    remap = pd.Series(first_id.to_numpy(), index=pd.MultiIndex.from_frame(k[["camera_id", "track_id"]]))
    key = pd.MultiIndex.from_arrays([tr["camera_id"].astype(str).to_numpy(), tr["track_id"].to_numpy(np.int64)])
    tr = tr.assign(track_id=remap.reindex(key).to_numpy(np.int64))
    new_idx = TrackletIndex.build(tr)
    old_pos = pd.Series(np.arange(len(k)), index=pd.MultiIndex.from_frame(k[["camera_id", "track_id"]]))
    j = old_pos.reindex(pd.MultiIndex.from_frame(new_idx.keys[["camera_id", "track_id"]])).to_numpy()
    ev = pair_scores(new_idx, cameras, cfg)
    return tr, new_idx, labels[j], parent[j], ev


def _split_and_regroup(tr, idx, labels, parent, ev, cams, cameras, cfg):
    """Split tracklets that leave their group's 3D track and group everything again (``split: true``)."""
    splits = find_splits(idx, labels, row_labels(idx, labels, cams, cfg), cfg)
    if not splits:
        return tr, idx, labels, parent, ev
    tr, pieces = apply_splits(tr, idx, splits)
    new_idx = TrackletIndex.build(tr)
    extra = _contradiction_links(idx, labels, pieces, new_idx)
    log.info("3D feedback: %d tracklet(s) split into %d piece(s); %d contradicting piece(s)",
             len({(c, o) for c, _, o, _ in pieces}), len(pieces), sum(d for *_, d in pieces))
    par = {(c, n): o for c, n, o, _ in pieces}
    parent = np.array([par.get((c, t), t) for c, t in zip(new_idx.keys["camera_id"],
                                                          new_idx.keys["track_id"])], np.int64)
    idx = new_idx
    ev = pair_scores(idx, cameras, cfg)
    labels = _group(idx, ev, cfg, extra)
    tr, idx, labels, parent, ev2 = _merge_back(tr, idx, labels, parent, cameras, cfg)
    return tr, idx, labels, parent, (ev if ev2 is None else ev2)


def _frames_labels(tr, idx, cams, cfg):
    """Groups from per-frame 3D tracking (``method: frames``): tracklets cut into pieces of one 3D track.

    Returns the re-numbered tracklets, their index, one label per piece
    (pieces no 3D track claimed are their own group), the parent track ids,
    each piece's support (mean over the rows the tracker assigned of the
    Gaussian kernel ``exp(-d²/2τ²)`` of the row's distance to its track's
    prediction; NaN for pieces with fewer than ``min_run`` such rows) and the kernel width in m for stitching
    (``box_fraction`` × the median target size).
    """
    app_sig = appearance_sigma(idx) if idx.appearance is not None and cfg.appearance_weight > 0 else None
    track, cost, size_m = track_detections(idx, cams, cfg, app_sig)
    track, link_sup = resolve_encounters(idx, track, cams, size_m, cfg.encounter_radius, cfg.encounter_frames,
                                         cfg.stitch_max_gap, cfg.box_fraction, app_sig, cfg.appearance_weight)
    cost = np.where(track >= 0, cost, np.nan)
    piece, ptrack = tracklet_pieces(idx, track, cfg.min_run)
    tr, parent_of_piece = pieces_table(tr, idx, piece)
    new_idx = TrackletIndex.build(tr)
    # pieces in new_idx key order: the key of each piece is (camera_id, new track id) of its rows
    keys_of_row = pd.MultiIndex.from_arrays([tr["camera_id"].astype(str).to_numpy(), tr["track_id"].to_numpy()])
    first = pd.Series(np.arange(len(piece))).groupby(piece).first().to_numpy()
    pos = pd.Series(np.arange(len(new_idx.keys)),
                    index=pd.MultiIndex.from_frame(new_idx.keys[["camera_id", "track_id"]]))
    k_of_piece = pos.reindex(keys_of_row[first]).to_numpy()
    lab = np.empty(len(new_idx.keys), np.int64)
    n_track = int(ptrack.max()) + 1 if len(ptrack) and ptrack.max() >= 0 else 0
    lone = ptrack < 0
    lab[k_of_piece] = np.where(lone, n_track + np.cumsum(lone) - 1, ptrack)
    _, lab = np.unique(lab, return_inverse=True)
    parent = np.empty(len(new_idx.keys), np.int64)
    parent[k_of_piece] = parent_of_piece
    hit = np.isfinite(cost)  # rows the tracker assigned (cost = their normalised distance to the prediction)
    n_hit = np.bincount(piece[hit], minlength=len(ptrack))
    sup = np.bincount(piece[hit], weights=np.exp(-0.5 * cost[hit] ** 2), minlength=len(ptrack)) / np.maximum(n_hit, 1)
    sup = np.where(lone | (n_hit < cfg.min_run), np.nan, sup)  # pieces attached by 2D continuity alone: not judged
    if link_sup:  # a track relinked across an encounter or a coast is as strong as its weakest link
        ls = np.full(n_track, np.nan)
        ls[np.fromiter(link_sup, np.int64)] = np.fromiter(link_sup.values(), float)
        lsp = ls[np.maximum(ptrack, 0)]
        sup = np.where(~lone & np.isfinite(lsp), np.fmin(sup, lsp), sup)
    piece_support = np.empty(len(new_idx.keys))
    piece_support[k_of_piece] = sup
    log.info("per-frame 3D tracking: %d 3D tracks; %d tracklets cut into %d pieces (%d unclaimed)",
             n_track, idx.keys.shape[0], len(ptrack), int(lone.sum()))
    return tr, new_idx, lab.ravel().astype(np.int64), parent, piece_support, cfg.box_fraction * size_m


def _numbered(idx: TrackletIndex, labels: np.ndarray) -> np.ndarray:
    """Relabel groups 0..G-1 by decreasing detected observations (ties: first member)."""
    G = int(labels.max()) + 1 if len(labels) else 0
    n_det = idx.keys["n_det"].to_numpy()
    total = np.bincount(labels, weights=n_det, minlength=G)
    first_member = np.full(G, len(labels))
    np.minimum.at(first_member, labels, np.arange(len(labels)))
    rank = np.lexsort((first_member, -total))
    gid = np.empty(G, np.int64)
    gid[rank] = np.arange(G)
    return gid[labels]


def _association_table(idx, labels: np.ndarray, parent: np.ndarray, piece_support: np.ndarray | None,
                       stitch_sup: dict[int, float], ev: pd.DataFrame | None, ridx, cfg: AssociationConfig
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ASSOCIATION and PAIR_EVIDENCE tables from the groups of ``idx.keys`` (and ``ridx.keys``: uncalibrated).

    ``idx``/``ridx`` need only ``keys`` (``camera_id, track_id, cam, n_det``);
    ``ridx`` may be None. Support per global id: the weakest piece (frames
    method, ``piece_support``) or the weakest link (``ev``), and the weakest
    stitch. Logs a warning per global id below ``cfg.doubtful_support``.
    """
    G = int(labels.max()) + 1 if len(labels) else 0
    support = np.full(G, np.nan)
    if piece_support is not None and G:  # weakest piece of each global id (pieces of one camera alone: NaN)
        multi = pd.Series(idx.keys["cam"].to_numpy()).groupby(labels).transform("nunique").to_numpy() >= 2
        ps = np.where(multi, piece_support, np.nan)
        support = pd.Series(ps).groupby(labels).min().reindex(np.arange(G)).to_numpy(np.float64)
        for g, s in stitch_sup.items():
            support[g] = s if np.isnan(support[g]) else min(support[g], s)
    elif ev is not None and len(ev) and G:
        support = group_support(labels, ev["a"].to_numpy(), ev["b"].to_numpy(), ev["score"].to_numpy(),
                                ev["support"].to_numpy())
        for g, s in stitch_sup.items():
            support[g] = s if np.isnan(support[g]) else min(support[g], s)
    gids = _numbered(idx, labels)
    keys = idx.keys
    n_cams = pd.Series(keys["camera_id"].to_numpy()).groupby(gids).transform("nunique").to_numpy() \
        if len(keys) else np.zeros(0, int)
    assoc = pd.DataFrame({"camera_id": keys["camera_id"], "track_id": keys["track_id"], "global_id": gids,
                          "n_frames": keys["n_det"], "n_linked_cameras": n_cams,
                          "support": support[labels] if G else np.zeros(0), "parent_track_id": parent})
    if ridx is not None and len(ridx.keys):  # tracklets of uncalibrated cameras: one target each
        rk = ridx.keys
        rg = _numbered(ridx, np.arange(len(rk), dtype=np.int64)) + (int(gids.max()) + 1 if len(gids) else 0)
        assoc = pd.concat([assoc, pd.DataFrame({
            "camera_id": rk["camera_id"], "track_id": rk["track_id"], "global_id": rg, "n_frames": rk["n_det"],
            "n_linked_cameras": 1, "support": np.nan, "parent_track_id": rk["track_id"]})], ignore_index=True)
    assoc = ASSOCIATION.coerce(assoc)
    doubtful = assoc.drop_duplicates("global_id")
    doubtful = doubtful[doubtful["support"] < cfg.doubtful_support]
    for g, s in zip(doubtful["global_id"], doubtful["support"]):
        members = assoc.loc[assoc["global_id"] == g, ["camera_id", "track_id"]].to_numpy().tolist()
        log.warning("doubtful merge: global id %d has support %.2f (weakest link); tracklets %s", g, s, members)
    if ev is not None and len(ev):
        evid = ev.assign(linked=labels[ev["a"].to_numpy()] == labels[ev["b"].to_numpy()])
        evid = PAIR_EVIDENCE.coerce(evid)
    else:
        evid = PAIR_EVIDENCE.empty()
    return assoc, evid


def _run(tracklets: pd.DataFrame, cameras: dict[str, Camera] | None, cfg: AssociationConfig,
         feedback: bool) -> AssociationResult:
    tracklets = TRACKLET2D.coerce(tracklets)
    cam_ids = tracklets["camera_id"].astype(str)
    names = sorted(set(cam_ids) & set(cameras or {}))
    calibrated = len(names) >= 2
    tr = tracklets[cam_ids.isin(names)] if calibrated else tracklets.iloc[:0]
    rest = tracklets[~cam_ids.isin(names)] if calibrated else tracklets
    idx = TrackletIndex.build(tr)
    cams = [cameras[n] for n in idx.camera_names] if calibrated else []
    parent = idx.keys["track_id"].to_numpy().copy()
    stitch_sup: dict[int, float] = {}
    piece_support = None
    if calibrated and len(idx.keys) and cfg.method == "frames" and feedback:
        tr, idx, labels, parent, piece_support, sig = _frames_labels(tr, idx, cams, cfg)
        ev = None  # identity was decided per frame: no tracklet-pair evidence
    else:
        ev = pair_scores(idx, cameras, cfg) if calibrated and len(idx.keys) else None
        labels = _group(idx, ev, cfg) if ev is not None else np.arange(len(idx.keys), dtype=np.int64)
        if calibrated and len(idx.keys) and cfg.refine and feedback and cfg.split:
            tr, idx, labels, parent, ev = _split_and_regroup(tr, idx, labels, parent, ev, cams, cameras, cfg)
    if calibrated and len(idx.keys) and cfg.refine:
        pts = group_points(idx, labels, cams)
        if ev is not None:
            sig = float(np.nanmedian(ev["sigma"])) if len(ev) else 0.0
        labels, stitch_sup = stitch_groups(idx, labels, pts, sig, cfg.stitch_max_gap)
        if stitch_sup:
            log.info("3D stitching joined %d track(s) across gaps", len(stitch_sup))
        if feedback and cfg.reproject:
            if stitch_sup:  # labels changed: solve the points of the joined groups again
                pts = group_points(idx, labels, cams)
            tr = reprojected_rows(idx, labels, pts, cams, tr, cfg.reproject_min_cameras)
    assoc, evid = _association_table(idx, labels, parent, piece_support, stitch_sup, ev,
                                     TrackletIndex.build(rest) if len(rest) else None, cfg)
    out_tr = TRACKLET2D.coerce(pd.concat([tr, rest], ignore_index=True)) if feedback else tracklets
    out_tr = out_tr.sort_values(["camera_id", "track_id", "frame"], kind="stable").reset_index(drop=True)
    return AssociationResult(out_tr, assoc, evid)


def associate_session(tracklets: pd.DataFrame, cameras: dict[str, Camera] | None,
                      cfg: AssociationConfig | None = None) -> AssociationResult:
    """Associate all tracklets of a session, with 3D feedback (see module docstring).

    Parameters
    ----------
    tracklets : TRACKLET2D table of all cameras and chunks of the session.
    cameras : calibrated cameras keyed by sheet ``camera_id``, or None/empty
        (then, or with fewer than 2 calibrated cameras, each tracklet is its
        own target). Tracklets of cameras not in it are their own targets.
    cfg : :class:`AssociationConfig`.

    Returns
    -------
    :class:`AssociationResult` (refined tracklets, ASSOCIATION, PAIR_EVIDENCE).

    Raises
    ------
    InputError
        Missing columns, duplicated ``(camera_id, track_id, frame)`` rows,
        non-finite detected centroids, negative frames.
    """
    return _run(tracklets, cameras, cfg or AssociationConfig(), feedback=True)


def associate(tracklets: pd.DataFrame, cameras: dict[str, Camera] | None,
              cfg: AssociationConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give every tracklet of a session a global id (no tracklet is split or extended).

    Whole tracklets are grouped (``method: tracklets``) whatever ``cfg.method``
    says: the ``frames`` method cuts tracklets, which this function must not.

    Same parameters and errors as :func:`associate_session`. Returns the
    ASSOCIATION table (one row per ``(camera_id, track_id)`` of the input) and
    the PAIR_EVIDENCE table (``linked`` True where a pair ended up in one target).
    """
    res = _run(tracklets, cameras, cfg or AssociationConfig(), feedback=False)
    return res.association, res.evidence
