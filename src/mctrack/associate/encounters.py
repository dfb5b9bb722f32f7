"""Identity through close encounters: cut 3D tracks where targets meet, relink the fragments.

Per-frame 3D tracking (:mod:`.frames`) decides each frame greedily from the
prediction. Where two targets pass within about a body length and their
images merge, or where a track coasted and then took up a target again, that
greedy decision is the one most likely to be wrong — and once made it is
never revisited, so the track carries the wrong target on (an identity
swap). This module revisits exactly those decisions with the evidence from
*both* sides:

1. **Points**: the 3D point of every (track, frame) with rows of ≥ 2
   cameras (least-squares ray intersection, as the tracker's update).
2. **Cut** (:func:`cut_plan`): two tracks *meet* in a frame where their
   points lie within ``encounter_radius`` target sizes. A meeting is
   *ambiguous* when either track lacks a multi-camera point somewhere within
   ``encounter_frames`` of it (its rows merged with the other target's, or
   were rejected): the tracker had no clean view there. The frames of
   ambiguous meetings, padded by ``encounter_frames``, are encounter
   windows; their rows are released (unassigned). A meeting with clean
   points on both sides is left alone — the tracker saw the targets apart,
   e.g. turning away from each other, which straight-line motion would
   mistake for a crossing. Each track is also cut where its multi-camera
   points are more than ``_LOST_FRAMES`` frames apart (it coasted and took
   up a target again). The pieces are *fragments*.
3. **Relink** (:func:`link_fragments`): every fragment end is linked to at
   most one later fragment start by a linear assignment with a "no link"
   option (the gap-closing LAP of Jaqaman et al. 2008, *Nat. Methods*
   5:695). The cost of end ``i`` → start ``j`` is the mean of the forward
   and the backward constant-velocity extrapolation errors over the gap
   (end point and velocity from a line fitted to ``_N_FIT`` points at each
   end) divided by the gate ``3σ + v95·gap`` (σ = ``box_fraction`` × target
   size, ``v95`` the 95th percentile of per-frame 3D steps within
   fragments), plus, when the rows carry appearance, ``appearance_weight``
   × the fragments' appearance difference (0 same … 1 for ≥ 3σ apart, mean
   over the cameras both were seen in), minus ``_KEEP_BONUS`` for the next
   fragment of the same track (the tracker's own choice keeps a prior).
   Links beyond the motion gate or ``stitch_max_gap`` frames are
   impossible; an unlinked end or start costs 1, so a link is taken
   whenever it lowers the total and no link is forced to make the matching
   complete. Chains of links are one target.

Released rows are then filled by 2D continuity (:func:`.frames.tracklet_pieces`).
Measured on the same 2D tracklets (``benchmarks/association_accuracy.py``;
3D IDF1 at 2 cm, README "associate"): with appearance, the hard scene 0.70 →
0.95 and the default's 2- and 3-camera subsets up by up to 0.32; without
appearance this step alone changes the hard scene by +0.03 and the subsets
by ≤ 0.01. ``_LOST_FRAMES``, ``_N_FIT`` and ``_KEEP_BONUS`` were set on
those synthetic scenes without appearance (over 3–10, 4–10 and 0.25–1.0
they moved the hard scene's IDF1 by up to 0.03, without a trend).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..calibration import Camera
from .data import TrackletIndex

_LOST_FRAMES = 5   # a track whose multi-camera points are further apart than this coasted: cut it there
_KEEP_BONUS = 0.5  # gate units credited to a fragment's own track's next fragment (the tracker's choice)
_N_FIT = 6         # points fitted at each fragment end for its position and velocity


def track_points(idx: TrackletIndex, track: np.ndarray, cams: list[Camera]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3D point of every (track, frame) with rows of ≥ 2 cameras.

    Parameters
    ----------
    idx : rows of the calibrated cameras (``idx.camera_names[c]`` is ``cams[c]``).
    track : (N,) int64 track per row of ``idx`` (< 0: none).
    cams : cameras, world unit m.

    Returns
    -------
    tid, frame : (P,) int64, sorted by track then frame.
    X : (P, 3) float64 world m (least-squares intersection of the rows' rays).
    """
    from .frames import _intersect

    r = np.flatnonzero(track >= 0)
    if not r.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    o_all, d_all = idx.row_rays(dict(zip(idx.camera_names, cams)))
    cam = idx.keys["cam"].to_numpy()[idx.tk[r]]
    span = int(idx.frame.max()) + 1
    uk, g = np.unique(track[r] * span + idx.frame[r], return_inverse=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        X, _ = _intersect(g.ravel(), cam, o_all[r], d_all[r], len(uk), len(cams))
    ok = np.isfinite(X).all(1)
    return (uk // span)[ok], (uk % span)[ok], X[ok]


def cut_plan(tid: np.ndarray, frame: np.ndarray, X: np.ndarray, radius_m: float, pad: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Encounter windows and cut points of every track (step 2 of the module docstring).

    Parameters
    ----------
    tid, frame, X : from :func:`track_points` (sorted by track, frame).
    radius_m : two tracks' points closer than this (m) in one frame meet.
    pad : frames added on each side of a meeting.

    Returns
    -------
    released : (R,) int64 sorted keys ``track·S + frame`` (``S`` = last frame
        + 2 + pad) of the (track, frame) cells inside an encounter window.
    starts : (F,) int64 sorted keys of the first cell of every fragment
        (the track's first frame, the end of each window, each re-acquisition
        after more than ``_LOST_FRAMES`` frames).
    """
    if not len(tid):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    S = int(frame.max()) + 2 + pad
    meet = np.zeros((0, 2), np.int64)
    if radius_m > 0 and len(tid) > 1:
        # same-frame neighbours: frames 1 km apart in a 4th coordinate never pair
        pairs = cKDTree(np.column_stack([X, frame * 1e3])).query_pairs(radius_m, output_type="ndarray")
        pairs = pairs[tid[pairs[:, 0]] != tid[pairs[:, 1]]]
        off = np.arange(-pad, pad + 1)
        if len(pairs):  # keep the ambiguous meetings only (module docstring, step 2)
            have = np.sort(tid * S + frame)
            q = (tid[pairs] * S + frame[pairs])[..., None] + off          # (M, 2, 2·pad + 1)
            pos = np.minimum(np.searchsorted(have, q), len(have) - 1)
            clean = (have[pos] == q).all(axis=(1, 2))                     # both tracks: a point every frame
            pairs = pairs[~clean]
        ends = pairs.ravel()
        meet = np.column_stack([tid[ends], frame[ends]])
    off = np.arange(-pad, pad + 1)
    rel = np.unique((meet[:, :1] * S + np.clip(meet[:, 1:] + off[None, :], 0, S - 1)).ravel())
    key = tid * S + frame
    inside = np.isin(key, rel)
    # fragment starts: first point of a track, first point after a window, first point after a coast
    new_track = np.r_[True, tid[1:] != tid[:-1]]
    gap = np.r_[0, np.diff(frame)]
    after_window = np.r_[False, inside[:-1] & ~inside[1:]] & ~new_track
    # a window between two kept points that the points do not show (points missing inside it)
    crossed = np.zeros(len(key), bool)
    if rel.size:
        k = np.searchsorted(rel, key)
        prev_k = np.r_[0, k[:-1]]
        crossed = (k > prev_k) & ~new_track & ~inside & np.r_[False, ~inside[:-1]]
    start = (new_track | after_window | crossed | ((gap > _LOST_FRAMES) & ~new_track)) & ~inside
    return rel, np.unique(key[start])


def link_fragments(tid: np.ndarray, frame: np.ndarray, X: np.ndarray, sigma_m: float, max_gap: int,
                   origin: np.ndarray | None = None, keep_bonus: float = 0.0,
                   appearance_cost: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relink fragments across gaps (step 3 of the module docstring).

    Parameters
    ----------
    tid : (P,) int64 fragment of each point; ``frame``, ``X`` its frame and
        position (m); sorted by fragment, frame.
    sigma_m : position noise of a point, m.
    max_gap : the longest gap (frames) a link may bridge.
    origin : (F,) the track each fragment was cut from (None: unknown).
    keep_bonus : gate units credited to a fragment's link to the next
        fragment of its own track (the tracker's choice keeps a prior).
    appearance_cost : (F, F) cost added to each link for an appearance
        difference (gate units; NaN = no shared camera, nothing added).

    Returns
    -------
    frags : (F,) the fragment ids (sorted).
    rep : (F,) int64 the fragment id each fragment's chain starts with
        (itself when it has no predecessor).
    support : (F,) float64 ``1 - cost/gate`` of the link into each fragment
        (NaN without one).
    """
    frags, first = np.unique(tid, return_index=True)
    F = len(frags)
    rep = frags.copy()
    support = np.full(F, np.nan)
    if F < 2 or max_gap <= 0:
        return frags, rep, support
    last = np.r_[first[1:], len(tid)]
    pe, ve, ps, vs = (np.zeros((F, 3)) for _ in range(4))
    for i, (s, e) in enumerate(zip(first.tolist(), last.tolist())):  # per fragment (not per frame)
        pe[i], ve[i] = _line_end(frame[max(s, e - _N_FIT):e], X[max(s, e - _N_FIT):e], -1)
        ps[i], vs[i] = _line_end(frame[s:min(e, s + _N_FIT)], X[s:min(e, s + _N_FIT)], 0)
    te, ts = frame[last - 1], frame[first]
    gap = ts[None, :] - te[:, None]
    fwd = np.linalg.norm(pe[:, None] + ve[:, None] * gap[..., None] - ps[None], axis=2)
    bwd = np.linalg.norm(ps[None] - vs[None] * gap[..., None] - pe[:, None], axis=2)
    cost = 0.5 * (fwd + bwd)
    same = np.r_[tid[1:] == tid[:-1]]
    step = np.linalg.norm(np.diff(X, axis=0), axis=1)[same] / np.maximum(np.diff(frame)[same], 1)
    v95 = float(np.percentile(step, 95)) if step.size else 0.0
    gate = 3 * sigma_m + v95 * np.maximum(gap, 1)
    feas = (gap > 0) & (gap <= max_gap) & (cost < gate)
    if not feas.any():
        return frags, rep, support
    big = 1e9
    M = np.full((2 * F, 2 * F), big)
    nc = cost / gate
    if appearance_cost is not None:
        nc = nc + np.nan_to_num(appearance_cost, nan=0.0)
    if origin is not None and keep_bonus:  # the tracker's own continuation keeps a prior
        keep_link = (origin[:, None] == origin[None, :]) & feas
        keep_link &= gap == np.where(keep_link, gap, np.iinfo(np.int64).max).min(1, keepdims=True)
        nc = nc - keep_bonus * keep_link
    M[:F, :F] = np.where(feas, nc, big)
    M[:F, F:][np.diag_indices(F)] = 1.0   # end i left unlinked
    M[F:, :F][np.diag_indices(F)] = 1.0   # start j left unlinked
    M[F:, F:] = 0.0
    r, c = linear_sum_assignment(M)
    sel = (r < F) & (c < F)
    r, c = r[sel], c[sel]
    keep = feas[r, c]
    r, c = r[keep], c[keep]
    pred = np.arange(F)
    pred[c] = r
    support[c] = np.clip(1.0 - nc[r, c], 0.0, 1.0)
    for _ in range(F):  # follow chains to their first fragment
        nxt = pred[pred]
        if (nxt == pred).all():
            break
        pred = nxt
    return frags, frags[pred], support


def _line_end(f: np.ndarray, X: np.ndarray, at: int) -> tuple[np.ndarray, np.ndarray]:
    """Position at ``f[at]`` and velocity (m/frame) of a least-squares line through ``(f, X)``."""
    if len(f) < 2:
        return X[at], np.zeros(3)
    fc = f - f.mean()
    v = (fc[:, None] * (X - X.mean(0))).sum(0) / max(float((fc ** 2).sum()), 1e-12)
    return X.mean(0) + v * fc[at], v


def fragments_of(track: np.ndarray, frame: np.ndarray, released: np.ndarray, starts: np.ndarray, S: int
                 ) -> np.ndarray:
    """Fragment of each row from a :func:`cut_plan` (works on any subset of rows, e.g. one block).

    ``track, frame (N,)`` int64 per row (track < 0: none); ``released``,
    ``starts`` and ``S`` from :func:`cut_plan` / :func:`plan_key_span`.
    Returns ``(N,) int64``: the index into ``starts`` of the fragment holding
    the row, -1 for rows without a track, inside an encounter window, or
    before their track's first point.
    """
    out = np.full(len(track), -1, np.int64)
    r = np.flatnonzero(track >= 0)
    if not r.size or not len(starts):
        return out
    key = track[r] * S + frame[r]
    j = np.searchsorted(starts, key, "right") - 1
    ok = (j >= 0) & ~np.isin(key, released)
    ok[ok] &= (starts[j[ok]] // S) == track[r[ok]]
    out[r[ok]] = j[ok]
    return out


def plan_key_span(frame: np.ndarray, pad: int) -> int:
    """The ``S`` of the ``track·S + frame`` keys of :func:`cut_plan` for points ``frame``."""
    return int(frame.max()) + 2 + pad if len(frame) else 1


def appearance_sums(frag: np.ndarray, cam: np.ndarray, app: np.ndarray, n_frag: int, n_cams: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per (fragment, camera) sums ``(F, C, 2)`` and counts ``(F, C)`` of the rows' appearance.

    ``frag (N,)`` from :func:`fragments_of` (-1 skipped), ``cam (N,)`` camera
    index, ``app (N, 2)`` (rows with NaN skipped). Sums add over blocks.
    """
    ok = (frag >= 0) & np.isfinite(app).all(1)
    cell = frag[ok] * n_cams + cam[ok]
    sums = np.stack([np.bincount(cell, weights=app[ok, k], minlength=n_frag * n_cams) for k in range(2)], 1)
    cnt = np.bincount(cell, minlength=n_frag * n_cams)
    return sums.reshape(n_frag, n_cams, 2), cnt.reshape(n_frag, n_cams)


def appearance_cost(sums: np.ndarray, counts: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``(F, F)`` appearance cost of linking fragment ``i`` to ``j``.

    From the per-camera mean appearance of each fragment (``sums / counts``
    of :func:`appearance_sums`): the mean over the cameras both were seen in
    of ``min(Δ² / σ_c², 9) / 9`` (``σ_c`` per camera from
    :func:`.frames.appearance_sigma`): 0 for one appearance, 1 for 3σ apart
    or more; NaN where no camera is shared.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        A = np.where(counts[..., None] > 0, sums / counts[..., None], np.nan)
    d2 = ((A[:, None] - A[None]) ** 2).sum(3) / sigma[None, None, :] ** 2     # (F, F, C)
    c = np.minimum(d2, 9.0) / 9.0
    fin = np.isfinite(c)
    n = fin.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(fin, c, 0.0).sum(2) / n, np.nan)


def link_plan(tid: np.ndarray, frame: np.ndarray, X: np.ndarray, released: np.ndarray, starts: np.ndarray, S: int,
              sigma_m: float, max_gap: int, app_cost: np.ndarray | None = None
              ) -> tuple[np.ndarray, dict[int, float]]:
    """Relink the fragments of a :func:`cut_plan` on their points (step 3).

    ``tid, frame, X``: the points of :func:`track_points`; ``app_cost``:
    ``(F, F)`` over all fragments (``len(starts)``) or None. Returns ``lut``
    ``(F,) int64`` (fragment → the first fragment of its chain: the final
    label) and ``{label: weakest link support}``.
    """
    pj = fragments_of(tid, frame, released, starts, S)
    keep = pj >= 0
    ufr = np.unique(pj[keep])
    ac = app_cost[np.ix_(ufr, ufr)] if app_cost is not None else None
    frags, rep, sup = link_fragments(pj[keep], frame[keep], X[keep], sigma_m, max_gap,
                                     origin=starts[ufr] // S, keep_bonus=_KEEP_BONUS, appearance_cost=ac)
    lut = np.arange(len(starts))
    lut[frags] = rep
    chain_sup: dict[int, float] = {}
    for f, s_ in zip(rep[np.isfinite(sup)].tolist(), sup[np.isfinite(sup)].tolist()):
        chain_sup[f] = min(chain_sup.get(f, 1.0), s_)
    return lut, chain_sup


def resolve_encounters(idx: TrackletIndex, track: np.ndarray, cams: list[Camera], size_m: float,
                       radius: float, pad: int, max_gap: int, sigma_fraction: float,
                       appearance: np.ndarray | None = None, appearance_weight: float = 0.0
                       ) -> tuple[np.ndarray, dict[int, float]]:
    """Cut every 3D track at encounters and coasts, relink the fragments (module docstring).

    Parameters
    ----------
    idx, cams : as :func:`track_points`.
    track : (N,) int64 per row, from :func:`.frames.track_detections` (≥ 0
        a track, -1 unassigned, -2 not detected).
    size_m : median target size, m (NaN: nothing to do).
    radius : encounter radius in target sizes (0: no encounter cuts, coasts
        are still cut and relinked).
    pad : encounter window padding, frames.
    max_gap : longest gap a link bridges, frames (``stitch_max_gap``).
    sigma_fraction : point noise as a fraction of the target size (``box_fraction``).
    appearance : (C,) per-camera appearance spread (:func:`.frames.appearance_sigma`)
        when the rows carry appearance, else None.
    appearance_weight : gate units a link costs for appearances 3σ or more apart.

    Returns
    -------
    track : (N,) int64 new labels (rows inside encounter windows -1, -2 kept).
    support : ``{label: weakest link support}`` for labels joined by links.
    """
    if not np.isfinite(size_m) or not (track >= 0).any():
        return track, {}
    tid, frame, X = track_points(idx, track, cams)
    rel, starts = cut_plan(tid, frame, X, radius * size_m, pad)
    S = plan_key_span(frame, pad)
    frag = fragments_of(track, idx.frame, rel, starts, S)
    app_cost = None
    if appearance is not None and appearance_weight > 0 and idx.appearance is not None:
        cam = idx.keys["cam"].to_numpy()[idx.tk]
        sums, cnt = appearance_sums(np.where(idx.detected, frag, -1), cam, idx.appearance, len(starts),
                                    len(idx.camera_names))
        app_cost = appearance_weight * appearance_cost(sums, cnt, appearance)
    lut, chain_sup = link_plan(tid, frame, X, rel, starts, S, sigma_fraction * size_m, max_gap, app_cost)
    out = track.copy()
    has = track >= 0
    out[has] = np.where(frag[has] >= 0, lut[np.maximum(frag[has], 0)], -1)
    return out, chain_sup
