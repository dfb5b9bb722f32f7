"""3D consensus fed back into 2D: split switched tracklets, stitch gaps, reproject misses.

After a first grouping every ``(frame, group)`` seen by ≥ 2 cameras is
triangulated (:func:`group_points`: batched
least-squares ray intersection, no outlier dropping). Then:

- **Split** (:func:`row_labels`, :func:`find_splits`; only with ``split``).
  Each detected row is compared with every group's point triangulated from
  the *other* cameras only (leave-one-out, ≥ 2 other cameras) and labelled
  with its own group if that fits (within ``split_tolerance`` box sizes,
  ``sqrt(w·h)`` px), else with the other group that fits. A tracklet is cut
  where its labels change for at least ``split_min_frames`` rows (shorter
  runs are absorbed by their neighbours): an identity switch inside one
  camera. Pieces that leave their group get cannot-links to the group's
  other-camera tracklets they contradict, everything is grouped again, and
  pieces of one tracklet that end up in one group are joined again.
- **Stitch** (:func:`stitch_groups`). A group whose 3D track ends and another
  whose 3D track starts at most ``stitch_max_gap`` frames later are joined
  when the start lies within the gate of the constant-velocity extrapolation
  of the end (gate = 3σ + v₉₅·gap, σ the median kernel width of the pair
  evidence in m, v₉₅ the 95th percentile of all 3D speeds in m/frame) and no
  cannot-link is violated; ends and starts are matched one-to-one at minimum
  cost (``scipy.optimize.linear_sum_assignment``). This rejoins a target that
  every camera lost at once.
- **Reproject** (:func:`reprojected_rows`). Where a target's 3D point exists
  but a camera that tracked it elsewhere has no detected row in that frame
  (between the first and last row of the target in that camera), the point's
  projection becomes a row with ``frame_status = "reprojected"`` (box size
  from the nearest detected row of the same tracklet; ``det_index = -1``,
  confidence NaN). Coasted rows there are replaced (the 3D consensus beats
  the 2D tracker's extrapolation). Never marked ``"detected"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..calibration import Camera
from ..tables import TRACKLET2D
from .config import AssociationConfig
from .data import TrackletIndex


def group_points(idx: TrackletIndex, labels: np.ndarray, cams: list[Camera]) -> dict:
    """Least-squares 3D point of every ``(frame, group)`` of detected rows seen by ≥ 2 cameras.

    The point minimises the summed squared distance to the rows' back-projected
    rays, ``X = (Σ Pᵢ)⁻¹ Σ Pᵢ oᵢ`` with ``Pᵢ = I − dᵢdᵢᵀ`` (the N-view midpoint
    method, H&Z §12.1 generalised); the final 3D output comes from
    :mod:`mctrack.triangulate`. Returns ``frame, group (Gp,)``, ``X (Gp, 3)``
    (NaN when < 2 cameras).
    """
    det = np.flatnonzero(idx.detected)
    grp = labels[idx.tk[det]]
    fr = idx.frame[det]
    nG = int(labels.max()) + 1 if len(labels) else 1
    uk, gi = np.unique(fr * nG + grp, return_inverse=True)
    gi = gi.ravel()
    G = len(uk)
    o, d = idx.row_rays(dict(zip(idx.camera_names, cams)))
    o, d = o[det], d[det]
    S, b, n_cam = _ray_sums(gi, o, d, G)
    X = np.full((G, 3), np.nan)
    ok = n_cam >= 2
    X[ok] = _solve3(S[ok], b[ok])
    out = {"frame": uk // nG, "group": uk % nG, "X": X, "n": n_cam}
    return out


def _ray_sums(gi: np.ndarray, o: np.ndarray, d: np.ndarray, G: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group ``Σ (I − d dᵀ)`` (G, 3, 3), ``Σ (I − d dᵀ) o`` (G, 3) and the ray count, without (N, 3, 3) temporaries."""
    n = np.bincount(gi, minlength=G).astype(np.float64)
    S = np.empty((G, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            S[:, i, j] = S[:, j, i] = (n if i == j else 0.0) - np.bincount(gi, weights=d[:, i] * d[:, j], minlength=G)
    do = np.einsum("ni,ni->n", d, o)
    b = np.stack([np.bincount(gi, weights=o[:, i] - d[:, i] * do, minlength=G) for i in range(3)], axis=1)
    return S, b, n.astype(np.int64)


def _solve3(S: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``S x = b`` for ``(G, 3, 3)``; NaN rows where ``S`` is singular (parallel rays)."""
    out = np.full(b.shape, np.nan)
    if not len(S):
        return out
    good = np.abs(np.linalg.det(S)) > 1e-12
    out[good] = np.linalg.solve(S[good], b[good][..., None])[..., 0]
    return out


def _runs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding of a 1D array: (values, starts, lengths)."""
    if not len(v):
        return v, np.zeros(0, int), np.zeros(0, int)
    ch = np.flatnonzero(np.diff(v) != 0) + 1
    starts = np.r_[0, ch]
    lengths = np.diff(np.r_[starts, len(v)])
    return v[starts], starts, lengths


def _segment(lab: np.ndarray, min_len: int) -> np.ndarray:
    """Smoothed labels of a row sequence: runs shorter than ``min_len`` take their longer neighbour's value."""
    lab = np.asarray(lab).copy()
    while True:
        vals, starts, lengths = _runs(lab)
        if len(vals) <= 1:
            return lab
        short = np.flatnonzero(lengths < min_len)
        if not short.size:
            return lab
        k = short[np.argmin(lengths[short])]
        left = lengths[k - 1] if k > 0 else -1
        right = lengths[k + 1] if k + 1 < len(vals) else -1
        lab[starts[k]:starts[k] + lengths[k]] = vals[k - 1] if left >= right else vals[k + 1]


def row_labels(idx: TrackletIndex, labels: np.ndarray, cams: list[Camera], cfg: AssociationConfig) -> np.ndarray:
    """Which group's 3D track each detected row fits, judged without the row's own camera.

    For every camera c, every ``(frame, group)`` point is solved again from
    the rays of the *other* cameras (≥ 2 needed) and projected into c. A
    detected row of camera c is labelled with its own group when that
    leave-one-out point lies within ``split_tolerance`` box sizes
    (``sqrt(w·h)`` px, at least 4·centroid_sigma) of its centroid; otherwise
    with the nearest other group whose point lies within that tolerance; -1
    when its own group's point exists but is farther and no other fits; -2
    (unknown) when nothing can be judged. Returns ``(N,)`` int64 per row
    (-2 for rows that are not detected).
    """
    det = np.flatnonzero(idx.detected)
    out = np.full(len(idx.frame), -2, np.int64)
    if not det.size:
        return out
    cam = idx.keys["cam"].to_numpy()[idx.tk[det]]
    grp = labels[idx.tk[det]]
    fr = idx.frame[det]
    nG = int(labels.max()) + 1
    uk, gi = np.unique(fr * nG + grp, return_inverse=True)
    gi = gi.ravel()
    G = len(uk)
    pf, pg = uk // nG, uk % nG
    o, d = idx.row_rays(dict(zip(idx.camera_names, cams)))
    o, d = o[det], d[det]

    def sums(sel):
        return _ray_sums(gi[sel], o[sel], d[sel], G)

    size = np.sqrt(np.abs(idx.w[det] * idx.h[det]))
    tol = cfg.split_tolerance * np.maximum(size, 4 * cfg.centroid_sigma)
    for c in np.unique(cam):
        S, b, n = sums(cam != c)
        ok = np.flatnonzero(n >= 2)
        if not ok.size:
            continue
        X = _solve3(S[ok], b[ok])
        uv = cams[c].project(X)
        rows = np.flatnonzero(cam == c)
        # points of the same frame as each row (points are sorted by frame)
        lo = np.searchsorted(pf[ok], fr[rows], "left")
        hi = np.searchsorted(pf[ok], fr[rows], "right")
        cnt = hi - lo
        q = np.repeat(np.arange(len(rows)), cnt)
        k = lo[q] + np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        r = det[rows[q]]
        dist = np.hypot(uv[k, 0] - idx.cx[r], uv[k, 1] - idx.cy[r])
        dist = np.where(np.isfinite(dist), dist, np.inf)
        own = pg[ok][k] == grp[rows[q]]
        own_d = np.full(len(rows), np.nan)
        own_d[q[own]] = dist[own]
        other_d = np.where(own, np.inf, dist)
        best = np.full(len(rows), np.inf)
        np.minimum.at(best, q, other_d)
        hit = (other_d == best[q]) & np.isfinite(other_d)
        best_g = np.full(len(rows), -1)
        best_g[q[hit]] = pg[ok][k[hit]]
        t = tol[rows]
        lab = np.full(len(rows), -2)
        lab[np.isfinite(own_d)] = -1
        lab[(best < t) & (best_g >= 0)] = best_g[(best < t) & (best_g >= 0)]
        lab[own_d <= t] = grp[rows][own_d <= t]
        out[det[rows]] = lab
    return out


def find_splits(idx: TrackletIndex, labels: np.ndarray, rowlab: np.ndarray, cfg: AssociationConfig
                ) -> list[tuple[int, int, bool]]:
    """Where tracklets leave their group's 3D track (row labels from :func:`row_labels`).

    A tracklet is cut where its row labels change, after runs shorter than
    ``split_min_frames`` rows are absorbed by their longer neighbour (unknown
    rows ignored). Returns ``(tracklet, first_frame_of_piece,
    piece_disagrees)`` for every piece of every cut tracklet; tracklets whose
    rows all fit one group yield nothing.
    """
    own = labels[idx.tk]
    known = rowlab > -2
    off = known & (rowlab != own)
    out = []
    for t in np.unique(idx.tk[off]):  # only tracklets with rows that leave their group: few
        rows = _rows_of(idx, t)
        rows = rows[known[rows]]
        lab = _segment(rowlab[rows], cfg.split_min_frames)
        vals, starts, lengths = _runs(lab)
        if len(vals) == 1:
            continue
        for v, s in zip(vals, starts):
            first = int(idx.keys["first"].iat[t]) if s == 0 else int(idx.frame[rows[s]])
            out.append((int(t), first, bool(v != labels[t])))
    return out


def _rows_of(idx: TrackletIndex, t: int) -> np.ndarray:
    """Row indices of tracklet ``t`` (rows are sorted by tracklet)."""
    lo = np.searchsorted(idx.tk, t, "left")
    hi = np.searchsorted(idx.tk, t, "right")
    return np.arange(lo, hi)


def apply_splits(tracklets: pd.DataFrame, idx: TrackletIndex, splits: list[tuple[int, int, bool]]
                 ) -> tuple[pd.DataFrame, list[tuple[str, int, int, bool]]]:
    """Give each piece after a cut a new track id (per camera: max id + 1, + 2, ... in a fixed order).

    Returns the new TRACKLET2D rows (a copy) and ``(camera_id, new_track_id,
    old_track_id, piece_disagrees)`` for every piece.
    """
    out = tracklets.copy()
    cam_ids = out["camera_id"].astype(str).to_numpy()
    track = out["track_id"].to_numpy(np.int64).copy()
    frame = out["frame"].to_numpy(np.int64)
    next_id = pd.Series(track).groupby(cam_ids).max().to_dict()
    pieces = []
    by_t: dict[int, list[tuple[int, bool]]] = {}
    for t, first, dis in splits:
        by_t.setdefault(t, []).append((first, dis))
    orig = tracklets["track_id"].to_numpy(np.int64)
    for t in sorted(by_t):
        cam, tid = str(idx.keys["camera_id"].iat[t]), int(idx.keys["track_id"].iat[t])
        sel = (cam_ids == cam) & (orig == tid)
        ps = sorted(by_t[t])
        for j, (first, dis) in enumerate(ps):
            if j == 0:
                pieces.append((cam, tid, tid, dis))
                continue
            next_id[cam] = int(next_id[cam]) + 1
            track[sel & (frame >= first)] = next_id[cam]
            pieces.append((cam, int(next_id[cam]), tid, dis))
    out["track_id"] = track
    return out, pieces


def stitch_groups(idx: TrackletIndex, labels: np.ndarray, pts: dict, sigma_m: float, max_gap: int
                  ) -> tuple[np.ndarray, dict[int, float]]:
    """Join groups whose 3D tracks continue each other across a gap (see module docstring).

    Returns new labels (0..G'-1) and ``{new label: support of its weakest
    stitch}`` (``1 - cost/gate``).
    """
    if max_gap <= 0 or not len(pts["frame"]):
        return labels, {}
    ok = np.isfinite(pts["X"]).all(1)
    fr, gr, X = pts["frame"][ok], pts["group"][ok], pts["X"][ok]
    if not len(fr):
        return labels, {}
    order = np.lexsort((fr, gr))
    fr, gr, X = fr[order], gr[order], X[order]
    starts = np.r_[0, np.flatnonzero(np.diff(gr)) + 1]
    ends = np.r_[starts[1:], len(gr)]
    # 3D speeds within tracks, m/frame
    same = np.diff(gr) == 0
    step = np.linalg.norm(np.diff(X, axis=0), axis=1) / np.maximum(np.diff(fr), 1)
    v95 = float(np.percentile(step[same], 95)) if same.any() else 0.0
    groups = gr[starts]
    n_fit = 5
    t_end = fr[ends - 1]
    t_start = fr[starts]
    p_end, v_end, p_start, v_start = [], [], [], []
    for s, e in zip(starts, ends):  # per 3D track, O(groups)
        ke = slice(max(s, e - n_fit), e)
        ks = slice(s, min(e, s + n_fit))
        p_end.append(X[e - 1])
        p_start.append(X[s])
        v_end.append(_velocity(fr[ke], X[ke]))
        v_start.append(_velocity(fr[ks], X[ks]))
    p_end, v_end, p_start, v_start = map(np.asarray, (p_end, v_end, p_start, v_start))
    gap = t_start[None, :] - t_end[:, None]
    pred_f = p_end[:, None, :] + v_end[:, None, :] * gap[..., None]
    pred_b = p_start[None, :, :] - v_start[None, :, :] * gap[..., None]
    cost = 0.5 * (np.linalg.norm(pred_f - p_start[None], axis=2) + np.linalg.norm(pred_b - p_end[:, None], axis=2))
    gate = 3 * sigma_m + v95 * np.maximum(gap, 1)
    feas = (gap > 0) & (gap <= max_gap) & (cost < gate)
    # cannot-links between whole groups: same camera, overlapping alive intervals
    if feas.any():
        cam = idx.keys["cam"].to_numpy()
        st = idx.keys["first"].to_numpy()
        en = idx.keys["end"].to_numpy()
        for i, j in zip(*np.nonzero(feas)):
            ti = np.flatnonzero(labels == groups[i])
            tj = np.flatnonzero(labels == groups[j])
            cl = (cam[ti][:, None] == cam[tj][None, :]) & (st[ti][:, None] <= en[tj][None, :]) & \
                (st[tj][None, :] <= en[ti][:, None])
            if cl.any():
                feas[i, j] = False
    if not feas.any():
        return labels, {}
    big = 1e9
    r, c = linear_sum_assignment(np.where(feas, cost / gate, big))
    keep = feas[r, c]
    rep = np.arange(int(labels.max()) + 1)
    sup = {}
    for i, j in zip(r[keep], c[keep]):
        rep[groups[j]] = groups[i]
        sup[int(groups[j])] = float(1 - cost[i, j] / gate[i, j])
    # resolve chains a -> b -> c
    for _ in range(len(rep)):
        nxt = rep[rep]
        if (nxt == rep).all():
            break
        rep = nxt
    new = rep[labels]
    _, new = np.unique(new, return_inverse=True)
    stitch_sup: dict[int, float] = {}
    for g, s in sup.items():
        lab = int(new[np.flatnonzero(labels == g)[0]])
        stitch_sup[lab] = min(stitch_sup.get(lab, 1.0), s)
    return new.astype(np.int64), stitch_sup


def _velocity(f: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Least-squares velocity (m/frame) of points ``X (n, 3)`` at frames ``f``; zero for one point."""
    if len(f) < 2:
        return np.zeros(3)
    ff = f - f.mean()
    den = (ff ** 2).sum()
    return (ff[:, None] * (X - X.mean(0))).sum(0) / den if den > 0 else np.zeros(3)


def reprojected_rows(idx: TrackletIndex, labels: np.ndarray, pts: dict, cams: list[Camera],
                     tracklets: pd.DataFrame, min_cameras: int = 2) -> pd.DataFrame:
    """TRACKLET2D table with coasted/missing rows of tracked targets replaced by reprojections (see module docstring)."""
    keys = idx.keys
    ok = np.isfinite(pts["X"]).all(1) & (pts["n"] >= min_cameras)
    if not ok.any():
        return tracklets
    pf, pg, PX = pts["frame"][ok], pts["group"][ok], pts["X"][ok]
    cam_k = keys["cam"].to_numpy()
    first_k = keys["first"].to_numpy()
    last_k = keys["last"].to_numpy()
    new_parts = []
    replace_rows = []
    for c, cam in enumerate(cams):
        tk_c = np.flatnonzero(cam_k == c)
        if not tk_c.size:
            continue
        grp_c = labels[tk_c]
        # this camera's tracklets sorted by (group, first frame): O(log n) lookups, no cross product
        o2 = np.lexsort((first_k[tk_c], grp_c))
        tks, gs = tk_c[o2], grp_c[o2]
        span = int(max(pf.max(), last_k.max())) + 2
        key = gs * span + first_k[tks]
        sel = np.isin(pg, gs)
        if not sel.any():
            continue
        f, g, Xs = pf[sel], pg[sel], PX[sel]
        nG = int(labels.max()) + 1
        gmin = np.full(nG, np.iinfo(np.int64).max)
        gmax = np.full(nG, -1)
        np.minimum.at(gmin, gs, first_k[tks])
        np.maximum.at(gmax, gs, last_k[tks])
        within = (f >= gmin[g]) & (f <= gmax[g])
        pos = np.searchsorted(key, g * span + f, "right") - 1  # last tracklet of g starting at or before f
        okA = (pos >= 0) & (gs[np.maximum(pos, 0)] == g)
        tA = np.where(okA, tks[np.maximum(pos, 0)], -1)
        posB = np.minimum(pos + 1, len(tks) - 1)
        okB = (pos + 1 < len(tks)) & (gs[posB] == g)
        tB = np.where(okB, tks[posB], -1)
        dA = np.where(okA, np.maximum(f - last_k[np.maximum(tA, 0)], 0), np.iinfo(np.int64).max)
        dB = np.where(okB, first_k[np.maximum(tB, 0)] - f, np.iinfo(np.int64).max)
        tbest = np.where(within, np.where(dA <= dB, tA, tB), -1)
        # skip frames where the group already has a detected row in this camera (only tA can hold one)
        rA = idx.lookup(np.maximum(tA, 0), f)
        has_det = okA & (rA >= 0) & idx.detected[np.maximum(rA, 0)]
        todo = np.flatnonzero(within & ~has_det & (tbest >= 0))
        if not todo.size:
            continue
        uv = cam.project(Xs[todo])
        W, H = cam.size
        vis = np.isfinite(uv).all(1) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        todo, uv = todo[vis], uv[vis]
        tt = tbest[todo]
        ff = f[todo]
        # box size from the nearest detected row of the same tracklet
        wh = _nearest_detected_wh(idx, tt, ff)
        good = np.isfinite(wh).all(1)
        tt, ff, uv, wh = tt[good], ff[good], uv[good], wh[good]
        existing = idx.lookup(tt, ff)
        replace_rows.append(existing[existing >= 0])
        new_parts.append(pd.DataFrame({
            "camera_id": keys["camera_id"].to_numpy()[tt], "track_id": keys["track_id"].to_numpy()[tt], "frame": ff,
            "x1": uv[:, 0] - wh[:, 0] / 2, "y1": uv[:, 1] - wh[:, 1] / 2, "x2": uv[:, 0] + wh[:, 0] / 2,
            "y2": uv[:, 1] + wh[:, 1] / 2, "cx": uv[:, 0], "cy": uv[:, 1], "frame_status": "reprojected",
            "det_index": -1, "confidence": np.nan}))
    if not new_parts:
        return tracklets
    new = pd.concat(new_parts, ignore_index=True)
    rep = np.concatenate(replace_rows) if replace_rows else np.zeros(0, np.int64)
    # drop the replaced coasted rows of the original table (idx was built from it)
    keep = np.ones(len(tracklets), bool)
    keep[idx.source_row[rep]] = False
    kept = tracklets[keep]
    return pd.concat([TRACKLET2D.coerce(kept), TRACKLET2D.coerce(new)], ignore_index=True)


def _nearest_detected_wh(idx: TrackletIndex, tk: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """``(M, 2)`` box width/height (px) of the detected row of tracklet ``tk`` nearest in time to ``frame`` (NaN if none)."""
    det = np.flatnonzero(idx.detected)
    code = idx._code[det]  # sorted: rows are sorted by (tracklet, frame)
    q = tk * idx._span + frame
    p = np.searchsorted(code, q)
    out = np.full((len(tk), 2), np.nan)
    best = np.full(len(tk), np.inf)
    for cand in (p - 1, p):
        okc = (cand >= 0) & (cand < len(det))
        r = det[np.clip(cand, 0, max(len(det) - 1, 0))] if len(det) else np.zeros(len(tk), np.int64)
        okc &= idx.tk[r] == tk if len(det) else okc
        dist = np.where(okc, np.abs(idx.frame[r] - frame), np.inf)
        better = dist < best
        best[better] = dist[better]
        out[better, 0], out[better, 1] = idx.w[r[better]], idx.h[r[better]]
    return out
