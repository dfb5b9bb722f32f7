"""Soft geometric evidence that two tracklets of different cameras show one target.

For a pair of tracklets (cameras a ≠ b) the frames both are detected in are
sampled (at most ``max_pair_frames``, evenly spread over their overlap, so the
cost per pair is bounded and the total is linear in frames). In each sampled
frame both centroids are back-projected to world rays and:

1. **Ray–ray distance** ``d`` (m) between the rays' closest points (Hartley &
   Zisserman, *Multiple View Geometry*, 2nd ed., §12.1: two image points of
   one 3D point have intersecting back-projected rays). Its scale is
   ``σ`` (m), fixed (``distance_scale``) or derived per frame from the
   calibration and the boxes (:class:`~mctrack.associate.AssociationConfig`).
   The positive evidence of the frame is a Gaussian kernel rescaled to
   ``[-1, 1]`` with its zero at ``d = 2σ``::

       k = exp(-d²/2σ²),  k0 = exp(-2),  e = (k - k0)/(1 - k0) if k >= k0 else (k - k0)/k0

   (+1 for intersecting rays, 0 at 2σ, → -1 far apart). A closest point
   behind either camera gives -1.
2. **Negative evidence.** The midpoint of the closest points is projected into
   every other camera. A camera that should see it (in front, inside its
   image, and with tracklet rows in that frame, i.e. it was recording) but has
   no tracklet row (detected or coasted) within ``max(1.5·box size, 4·centroid
   noise)`` px of the projection subtracts ``negative_weight`` from ``e``
   (floored at -1): two rays that meet only by chance make a *ghost* point
   that the other views do not show.

A pair's **score** is its mean evidence times its number of shared frames
(a sum of per-frame log-likelihood-like terms: long agreeing overlaps weigh
more than short ones). Its **support** is ``n_agree / (n_sampled + 5)``, the
fraction of sampled frames with positive evidence shrunk towards 0 for few
frames (5 pseudo-frames of no agreement), so a link seen on 3 frames is weak
even when they agree.

Candidate pairs come from the tracklets' detected time intervals (a sweep
over sorted starts), not from a per-frame cross product of all rows. When
there are many candidates (long tracklets of many targets), a coarse pass of
8 sampled frames first drops pairs that come within 2σ in fewer than a
quarter of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..calibration import Camera
from .config import AssociationConfig
from .data import TrackletIndex

EVIDENCE_COLUMNS = ["camera_a", "track_a", "camera_b", "track_b", "n_shared", "n_votes", "median_distance",
                    "score", "mean_evidence", "support", "n_negative"]

#: pseudo-frames of no agreement in the support of a pair (see module docstring)
SUPPORT_PRIOR_FRAMES = 5
_COARSE_FRAMES = 8
_COARSE_MIN_PAIRS = 64


def ray_distance(o1: np.ndarray, d1: np.ndarray, o2: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Distance between the closest points of rays ``o1 + s·d1`` and ``o2 + t·d2``.

    ``o1, o2``: (3,) or (N, 3) origins; ``d1, d2``: (N, 3) unit directions.
    Returns (N,) float64 in world units; ``inf`` where the closest point lies
    behind either camera (s ≤ 0 or t ≤ 0). Parallel rays (no unique closest
    points) use the distance of ``o2`` to the first ray.
    """
    dist, s, t, _ = closest_points(o1, d1, o2, d2)
    par = ~np.isfinite(s)
    return np.where(~par & ((s <= 0) | (t <= 0)), np.inf, dist)


