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
   up a target again). A track missing points for up to ``_GAP_MEET``
   frames meets others on the straight line between its points either
   side (:func:`_with_short_gaps`). The pieces are *fragments*.
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
   complete. Chains of links are one target. An end may also be cut back
   ``_TRIMS`` frames to link a start born as it died (the end's last frames
   followed a ghost: two cameras' rows of different targets); the rows after
   the cut are released.

Rows that relinking leaves two to a track in one camera-frame (a linked end's
trailing and start's leading single-camera rows) are released too
(:func:`shared_cells`). Released rows are then filled by 2D continuity
(:func:`.frames.tracklet_pieces`).
Measured on the same 2D tracklets (``benchmarks/association_accuracy.py``;
3D IDF1 at 2 cm, README "associate"): with appearance, the hard scene 0.70 →
0.95 and the default's 2- and 3-camera subsets up by up to 0.15; without
appearance this step alone changes the hard scene by +0.04 (0.66 → 0.70) and the subsets
by ≤ 0.02. ``_LOST_FRAMES``, ``_N_FIT`` and ``_KEEP_BONUS`` were set on
those synthetic scenes without appearance (over 3–10, 4–10 and 0.25–1.0
they moved the hard scene's IDF1 by up to 0.03, without a trend). ``_TRIMS``,
``_REBIRTH`` and ``_TRIM_PENALTY`` were set on hard seed 1, whose two largest
identity losses were ghost tails (0.833 → 0.892; seed 3 +0.005, the other hard
seeds, the default scene and its 54 two-camera pairs within ±0.003): cut-backs
(4, 8, 12) or (3, 6, 10, 15, 20), a penalty of 0 to 0.5 and rebirth within 2 or 5
frames gave the same on all of them; rebirth within 10 frames cost seed 0 0.03.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..calibration import Camera
from .data import TrackletIndex

_LOST_FRAMES = 5   # a track whose multi-camera points are further apart than this coasted: cut it there
_KEEP_BONUS = 0.5  # gate units credited to a fragment's own track's next fragment (the tracker's choice)
_GAP_MEET = 10    # gaps of a track's points up to this many frames are interpolated to find meetings in them
_N_FIT = 6         # points fitted at each fragment end for its position and velocity
_TRIMS = (4, 8, 12)  # frames an end may be cut back to link a start born as it died (its tail left the target)
_REBIRTH = 2       # ... when the start begins no later than this many frames after the end
_TRIM_PENALTY = 0.25  # gate units a link from a trimmed end costs more


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
    if not (track >= 0).any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    o_all, d_all = idx.row_rays(dict(zip(idx.camera_names, cams)))
    cam = idx.keys["cam"].to_numpy()[idx.tk]
    return points_from_rows(track, idx.frame, cam, o_all, d_all, len(cams))


def points_from_rows(track: np.ndarray, frame: np.ndarray, cam: np.ndarray, o: np.ndarray, d: np.ndarray,
                     n_cams: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`track_points` from plain per-row arrays (``(N,)`` track, frame, camera index; ``(N, 3)`` rays).

    Rows of one (track, frame) must come in camera order (as in a
    TrackletIndex) for bit-identical sums whichever block they come from.
    """
    from .frames import _intersect

    r = np.flatnonzero(track >= 0)
    if not r.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    span = int(frame.max()) + 1
    uk, g = np.unique(track[r] * span + frame[r], return_inverse=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        X, _ = _intersect(g.ravel(), cam[r], o[r], d[r], len(uk), n_cams)
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
        # a track missing points for a few frames (merged or rejected rows) meets others on its
        # interpolated path there: the frames where two targets are closest are often exactly those
        mt, mf, mX = _with_short_gaps(tid, frame, X)
        # same-frame neighbours: frames 1 km apart in a 4th coordinate never pair
        pairs = cKDTree(np.column_stack([mX, mf * 1e3])).query_pairs(radius_m, output_type="ndarray")
        pairs = pairs[mt[pairs[:, 0]] != mt[pairs[:, 1]]]
        off = np.arange(-pad, pad + 1)
        if len(pairs):  # keep the ambiguous meetings only (module docstring, step 2)
            have = np.sort(tid * S + frame)
            q = (mt[pairs] * S + mf[pairs])[..., None] + off          # (M, 2, 2·pad + 1)
            pos = np.minimum(np.searchsorted(have, q), len(have) - 1)
            clean = (have[pos] == q).all(axis=(1, 2))                     # both tracks: a point every frame
            pairs = pairs[~clean]
        ends = pairs.ravel()
        meet = np.column_stack([mt[ends], mf[ends]])
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


def _with_short_gaps(tid: np.ndarray, frame: np.ndarray, X: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of :func:`track_points` plus linear interpolation over each track's short gaps.

    ``tid, frame (P,)`` int64 sorted by track then frame, ``X (P, 3)`` m.
    Returns the three arrays with points appended (not sorted) for every
    missing frame of gaps of at most ``_GAP_MEET`` frames (frame difference
    ≤ ``_GAP_MEET``), on the straight line between the points either side.
    Only used to find meetings: the frames where two targets are closest
    are often those where one of them has no multi-camera point (its rows
    merged with the other's), and without them a track that took the other
    target through the merge is never cut. ``_GAP_MEET`` = 10 was chosen
    over 5–40 on the hard scene's seeds 0–5 (seed 4 +0.023 3D IDF1, the
    others within ±0.002) and left the two-view seeds unchanged.
    """
    g = np.flatnonzero((tid[1:] == tid[:-1]) & (np.diff(frame) > 1) & (np.diff(frame) <= _GAP_MEET))
    if not g.size:
        return tid, frame, X
    n = frame[g + 1] - frame[g] - 1
    a = np.repeat(g, n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 1         # 1..n within each gap
    w = (k / np.repeat(n + 1, n))[:, None]
    Xi = (1 - w) * X[a] + w * X[a + 1]
    return np.r_[tid, tid[a]], np.r_[frame, frame[a] + k], np.vstack([X, Xi])


def link_fragments(tid: np.ndarray, frame: np.ndarray, X: np.ndarray, sigma_m: float, max_gap: int,
                   origin: np.ndarray | None = None, keep_bonus: float = 0.0,
                   appearance: tuple[np.ndarray, np.ndarray, float] | None = None,
                   trims: tuple[int, ...] = ()
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Relink fragments across gaps (step 3 of the module docstring).

    Parameters
    ----------
    tid : (P,) int64 fragment of each point; ``frame``, ``X`` its frame and
        position (m); sorted by fragment, frame.
    sigma_m : position noise of a point, m.
    max_gap : the longest gap (frames) a link may bridge.
    origin : (F,) the track each fragment was cut from (None: unknown), F =
        the distinct values of ``tid`` in sorted order.
    keep_bonus : gate units credited to a fragment's link to the next
        fragment of its own track (the tracker's choice keeps a prior).
    appearance : ``(means, sigma, weight)``: ``(F, C, 2)`` per-camera mean
        appearance of each fragment (NaN where unseen), ``(C,)`` per-camera
        spread and the weight; a link costs ``weight`` × the mean over shared
        cameras of ``min(Δ²/σ², 9)/9`` (nothing without a shared camera).
    trims : frames an end may be cut back by (e.g. :data:`_TRIMS`; empty: no
        trimming). A track whose last frames drifted off its target (a
        two-camera ghost) ends far from where the target went, and a new
        track takes the target up as it dies. An end cut back ``m`` frames
        (its position and velocity fitted to the points before) may link a
        start that begins no later than ``_REBIRTH`` frames after the uncut
        end, for ``_TRIM_PENALTY`` gate units more; per pair of end and start
        the cheaper of the cut and uncut links is the candidate.

    Returns
    -------
    frags : (F,) the fragment ids (sorted).
    rep : (F,) int64 the fragment id each fragment's chain starts with
        (itself when it has no predecessor).
    support : (F,) float64 ``1 - cost`` of the link into each fragment
        (NaN without one).
    cut : (F,) int64 the last frame each fragment keeps: its last point's
        frame before the point where its end was cut back to link, -1 when
        its end was not cut (the caller releases the rows after it).

    Only pairs within ``max_gap`` frames are scored, and the assignment is
    solved per connected component of the candidate links (the same
    optimum as one matrix over all fragments, whose other entries are
    impossible links): memory and time grow with the fragments, not their
    square.
    """
    frags, first = np.unique(tid, return_index=True)
    F = len(frags)
    rep = frags.copy()
    support = np.full(F, np.nan)
    cut = np.full(F, -1, np.int64)
    if F < 2 or max_gap <= 0:
        return frags, rep, support, cut
    last = np.r_[first[1:], len(tid)]
    pe, ve, ps, vs = (np.zeros((F, 3)) for _ in range(4))
    for i, (s, e) in enumerate(zip(first.tolist(), last.tolist())):  # per fragment (not per frame)
        pe[i], ve[i] = _line_end(frame[max(s, e - _N_FIT):e], X[max(s, e - _N_FIT):e], -1)
        ps[i], vs[i] = _line_end(frame[s:min(e, s + _N_FIT)], X[s:min(e, s + _N_FIT)], 0)
    te, ts = frame[last - 1], frame[first]
    # candidate links: starts within (te, te + max_gap] of each end
    so = np.argsort(ts, kind="stable")
    lo = np.searchsorted(ts[so], te, "right")
    hi = np.searchsorted(ts[so], te + max_gap, "right")
    n = hi - lo
    i = np.repeat(np.arange(F), n)
    j = so[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
    ci = np.full(len(i), -1, np.int64)     # per candidate: the trimmed end's last frame (-1: not trimmed)
    pe_i, ve_i = pe[i], ve[i]
    if trims:
        ti, tj, tc, tp, tv = _trimmed_ends(frame, X, first, last, te, ts, trims)
        i, j, ci = np.r_[i, ti], np.r_[j, tj], np.r_[ci, tc]
        pe_i, ve_i = np.concatenate([pe_i, tp]), np.concatenate([ve_i, tv])
    if not len(i):
        return frags, rep, support, cut
    gap = (ts[j] - np.where(ci >= 0, ci, te[i])).astype(float)
    fwd = np.linalg.norm(pe_i + ve_i * gap[:, None] - ps[j], axis=1)
    bwd = np.linalg.norm(ps[j] - vs[j] * gap[:, None] - pe_i, axis=1)
    cost = 0.5 * (fwd + bwd)
    same = np.r_[tid[1:] == tid[:-1]]
    step = np.linalg.norm(np.diff(X, axis=0), axis=1)[same] / np.maximum(np.diff(frame)[same], 1)
    v95 = float(np.percentile(step, 95)) if step.size else 0.0
    gate = 3 * sigma_m + v95 * np.maximum(gap, 1)
    ok = cost < gate
    i, j, gap, nc, ci = i[ok], j[ok], gap[ok], (cost / gate)[ok] + _TRIM_PENALTY * (ci[ok] >= 0), ci[ok]
    if not len(i):
        return frags, rep, support, cut
    if appearance is not None:
        means, sig, wgt = appearance
        d2 = ((means[i] - means[j]) ** 2).sum(2) / np.asarray(sig)[None, :] ** 2      # (L, C)
        c = np.minimum(d2, 9.0) / 9.0
        fin = np.isfinite(c)
        k = fin.sum(1)
        nc = nc + wgt * np.where(k > 0, np.where(fin, c, 0.0).sum(1) / np.maximum(k, 1), 0.0)
    if origin is not None and keep_bonus:  # the tracker's own continuation keeps a prior
        own = origin[i] == origin[j]
        g_own = np.where(own, gap, np.inf)
        best = np.full(F, np.inf)
        np.minimum.at(best, i, g_own)
        nc = nc - keep_bonus * (own & (g_own == best[i]))
    if trims:  # one candidate per (end, start): the cheaper of the trimmed and the uncut link
        o = np.lexsort((nc, j, i))
        o = o[np.r_[True, (i[o][1:] != i[o][:-1]) | (j[o][1:] != j[o][:-1])]]
        i, j, gap, nc, ci = i[o], j[o], gap[o], nc[o], ci[o]
    # components of the candidate graph (ends 0..F-1, starts F..2F-1), one assignment each
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    L = len(i)
    _, comp = connected_components(coo_matrix((np.ones(L), (i, F + j)), shape=(2 * F, 2 * F)), directed=False)
    pred = np.arange(F)
    lc = comp[i]
    order = np.argsort(lc, kind="stable")
    cuts = np.r_[0, np.flatnonzero(np.diff(lc[order])) + 1, L]
    big = 1e9
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):   # per component (small)
        sel = order[a:b]
        ei, ej = np.unique(i[sel], return_inverse=True)
        si, sj = np.unique(j[sel], return_inverse=True)
        nE, nS = len(ei), len(si)
        M = np.full((nE + nS, nS + nE), big)
        M[ej.ravel(), sj.ravel()] = nc[sel]
        C = np.full((nE, nS), -1, np.int64)     # candidate of each (end, start) cell
        C[ej.ravel(), sj.ravel()] = sel
        M[:nE, nS:][np.diag_indices(nE)] = 1.0   # end left unlinked
        M[nE:, :nS][np.diag_indices(nS)] = 1.0   # start left unlinked
        M[nE:, nS:] = 0.0
        r, cc = linear_sum_assignment(M)
        m = (r < nE) & (cc < nS)
        r, cc = r[m], cc[m]
        m = M[r, cc] < big
        pred[si[cc[m]]] = ei[r[m]]
        support[si[cc[m]]] = np.clip(1.0 - M[r[m], cc[m]], 0.0, 1.0)
        cut[ei[r[m]]] = ci[C[r[m], cc[m]]]
    for _ in range(F):  # follow chains to their first fragment
        nxt = pred[pred]
        if (nxt == pred).all():
            break
        pred = nxt
    return frags, frags[pred], support, cut


def _trimmed_ends(frame: np.ndarray, X: np.ndarray, first: np.ndarray, last: np.ndarray, te: np.ndarray,
                  ts: np.ndarray, trims: tuple[int, ...]):
    """Candidate links from ends cut back ``m`` frames (``m`` in ``trims``) to starts born as the end died.

    For fragment ``k`` (points ``first[k]:last[k]`` of ``frame, X``, sorted by
    frame), cut back to its last point at or before ``te[k] - m`` (at least 3
    points kept), every other fragment starting after that point and no later
    than ``te[k] + _REBIRTH``. Returns end index, start index, the kept end's
    last frame and its fitted position and velocity (``_N_FIT`` points), one
    row per candidate. The fits loop over the ends that have a candidate only.
    """
    F = len(first)
    so = np.argsort(ts, kind="stable")
    tss = ts[so]
    span = int(frame.max()) + 2
    key = np.repeat(np.arange(F), last - first) * span + frame   # sorted: fragment, then frame
    out = []
    for m in trims:
        pos = np.searchsorted(key, np.arange(F) * span + (te - m), "right")   # one past the last kept point
        ok = pos - first >= 3
        tm = frame[np.maximum(pos - 1, 0)]
        lo = np.searchsorted(tss, tm, "right")
        hi = np.searchsorted(tss, te + _REBIRTH, "right")
        for k in np.flatnonzero(ok & (hi > lo)).tolist():
            js = so[lo[k]:hi[k]]
            js = js[js != k]
            if not js.size:
                continue
            a = max(first[k], pos[k] - _N_FIT)
            p, v = _line_end(frame[a:pos[k]], X[a:pos[k]], -1)
            out.append((np.full(js.size, k), js, np.full(js.size, tm[k]), np.tile(p, (js.size, 1)),
                        np.tile(v, (js.size, 1))))
    if not out:
        return (np.zeros(0, np.int64),) * 3 + (np.zeros((0, 3)),) * 2
    return tuple(np.concatenate([o[n] for o in out]) for n in range(5))


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


def appearance_means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(F, C, 2)`` per-camera mean appearance of each fragment from :func:`appearance_sums` (NaN where unseen)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[..., None] > 0, sums / counts[..., None], np.nan)


def link_plan(tid: np.ndarray, frame: np.ndarray, X: np.ndarray, released: np.ndarray, starts: np.ndarray, S: int,
              sigma_m: float, max_gap: int, appearance: tuple[np.ndarray, np.ndarray, float] | None = None
              ) -> tuple[np.ndarray, dict[int, float], np.ndarray]:
    """Relink the fragments of a :func:`cut_plan` on their points (step 3).

    ``tid, frame, X``: the points of :func:`track_points`; ``appearance``:
    ``(means (F, C, 2), sigma (C,), weight)`` over all fragments
    (``len(starts)``; :func:`appearance_means`) or None. Returns ``lut``
    ``(F,) int64`` (fragment → the first fragment of its chain: the final
    label), ``{label: weakest link support}`` and ``keep_until`` ``(F,)
    int64``: the last frame of each fragment whose end was cut back to link
    (:data:`_TRIMS`; its later rows are released), int64 max otherwise.
    """
    pj = fragments_of(tid, frame, released, starts, S)
    keep = pj >= 0
    ufr = np.unique(pj[keep])
    app = (appearance[0][ufr], appearance[1], appearance[2]) if appearance is not None else None
    frags, rep, sup, cut = link_fragments(pj[keep], frame[keep], X[keep], sigma_m, max_gap,
                                          origin=starts[ufr] // S, keep_bonus=_KEEP_BONUS, appearance=app,
                                          trims=_TRIMS)
    lut = np.arange(len(starts))
    lut[frags] = rep
    keep_until = np.full(len(starts), np.iinfo(np.int64).max)
    keep_until[frags] = np.where(cut >= 0, cut, np.iinfo(np.int64).max)
    chain_sup: dict[int, float] = {}
    for f, s_ in zip(rep[np.isfinite(sup)].tolist(), sup[np.isfinite(sup)].tolist()):
        chain_sup[f] = min(chain_sup.get(f, 1.0), s_)
    return lut, chain_sup, keep_until


def resolve_encounters(idx: TrackletIndex, track: np.ndarray, cams: list[Camera], size_m: float,
                       radius: float, pad: int, max_gap: int, sigma_fraction: float,
                       app_sigma: np.ndarray | None = None, appearance_weight: float = 0.0
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
    app_sigma : (C,) per-camera appearance spread (:func:`.frames.appearance_sigma`)
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
    if app_sigma is not None and appearance_weight > 0 and idx.appearance is not None:
        cam = idx.keys["cam"].to_numpy()[idx.tk]
        sums, cnt = appearance_sums(np.where(idx.detected, frag, -1), cam, idx.appearance, len(starts),
                                    len(idx.camera_names))
        app_cost = (appearance_means(sums, cnt), app_sigma, appearance_weight)
    lut, chain_sup, keep_until = link_plan(tid, frame, X, rel, starts, S, sigma_fraction * size_m, max_gap,
                                           app_cost)
    return relinked(track, frag, idx.keys["cam"].to_numpy()[idx.tk], idx.frame, lut, keep_until), chain_sup


def relinked(track: np.ndarray, frag: np.ndarray, cam: np.ndarray, frame: np.ndarray, lut: np.ndarray,
             keep_until: np.ndarray) -> np.ndarray:
    """Rows' tracks after relinking (works on any subset of rows, e.g. one block).

    ``track, frag, cam, frame (N,)`` int64 per row (``frag`` from
    :func:`fragments_of`); ``lut, keep_until (F,)`` from :func:`link_plan`.
    A row of a fragment takes its chain's label; rows without a fragment
    (encounter windows) and rows after a fragment's cut-back end become -1,
    as do rows left two to a track in one camera-frame (:func:`shared_cells`);
    rows without a track keep theirs (-1, -2). Returns a new ``(N,)`` array.
    """
    has = track >= 0
    f = np.maximum(frag, 0)
    out = np.where(has, np.where((frag >= 0) & (frame <= keep_until[f]), lut[f], -1), track)
    out[shared_cells(out, cam, frame)] = -1
    return out


def shared_cells(track: np.ndarray, cam: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Rows whose track has another row in the same camera and frame after relinking.

    ``track, cam, frame (N,)`` int64 per row (track < 0: none). Fragments are
    cut and linked on multi-camera points, but a track's single-camera rows
    reach past its points: an end's trailing rows and the linked start's
    leading rows can hold two tracklets of one camera in one frame. Both are
    released; the 2D continuity fill of :func:`.frames.tracklet_pieces` then
    gives the track the row nearer (in frames) to its tracklet's assigned
    rows, neither on a tie. Returns the row indices.
    """
    r = np.flatnonzero(track >= 0)
    if r.size < 2:
        return r[:0]
    span = int(frame.max()) + 1
    n_t = int(track.max()) + 1
    _, inv, cnt = np.unique((cam[r] * span + frame[r]) * n_t + track[r], return_inverse=True, return_counts=True)
    return r[cnt[inv] > 1]