def closest_points(o1, d1, o2, d2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Closest points of two families of rays (unit directions ``(N, 3)``).

    Returns ``dist (N,)`` (m), ``s, t (N,)`` (m along each ray from its origin;
    NaN for parallel rays, whose ``dist`` is that of ``o2`` to ray 1) and the
    midpoints ``(N, 3)`` of the closest points (H&Z §12.1 midpoint method).
    """
    o1 = np.asarray(o1, np.float64)
    o2 = np.asarray(o2, np.float64)
    w = o1 - o2
    b = np.einsum("ij,ij->i", d1, d2)
    d = np.einsum("ij,ij->i", d1, w) if w.ndim == 2 else d1 @ w
    e = np.einsum("ij,ij->i", d2, w) if w.ndim == 2 else d2 @ w
    den = 1.0 - b * b
    par = den < 1e-12
    den = np.where(par, 1.0, den)
    s = np.where(par, 0.0, (b * e - d) / den)
    t = np.where(par, e, (e - b * d) / den)
    p1 = o1 + s[:, None] * d1
    p2 = o2 + t[:, None] * d2
    dist = np.linalg.norm(p1 - p2, axis=1)
    s = np.where(par, np.nan, s)
    t = np.where(par, np.nan, t)
    return dist, s, t, 0.5 * (p1 + p2)


def kernel_evidence(d: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per-frame evidence in ``[-1, 1]`` of a ray distance ``d`` (m) at scale ``sigma`` (m); see module docstring."""
    k = np.exp(-0.5 * (np.asarray(d, np.float64) / sigma) ** 2)
    k0 = np.exp(-2.0)
    return np.where(k >= k0, (k - k0) / (1 - k0), (k - k0) / k0)


def candidate_pairs(idx: TrackletIndex) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(a, b)`` of tracklet indices of different cameras whose detected intervals overlap.

    Sweep over tracklets sorted by first detected frame: ``b`` is a candidate
    of ``a`` when it starts after ``a`` (in sort order) and no later than
    ``a``'s last detected frame. Returns two ``(P,)`` int64 arrays with
    ``camera(a) < camera(b)``.
    """
    k = idx.keys
    has = k["n_det"].to_numpy() > 0
    ids = np.flatnonzero(has)
    fd = k["first_det"].to_numpy()[ids]
    ld = k["last_det"].to_numpy()[ids]
    order = np.lexsort((ids, fd))
    ids, fd, ld = ids[order], fd[order], ld[order]
    hi = np.searchsorted(fd, ld, side="right")
    n = np.maximum(hi - np.arange(len(ids)) - 1, 0)
    a_pos = np.repeat(np.arange(len(ids)), n)
    off = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    b_pos = a_pos + 1 + off
    a, b = ids[a_pos], ids[b_pos]
    cam = k["cam"].to_numpy()
    keep = cam[a] != cam[b]
    a, b = a[keep], b[keep]
    swap = cam[a] > cam[b]
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    return a.astype(np.int64), b.astype(np.int64)


def _sample_frames(lo: np.ndarray, hi: np.ndarray, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n_max`` frames evenly spread over each ``[lo, hi]``: ``(pair index, frame)`` arrays."""
    length = hi - lo + 1
    n = np.minimum(length, n_max)
    pair = np.repeat(np.arange(len(lo)), n)
    j = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    frame = lo[pair] + (j * length[pair]) // n[pair]
    return pair, frame


class _Geometry:
    """Per-camera rays, projections and row lookups used by the evidence."""

    def __init__(self, idx: TrackletIndex, cameras: dict[str, Camera]):
        self.idx = idx
        self.cameras = cameras
        self.cams = [cameras[n] for n in idx.camera_names]
        self.focal = np.array([0.5 * (c.K[0, 0] + c.K[1, 1]) for c in self.cams])
        self.centers = np.array([c.center for c in self.cams]).reshape(-1, 3)
        self.sizes = np.array([c.size for c in self.cams], np.float64).reshape(-1, 2)
        cam_of_row = idx.keys["cam"].to_numpy()[idx.tk]
        self.row_cam = cam_of_row
        code = cam_of_row * idx._span + idx.frame
        self._order = np.argsort(code, kind="stable")
        self._trees: dict = {}
        self._code = code[self._order]

    def rays(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ray origins and unit directions ``(M, 3)`` of the centroids of ``rows``."""
        o, d = self.idx.row_rays(self.cameras)
        return o[rows], d[rows]

    def rows_at(self, cam: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and stop positions (into ``self._order``) of camera ``cam``'s rows in each frame."""
        q = cam * self.idx._span + np.asarray(frame, np.int64)
        return np.searchsorted(self._code, q, "left"), np.searchsorted(self._code, q, "right")

    def nearest_row_distance(self, cam: int, frame: np.ndarray, uv: np.ndarray) -> np.ndarray:
        """px distance from ``uv (M, 2)`` to the nearest row of camera ``cam`` in the same frame (inf if none).

        A k-d tree (``scipy.spatial.cKDTree``) per camera over ``(cx, cy + frame·L)``
        with ``L`` larger than any in-image distance, so memory stays O(rows)
        however many targets share a frame.
        """
        from scipy.spatial import cKDTree

        W, H = self.sizes[cam]
        L = 4.0 * (W + H)
        tree = self._trees.get(cam)
        if tree is None:
            lo, hi = np.searchsorted(self._code, [cam * self.idx._span, (cam + 1) * self.idx._span])
            rows = self._order[lo:hi]
            pts = np.column_stack([self.idx.cx[rows], self.idx.cy[rows] + self.idx.frame[rows] * L])
            tree = self._trees[cam] = cKDTree(pts) if len(rows) else None
        out = np.full(len(frame), np.inf)
        if tree is None or not len(frame):
            return out
        q = np.column_stack([uv[:, 0], uv[:, 1] + np.asarray(frame, np.float64) * L])
        d, _ = tree.query(q, k=1, distance_upper_bound=L / 4)
        return np.where(np.isfinite(d), d, np.inf)

    def recording(self, cam: int, frame: np.ndarray) -> np.ndarray:
        """Whether camera ``cam`` has any tracklet row in each frame."""
        lo, hi = self.rows_at(cam, frame)
        return hi > lo


def sample_evidence(geo: _Geometry, ta: np.ndarray, tb: np.ndarray, frame: np.ndarray, cfg: AssociationConfig,
                    negative: bool = True) -> dict[str, np.ndarray]:
    """Evidence of sampled frames ``frame (M,)`` of tracklet pairs ``(ta, tb)``.

    Returns arrays ``(M,)``: ``valid`` (both rows present and usable),
    ``dist`` (m), ``sigma`` (m), ``e`` (evidence incl. negative term),
    ``n_missing`` (cameras that should see the point but show nothing near),
    and ``point (M, 3)`` (midpoint of the closest points).
    """
    idx = geo.idx
    ra, rb = idx.lookup(ta, frame), idx.lookup(tb, frame)
    valid = (ra >= 0) & (rb >= 0)
    usable = idx.detected | idx.coasted if cfg.use_coasted else idx.detected
    valid[valid] = usable[ra[valid]] & usable[rb[valid]]
    M = len(frame)
    out = {"valid": valid, "dist": np.full(M, np.nan), "sigma": np.full(M, np.nan), "e": np.full(M, np.nan),
           "n_missing": np.zeros(M, np.int64), "point": np.full((M, 3), np.nan)}
    v = np.flatnonzero(valid)
    if not v.size:
        return out
    ra, rb = ra[v], rb[v]
    oa, da = geo.rays(ra)
    ob, db = geo.rays(rb)
    dist, s, t, mid = closest_points(oa, da, ob, db)
    ca, cb = geo.row_cam[ra], geo.row_cam[rb]
    s_ = np.where(np.isfinite(s), np.abs(s), np.linalg.norm(oa - ob, axis=1))
    t_ = np.where(np.isfinite(t), np.abs(t), np.linalg.norm(oa - ob, axis=1))
    if cfg.sigma_override is not None:
        sigma = np.full(len(v), float(cfg.sigma_override))
        size_m = np.full(len(v), 2.0 * float(cfg.sigma_override) / cfg.box_fraction)
    else:
        size_a = np.sqrt(np.abs(idx.w[ra] * idx.h[ra])) * s_ / geo.focal[ca]
        size_b = np.sqrt(np.abs(idx.w[rb] * idx.h[rb])) * t_ / geo.focal[cb]
        size_m = 0.5 * (size_a + size_b)
        sigma = np.sqrt((cfg.centroid_sigma * s_ / geo.focal[ca]) ** 2 + (cfg.centroid_sigma * t_ / geo.focal[cb]) ** 2
                        + (cfg.box_fraction * size_m) ** 2)
        sigma = np.maximum(sigma, 1e-9)
    e = kernel_evidence(dist, sigma)
    e = np.where(np.isfinite(s) & ((s <= 0) | (t <= 0)), -1.0, e)
    n_missing = np.zeros(len(v), np.int64)
    if negative and cfg.negative_weight > 0 and len(geo.cams) > 2:
        pos = np.flatnonzero(e > 0)
        fr = frame[v][pos]
        for c, cam in enumerate(geo.cams):
            other = (ca[pos] != c) & (cb[pos] != c)
            if not other.any():
                continue
            q = pos[other]
            uv = cam.project(mid[q])
            W, H = geo.sizes[c]
            inside = np.isfinite(uv).all(1) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
            inside &= geo.recording(c, fr[other])
            if not inside.any():
                continue
            qi = q[inside]
            depth = np.linalg.norm(mid[qi] - geo.centers[c], axis=1)
            gate = np.maximum(1.5 * size_m[qi] * geo.focal[c] / np.maximum(depth, 1e-9), 4 * cfg.centroid_sigma)
            near = geo.nearest_row_distance(c, fr[other][inside], uv[inside])
            n_missing[qi] += near > gate
        e = np.maximum(e - cfg.negative_weight * n_missing, -1.0)
    out["dist"][v], out["sigma"][v], out["e"][v], out["n_missing"][v], out["point"][v] = dist, sigma, e, n_missing, mid
    return out


def pair_scores(idx: TrackletIndex, cameras: dict[str, Camera], cfg: AssociationConfig) -> pd.DataFrame:
    """Evidence of every candidate tracklet pair (see module docstring).

    Returns a DataFrame with ``a, b`` (tracklet indices into ``idx.keys``) and
    the :data:`EVIDENCE_COLUMNS` (camera/track ids of both, ``n_shared``
    estimated frames both detected, ``n_votes`` sampled frames with positive
    evidence, ``median_distance`` m, ``score``, ``mean_evidence``,
    ``support``, ``n_negative`` sampled frames with negative evidence from a
    third camera). Pairs with fewer than ``min_shared`` usable samples are dropped.
    """
    geo = _Geometry(idx, cameras)
    a, b = candidate_pairs(idx)
    fd = idx.keys["first_det"].to_numpy()
    ld = idx.keys["last_det"].to_numpy()
    lo, hi = np.maximum(fd[a], fd[b]), np.minimum(ld[a], ld[b])
    if len(a) > _COARSE_MIN_PAIRS:  # coarse pass: drop pairs that rarely come within 2σ
        keep = np.zeros(len(a), bool)
        for s0, s1 in _batches(np.minimum(hi - lo + 1, _COARSE_FRAMES)):
            p, f = _sample_frames(lo[s0:s1], hi[s0:s1], _COARSE_FRAMES)
            ev = sample_evidence(geo, a[s0:s1][p], b[s0:s1][p], f, cfg, negative=False)
            n_near = np.bincount(p, weights=np.nan_to_num(ev["e"], nan=-1.0) > 0, minlength=s1 - s0)
            n_valid = np.bincount(p, weights=ev["valid"], minlength=s1 - s0)
            keep[s0:s1] = (n_near >= 0.25 * n_valid) & (n_near > 0) | (n_valid == 0)
        a, b, lo, hi = a[keep], b[keep], lo[keep], hi[keep]
    P = len(a)
    n_s, n_tot, sum_e, n_agree, n_neg = (np.zeros(P) for _ in range(5))
    med, sig = np.full(P, np.nan), np.full(P, np.nan)
    for s0, s1 in _batches(np.minimum(hi - lo + 1, cfg.max_pair_frames)):  # bounded memory per batch
        p, f = _sample_frames(lo[s0:s1], hi[s0:s1], cfg.max_pair_frames)
        ev = sample_evidence(geo, a[s0:s1][p], b[s0:s1][p], f, cfg)
        n = s1 - s0
        valid = ev["valid"]
        n_s[s0:s1] = np.bincount(p[valid], minlength=n)
        n_tot[s0:s1] = np.bincount(p, minlength=n)
        sum_e[s0:s1] = np.bincount(p, weights=np.where(valid, ev["e"], 0.0), minlength=n)
        n_agree[s0:s1] = np.bincount(p[valid], weights=(ev["e"][valid] > 0), minlength=n)
        n_neg[s0:s1] = np.bincount(p[valid], weights=(ev["n_missing"][valid] > 0), minlength=n)
        med[s0:s1] = _group_median(p[valid], ev["dist"][valid], n)
        sig[s0:s1] = _group_median(p[valid], ev["sigma"][valid], n)
    length = hi - lo + 1
    n_shared = np.round(n_s / np.maximum(n_tot, 1) * length).astype(np.int64)
    mean_e = sum_e / np.maximum(n_s, 1)
    keys = idx.keys
    df = pd.DataFrame({
        "a": a, "b": b,
        "camera_a": keys["camera_id"].to_numpy()[a], "track_a": keys["track_id"].to_numpy()[a],
        "camera_b": keys["camera_id"].to_numpy()[b], "track_b": keys["track_id"].to_numpy()[b],
        "n_shared": n_shared, "n_votes": n_agree.astype(np.int64), "median_distance": med,
        "score": mean_e * n_shared, "mean_evidence": mean_e,
        "support": n_agree / (n_s + SUPPORT_PRIOR_FRAMES), "n_negative": n_neg.astype(np.int64),
        "sigma": sig})
    return df[n_s >= cfg.min_shared].reset_index(drop=True)


def _batches(samples_per_pair: np.ndarray, max_samples: int = 1 << 20):
    """Consecutive ``(start, stop)`` pair ranges with at most ~``max_samples`` samples each."""
    c = np.cumsum(samples_per_pair)
    starts = [0]
    while starts[-1] < len(c):
        base = c[starts[-1] - 1] if starts[-1] else 0
        nxt = int(np.searchsorted(c, base + max_samples, "right"))
        starts.append(max(nxt, starts[-1] + 1))
    return list(zip(starts[:-1], starts[1:]))


def _group_median(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values`` per ``group`` in ``0..n-1`` (NaN for empty groups), vectorised."""
    out = np.full(n, np.nan)
    if not len(group):
        return out
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    starts = np.searchsorted(g, np.arange(n), "left")
    stops = np.searchsorted(g, np.arange(n), "right")
    cnt = stops - starts
    ok = cnt > 0
    lo = starts[ok] + (cnt[ok] - 1) // 2
    hi = starts[ok] + cnt[ok] // 2
    out[ok] = 0.5 * (v[lo] + v[hi])
    return out
