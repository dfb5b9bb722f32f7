"""Association by per-frame 3D tracking of detections (``associate.method: frames``).

The tracklet method (:mod:`.evidence`, :mod:`.solve`) groups whole 2D
tracklets, so an identity switch inside one camera's tracklet (two fish
crossing, a merged blob) becomes a wrong group or needs splitting afterwards.
This method decides identity where it is most reliable — in 3D, frame by
frame — and uses the 2D tracklets only as a tie-breaker:

1. **Predict** every 3D track with a constant-velocity Kalman filter (one
   ``(2, 2)`` position/velocity covariance per track, shared by the three
   axes; white-noise acceleration ``σ_a = motion_noise × target size`` per
   frame², Bar-Shalom et al. 2001, *Estimation with Applications to Tracking
   and Navigation*, §6.3.2) and project it into every camera.
2. **Assign**, per camera, the frame's detected rows to the projected tracks
   at minimum total cost (``scipy.optimize.linear_sum_assignment``); the cost
   of a row and a track is the squared normalised image distance
   ``(d / τ)²`` with ``τ² = (box_fraction·s)² + centroid_sigma² + σ_pred²``
   (``s = sqrt(w·h)`` of the row's box, px; ``σ_pred`` the track's predicted
   position std projected to px), gated at ``d ≤ gate·τ``, minus
   ``continuity_bonus`` when the row's 2D tracklet was assigned to that track
   within the last ``continuity_frames`` frames, plus — when the rows carry
   appearance (``chroma_r, chroma_g``, from the background detector on
   colour video) — ``appearance_weight · min(Δ²/σ², 9)``, Δ the
   chromaticity distance between the row and the track's running mean in
   that camera (over its last ~20 rows there, used once it has 3), σ the
   camera's appearance spread (:func:`appearance_sigma`). Appearance only
   ranks candidates inside the geometric gate, never admits one outside.
3. **Pair consistency** (``pair_gate``): with two cameras only the
   epipolar constraint checks a pairing, and two targets near each other's
   epipolar lines pair up crossed (ghost points the gate keeps for hundreds
   of frames). Two tracks whose two-camera pairs are both inconsistent
   exchange their rows of one camera when that makes both consistent; a lone
   inconsistent pair whose two targets' partner rows are free is re-paired
   into a consistent one (the other pair is born); a lone clearly
   inconsistent pair drops a row; births need consistent pairs.
4. **Update**: each track's rows are triangulated (least-squares ray
   intersection, the N-view midpoint method); a row whose reprojection from
   the others is outside the gate is dropped (one pass). Two or more rays give
   a 3D measurement; one ray gives the point on that ray nearest to the
   prediction. Tracks with no row coast.
5. **Birth**: rows left unassigned in ≥ 2 cameras are paired across cameras
   (ray midpoint within the gate in both images), extended by the nearest
   unassigned row of every other camera within the gate, and accepted
   greedily by number of cameras, then cost. A new track is *tentative* until
   it has had ≥ 2 cameras in ``n_init`` consecutive frames; a tentative track
   that misses one is dropped and its rows return to unassigned (this
   removes ghost points where two targets' rays cross).
6. **Death**: a track with no 2-camera update for ``max_coast_frames``
   frames ends; a confirmed track that stays within a quarter target size of
   an older one for ``n_init + 10`` frames is a duplicate and ends. A target
   that every camera lost and that reappears gets a new track, which
   :func:`~mctrack.associate.refine.stitch_groups` joins again.

Each detected row ends with the track it was assigned to (or -1). The rows
of one 2D tracklet are then cut into pieces of constant track
(:func:`tracklet_pieces`): unassigned and coasted rows take the track of the
rows around them in the same tracklet, and runs shorter than ``min_run``
rows are absorbed by their neighbours. Each piece becomes one tracklet of
the ASSOCIATION table (``parent_track_id`` = the tracker's track id), so the
downstream tables are unchanged.

Cost: one Python iteration per frame; the arithmetic over that frame's rows
and tracks (projection, gate, assignment without the solver, ray
intersection, prediction, update) runs in compiled kernels
(:mod:`.kernels`, numba), the rest in numpy (no per-target Python loop). :class:`FrameTracker` carries the tracker's
state from one block of frames to the next, so a session can be tracked block
by block (:mod:`.blocks`) with memory bounded by a block.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..calibration import Camera
from ..errors import InputError
from .config import AssociationConfig
from .data import TrackletIndex
from .evidence import closest_points
from .refine import _segment


def _lazy_module(name: str):
    """``name`` imported on first attribute access (``importlib.util.LazyLoader``, the stdlib recipe).

    The compiled kernels import numba (~0.4 s); jobs that import this package
    without tracking (triangulate, handoffs) do not pay for it.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kernels = _lazy_module(__package__ + ".kernels")

_BIG = 1e12
_DUP_EVERY = 5  # frames between duplicate-track checks (the check needs n_init + 10 frames anyway)


class _Tracks:
    """Struct of arrays of 3D tracks (capacity grows by doubling)."""

    def __init__(self, cap: int = 64, n_cams: int = 1):
        self.n = 0
        self.X = np.zeros((cap, 3))
        self.V = np.zeros((cap, 3))
        self.P = np.zeros((cap, 2, 2))
        self.size = np.zeros(cap)          # target size, m (EMA)
        self.alive = np.zeros(cap, bool)
        self.confirmed = np.zeros(cap, bool)
        self.streak = np.zeros(cap, np.int64)   # consecutive frames with >= 2 cameras
        self.last_multi = np.zeros(cap, np.int64)  # last frame with >= 2 cameras
        self.born = np.zeros(cap, np.int64)
        self.close = np.zeros(cap, np.int64)    # consecutive frames near an older track
        self.app = np.zeros((cap, n_cams, 2))     # per camera: mean appearance (chromaticity r, g) of its rows
        self.app_n = np.zeros((cap, n_cams))      # per camera: rows in that mean (capped at 20: a running mean)
        self.pe2 = np.zeros(cap)               # running mean of its two-camera pairings' squared pair error
        self.pe_t = np.zeros(cap, np.int64)    # frame of its last two-camera pairing
        self.cX = np.zeros((cap, 3))           # predicted state when that mean last rose above _PE_HIGH: m
        self.cV = np.zeros((cap, 3))           # ... m/frame
        self.ct = np.zeros(cap, np.int64)      # ... frame

    def add(self, X: np.ndarray, size: np.ndarray, frame: int, p0: np.ndarray) -> np.ndarray:
        m = len(X)
        while self.n + m > len(self.alive):
            for name in ("X", "V", "P", "size", "alive", "confirmed", "streak", "last_multi", "born", "close",
                         "app", "app_n", "pe2", "pe_t", "cX", "cV", "ct"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
        ids = np.arange(self.n, self.n + m)
        self.n += m
        self.X[ids], self.V[ids], self.size[ids] = X, 0.0, size
        self.P[ids] = p0
        self.alive[ids], self.confirmed[ids] = True, False
        self.streak[ids], self.last_multi[ids], self.born[ids], self.close[ids] = 1, frame, frame, 0
        self.app[ids], self.app_n[ids] = 0.0, 0.0
        self.pe2[ids], self.pe_t[ids], self.cX[ids], self.cV[ids], self.ct[ids] = 0.0, frame, X, 0.0, frame
        return ids


class _Projector:
    """Projection of world points into all cameras at once.

    Plain pinhole cameras with up to 5 OpenCV distortion coefficients
    ``(k1, k2, p1, p2, k3)`` are projected in one compiled call with OpenCV's
    model (:func:`.kernels.project_pinhole`);
    other cameras (fisheye, rational model, refractive) through their own
    ``project``. ``__call__(X (M, 3))`` returns ``uv (C, M, 2)`` px (NaN
    behind a camera or outside its image) and ``depth (C, M)`` m.
    """

    def __init__(self, cams: list[Camera]):
        self.cams = cams
        self.fast = all(type(c) is Camera and not c.fisheye and len(c.dist) <= 5 for c in cams)
        self.R = np.stack([c.R for c in cams])
        self.t = np.stack([c.tvec for c in cams])
        K = np.stack([c.K for c in cams])
        self.fx, self.fy, self.cx, self.cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]  # skew ignored, as OpenCV
        D = np.zeros((len(cams), 5))
        for i, c in enumerate(cams):
            D[i, :min(5, len(c.dist))] = c.dist[:5]
        self.k1, self.k2, self.p1, self.p2, self.k3 = (D[:, i, None] for i in range(5))
        self.W = np.array([c.size[0] for c in cams], np.float64)[:, None]
        self.H = np.array([c.size[1] for c in cams], np.float64)[:, None]
        # per-camera constants of kernels.project_pinhole, (C,) each
        self._consts = tuple(np.ascontiguousarray(a.ravel(), np.float64) for a in (
            self.k1, self.k2, self.k3, self.p1, self.p2, self.fx, self.fy, self.cx, self.cy, self.W, self.H))
        self.R2, self.t2 = np.ascontiguousarray(self.R[:, 2]), self.t[:, 2].copy()

    def depth(self, X: np.ndarray, cam: np.ndarray) -> np.ndarray:
        """Camera-frame z (m) of points ``X (n, 3)``, each in its camera ``cam (n,)``."""
        return np.einsum("ij,ij->i", self.R2[cam], X) + self.t2[cam]

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.fast:
            return kernels.project_pinhole(self.R, self.t, X, *self._consts)
        Xc = np.einsum("cij,mj->cmi", self.R, X) + self.t[:, None, :]
        depth = Xc[..., 2]
        uv = np.stack([c.project(X) for c in self.cams]) if len(X) else np.zeros((len(self.cams), 0, 2))
        u, v = uv[..., 0], uv[..., 1]
        out = ~((depth > 0) & (u >= -0.5) & (u < self.W) & (v >= -0.5) & (v < self.H))
        uv[out] = np.nan
        return uv, depth


def track_detections(idx: TrackletIndex, cams: list[Camera], cfg: AssociationConfig,
                     app_sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """3D tracks of the detected rows of ``idx`` (see module docstring); one block of :class:`FrameTracker`.

    Parameters
    ----------
    idx : rows of all calibrated cameras (``idx.camera_names[c]`` is ``cams[c]``).
    cams : cameras in ``idx.camera_names`` order, world unit m.
    cfg : uses ``gate, box_fraction, centroid_sigma, continuity_bonus,
        continuity_frames, n_init, max_coast_frames, motion_noise, appearance_weight``.
    app_sigma : per-camera appearance spread if the caller has it
        (default: :func:`appearance_sigma` of ``idx`` when it has appearance).

    Returns
    -------
    track : (N,) int64 per row of ``idx``: the confirmed 3D track of a
        detected row, -1 for unassigned detected rows, -2 for rows that are
        not detected.
    cost : (N,) float64 normalised image distance ``d / τ`` of the row to its
        track's prediction (NaN when unassigned).
    size : median target size (m, ``sqrt(w·h)`` of the boxes back-projected
        at the target's depth) over the confirmed tracks; NaN when none.
    """
    if app_sigma is None and idx.appearance is not None and cfg.appearance_weight > 0:
        app_sigma = appearance_sigma(idx)
    tracker = FrameTracker(cams, cfg, names=list(idx.camera_names), app_sigma=app_sigma)
    track, cost = tracker.feed(idx, idx.tk)
    return tracker.final(track), np.where(tracker.final(track) >= 0, cost, np.nan), tracker.size()


class FrameTracker:
    """The per-frame 3D tracker of the module docstring, fed block by block with its state carried.

    Feeding the frames of a session in consecutive blocks (:meth:`feed`, each
    block's frames after the previous block's) gives exactly the tracks of
    feeding them at once: the state carried between blocks is the tracks
    (Kalman state, tentative/confirmed, streaks, duplicate counters), the
    frame of the last step and, per tracklet, the track and frame of its last
    assigned row (continuity bonus). Memory: that state, O(tracks + tracklets).

    A track is confirmed after ``n_init`` multi-camera frames, possibly in a
    later block, so :meth:`feed` returns raw track ids; :meth:`final` maps
    them to the returned convention once every block is fed (tracks never
    confirmed -> -1).

    Parameters
    ----------
    cams : cameras, world unit m; a block's ``idx.camera_names`` must name
        cameras of this list (by ``Camera.name`` order given here).
    cfg : as :func:`track_detections`.
    names : camera names in ``cams`` order (default ``[c.name for c in cams]``);
        block rows are matched to cameras by name.
    app_sigma : ``(C,)`` per-camera appearance spread (:func:`appearance_sigma`,
        for the whole session) to use the rows' appearance, or None.
    """

    def __init__(self, cams: list[Camera], cfg: AssociationConfig, names: list[str] | None = None,
                 app_sigma: np.ndarray | None = None):
        self.cams, self.cfg = cams, cfg
        self.names = list(names) if names is not None else [c.name for c in cams]
        self.proj = _Projector(cams)
        self.f_px = np.array([0.5 * (c.K[0, 0] + c.K[1, 1]) for c in cams])
        self.T = _Tracks(n_cams=len(cams))
        self.app_sigma = None if app_sigma is None or not cfg.appearance_weight > 0 else np.asarray(app_sigma)
        self.prev_t: int | None = None
        self.last_track = np.full(64, -1, np.int64)   # per tracklet key: track of its last assigned row and when
        self.last_frame = np.full(64, -10 ** 9, np.int64)

    def _grow(self, n: int) -> None:
        while n > len(self.last_track):
            self.last_track = np.r_[self.last_track, np.full(len(self.last_track), -1, np.int64)]
            self.last_frame = np.r_[self.last_frame, np.full(len(self.last_frame), -10 ** 9, np.int64)]

    def feed(self, idx: TrackletIndex, key: np.ndarray, rays: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Track the detected rows of one block of frames.

        Parameters
        ----------
        idx : the block's rows (any cameras of ``names``; all frames after
            the previous block's last frame).
        key : (N,) int64 ≥ 0, a session-wide id of each row's tracklet (the
            same id in every block; e.g. ``idx.tk`` for one block).
        rays : ``idx.row_rays`` if already computed.

        Returns
        -------
        track : (N,) int64 raw track id of each detected row (-1 unassigned),
            -2 for rows that are not detected; pass through :meth:`final`.
        cost : (N,) float64 ``d / τ`` of assigned rows, NaN otherwise.

        Raises
        ------
        InputError
            A frame of the block is not after the last frame already fed
            (blocks out of order or overlapping).
        """
        det = np.flatnonzero(idx.detected)
        if det.size and self.prev_t is not None and int(idx.frame[det].min()) <= self.prev_t:
            raise InputError(None, "Tracklet2D block", f"frame {int(idx.frame[det].min())} is not after the last "
                             f"frame already tracked ({self.prev_t})",
                             "feed blocks of consecutive, non-overlapping frames in increasing order")
        N = len(idx.frame)
        track = np.full(N, -2, np.int64)
        cost = np.full(N, np.nan)
        track[det] = -1
        if not det.size:
            return track, cost
        key = np.asarray(key, np.int64)
        self._grow(int(key.max()) + 1)
        cam_map = np.array([self.names.index(n) for n in idx.camera_names], np.int64)
        cam_of = cam_map[idx.keys["cam"].to_numpy()[idx.tk]]
        if rays is None:
            rays = idx.row_rays(dict(zip(self.names, self.cams)))
        order = det[np.lexsort((cam_of[det], idx.frame[det]))]
        fr = idx.frame[order]
        frames, starts = np.unique(fr, return_index=True)
        ends = np.append(starts[1:], len(order))
        # per-row arrays in (frame, camera) order: a frame's rows are one slice
        o_all, d_all = rays[0][order], rays[1][order]
        cx, cy, w, h = idx.cx[order], idx.cy[order], idx.w[order], idx.h[order]
        cam_o, key_o = cam_of[order], key[order]
        size_o = np.sqrt(np.abs(w * h))
        tau0_o = (self.cfg.box_fraction * size_o) ** 2 + self.cfg.centroid_sigma ** 2
        tr_o = np.full(len(order), -1, np.int64)
        dn_o = np.full(len(order), np.nan)
        cxy_o = np.column_stack([cx, cy])
        fpx_o = self.f_px[cam_o]
        w_o = _ray_weights(o_all, d_all) if len(self.cams) < 8 else None
        app_o = idx.appearance[order] if self.app_sigma is not None and idx.appearance is not None else None
        with np.errstate(invalid="ignore", divide="ignore"):
            for t, a, b in zip(frames.tolist(), starts.tolist(), ends.tolist()):
                sl = slice(a, b)   # the frame's rows; _step fills tr_o[sl], dn_o[sl] in place
                self._step(t, sl, cam_o[sl], key_o[sl], cxy_o[sl], w[sl], h[sl], o_all[sl], d_all[sl], size_o[sl],
                           tau0_o[sl], fpx_o[sl], tr_o[sl], dn_o[sl], None if w_o is None else w_o[sl],
                           None if app_o is None else app_o[sl])
        track[order], cost[order] = tr_o, dn_o
        return track, cost

    def _step(self, t, sl, rc, tk, cxy, w, h, o_f, d_f, size_px, tau0_sq, fpx, assigned, dn, w_f=None,
              app=None) -> None:
        """One frame: predict, assign per camera, update, births, bookkeeping.

        Per-row arrays are the frame's rows (sorted by camera); ``assigned``
        (-1) and ``dn`` (NaN) are filled in place with each row's track and
        normalised distance.
        """
        T, cfg, proj, f_px = self.T, self.cfg, self.proj, self.f_px
        R = len(rc)
        rows = np.arange(R)                     # the frame's rows, local indices
        act = T.alive[:T.n].nonzero()[0]
        step = 1 if self.prev_t is None else t - self.prev_t
        self.prev_t = t
        if act.size:
            _predict(T, act, step, cfg.motion_noise)
            sa = _span(act)                                   # act as a slice when contiguous (views)
            uvp, depth = proj(T.X[sa])                        # (C, A, 2), (C, A)
            # (R, A) normalised squared distances, gate and costs (kernels.gate_costs): a row more than 3x
            # the size of the target it would be matched to is not that target (a lighting flash or a
            # camera going dark makes frame-sized foreground blobs); a row larger than one target whose box
            # holds the predictions of >= 2 confirmed tracks within the gate is a merged blob (its centroid
            # lies between the targets, nobody's measurement); continuity bonus for the tracklet's track
            d2, ok, c2 = kernels.gate_costs(
                uvp, depth, rc, cxy, w, h, tau0_sq, fpx, size_px, T.size[sa], T.P[sa, 0, 0], T.confirmed[sa],
                cfg.gate ** 2, self.last_track[tk], (t - self.last_frame[tk]) <= cfg.continuity_frames, act,
                float(cfg.continuity_bonus), _BIG)
            if app is not None:  # appearance: squared normalised chromaticity distance, capped at 3σ
                am = T.app[act[None, :], rc[:, None]]                                        # (R, A, 2)
                an = T.app_n[act[None, :], rc[:, None]]                                      # (R, A)
                da = ((app[:, None, :] - am) ** 2).sum(2) / self.app_sigma[rc][:, None] ** 2
                use = ok & (an >= 3) & np.isfinite(da)
                c2 = np.where(use, c2 + cfg.appearance_weight * np.minimum(da, 9.0), c2)
            _assign(rc, ok, c2, d2, act, assigned, dn)
            if cfg.pair_gate is not None:
                _repair_pairs(T, act, rc, assigned, dn, d2, cxy, o_f, d_f, proj, tau0_sq, cfg.pair_gate, t)
            _update(T, act, rows, rc, assigned, dn, cxy, o_f, d_f, proj, tau0_sq, size_px, f_px, cfg, t, w_f)
        # births from the rows nobody claimed
        free = (assigned < 0).nonzero()[0]
        n0 = T.n
        if free.size >= 2 and rc[free].min() != rc[free].max():
            uv = cxy
            live = np.flatnonzero(T.alive[:T.n] & T.confirmed[:T.n])
            for grp_rows, X, sz in _births(free, rc[free], uv[free], o_f, d_f, proj, f_px, size_px, cfg):
                # no new track within 0.75 target sizes of a confirmed one: that is a part of the same
                # target (an over-split blob) or the ray crossing of a merged one, not a second target
                if live.size and (((T.X[live] - X) ** 2).sum(1) < (0.75 * T.size[live]) ** 2).any():
                    continue
                p0 = np.array([[(0.25 * sz) ** 2, 0.0], [0.0, (0.5 * sz) ** 2]])
                j = int(T.add(X[None], np.array([sz]), t, p0)[0])
                assigned[grp_rows] = j
                dn[grp_rows] = 0.0
        _bookkeeping(T, t, cfg, assigned, act if T.n == n0 else None)
        hit = assigned >= 0
        if app is not None:  # per (track, camera) running mean of the assigned rows' appearance
            fin = hit & np.isfinite(app).all(1)
            j, c = assigned[fin], rc[fin]
            n_ = np.minimum(T.app_n[j, c], 19.0)
            T.app[j, c] = (T.app[j, c] * n_[:, None] + app[fin]) / (n_ + 1)[:, None]
            T.app_n[j, c] += 1
        k = tk[hit]
        self.last_track[k] = assigned[hit]
        self.last_frame[k] = t
        dn[~hit] = np.nan

    def final(self, track: np.ndarray) -> np.ndarray:
        """Raw track ids from :meth:`feed` -> confirmed track or -1 (-2 kept); call after the last block."""
        conf = np.zeros(self.T.n + 1, bool)
        conf[:self.T.n] = self.T.confirmed[:self.T.n]
        track = np.asarray(track)
        bad = (track >= 0) & ~conf[np.where(track >= 0, track, self.T.n)]
        return np.where(bad, -1, track)

    def size(self) -> float:
        """Median target size (m) over the confirmed tracks so far; NaN when none."""
        sizes = self.T.size[:self.T.n][self.T.confirmed[:self.T.n]]
        return float(np.median(sizes)) if sizes.size else float("nan")


def _assign(rc: np.ndarray, ok: np.ndarray, c2: np.ndarray, d2: np.ndarray, act: np.ndarray,
            assigned: np.ndarray, dn: np.ndarray) -> None:
    """Per camera, minimum-cost assignment of rows to tracks (``linear_sum_assignment``), in place.

    ``rc (R,)`` sorted camera of each row, ``ok (R, A)`` gate, ``c2`` cost
    (``_BIG`` outside the gate), ``d2`` squared normalised distance. The
    per-camera problems (``_BIG`` for pairs outside the gate, so the solver
    first maximises the number of gated pairs, then minimises their cost)
    split into the connected components of the gate graph: a row whose only
    gated track is gated for no other row of its camera is matched to it
    directly; the remaining rows of all cameras are solved in one call, with
    one column per (camera, track) in their gates. When every row's cheapest
    track is its own (:func:`_assign_mutual`, the usual frame) that is the
    optimum and no solver runs.
    """
    R, A = ok.shape
    n_ok = ok.sum(1)
    if not n_ok.any():
        return
    if _assign_mutual(rc, c2, d2, act, n_ok, assigned, dn):
        return
    col = ok.argmax(1)
    C = int(rc[-1]) + 1
    cs = np.zeros((R + 1, A), np.int64)
    np.cumsum(ok, 0, out=cs[1:])
    cut = np.searchsorted(rc, np.arange(C + 1))
    per_cam = cs[cut[1:]] - cs[cut[:-1]]                  # (C, A) rows of each camera gating each track
    easy = (n_ok == 1) & (per_cam[rc, col] == 1)
    e = np.flatnonzero(easy)
    assigned[e] = act[col[e]]
    dn[e] = np.sqrt(d2[e, col[e]])
    hard = np.flatnonzero((n_ok > 0) & ~easy)
    if not hard.size:
        return
    hi, hj = np.nonzero(ok[hard])
    key = rc[hard[hi]] * A + hj
    used = np.zeros(C * A, bool)
    used[key] = True
    ckey = np.flatnonzero(used)                             # one column per (camera, track), sorted
    M = np.full((len(hard), len(ckey)), _BIG)
    M[hi, (np.cumsum(used) - 1)[key]] = c2[hard[hi], hj]
    ri, ki = linear_sum_assignment(M)
    keep = M[ri, ki] < _BIG
    r, j = hard[ri[keep]], ckey[ki[keep]] % A
    assigned[r] = act[j]
    dn[r] = np.sqrt(d2[r, j])


def _assign_mutual(rc: np.ndarray, c2: np.ndarray, d2: np.ndarray, act: np.ndarray, n_ok: np.ndarray,
                   assigned: np.ndarray, dn: np.ndarray) -> bool:
    """:func:`_assign`'s result without the solver when every row's best track is its own; False otherwise.

    Applies when, for every row with a gated track, (i) its cheapest gated
    track is cheaper than its second cheapest by more than ``_MARGIN`` (relative;
    ``c2`` is ``_BIG`` outside the gate, so a row with one gated track always
    qualifies) and (ii) no other row of its camera has the same cheapest track.
    Then assigning every such row its cheapest track is *the* optimum of
    :func:`_assign`'s problem: it matches every row that has a gated track
    (the most gated pairs any assignment can have, which the ``_BIG`` costs
    make the first objective), and its cost ``Σ_i min_j c2[i, j]`` is a lower
    bound of any assignment's cost that any other assignment exceeds by more
    than the margin, because at least one of its rows then takes a track that
    is not its cheapest. So the solver (``linear_sum_assignment``, exact up to
    rounding, which the margin covers) returns this assignment, and the
    direct matches of :func:`_assign` (a row whose only gated track is gated
    for no other row of its camera) are a special case of it. Tested against
    the solver on random problems (``tests/test_associate_frames.py``).
    """
    return kernels.assign_mutual(rc, c2, d2, act, n_ok, _MARGIN, assigned, dn)


# sustained crossed pairings (_sustained_exchange); chosen on the default scene's camera pairs, seeds 0-4
_PE_DECAY = 0.75  # per frame: running mean of a two-camera track's squared pair error (memory ~4 frames)
_PE_HIGH = 0.05   # tau0^2: above it the pairing is doubtful (RMS 0.22 tau0; correct pairs: median 0.04, 90 % < 0.16)
_PE_NEW = 0.5     # x pair_gate: largest pair error of an exchanged pairing
_PE_RATIO = 0.5   # an exchange must at least halve the two pairs' summed squared error
_PAIR_DROP = 2.0  # x pair_gate: pair error above which a lone inconsistent two-camera pair drops a row
_MARGIN = 1e-6   # relative cost gap below which _assign_mutual leaves a row's choice to the solver


_DEV_BIN = 1e-5   # chromaticity units: bin width of the deviation histogram behind appearance_sigma
_DEV_BINS = 20000  # deviations beyond 0.2 (another target's rows) share the last bin


def appearance_stats(tk: np.ndarray, app: np.ndarray, ok: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tracklet appearance sums ``(K, 2)`` and counts ``(K,)`` (additive over blocks).

    ``tk (N,)`` tracklet of each row (0..K-1), ``app (N, 2)`` its appearance,
    ``ok (N,)`` the rows to count (detected, finite appearance).
    """
    s = np.stack([np.bincount(tk[ok], weights=app[ok, k], minlength=K) for k in range(2)], 1)
    return s, np.bincount(tk[ok], minlength=K)


def appearance_histogram(tk: np.ndarray, cam: np.ndarray, app: np.ndarray, ok: np.ndarray, mean: np.ndarray,
                         n: np.ndarray, C: int) -> np.ndarray:
    """``(C, _DEV_BINS)`` counts of ``|a − tracklet mean|`` per camera (both components; tracklets with ≥ 5 rows).

    Rows as :func:`appearance_stats`, ``cam (N,)`` camera index (0..C-1);
    ``mean (K, 2)``, ``n (K,)``: per-tracklet means and row counts over the
    whole session. Additive over blocks.
    """
    ok = ok & (n[tk] >= 5)
    dev = np.abs(app[ok] - mean[tk[ok]]).ravel()
    b = np.minimum((dev / _DEV_BIN).astype(np.int64), _DEV_BINS - 1)
    return np.bincount(np.repeat(cam[ok], 2) * _DEV_BINS + b, minlength=C * _DEV_BINS).reshape(C, _DEV_BINS)


def sigma_from_histogram(hist: np.ndarray) -> np.ndarray:
    """Per-camera ``1.4826 · median`` of the deviations in ``hist`` (pooled below 40 values); floor 1e-3."""
    def med(h):
        c = np.cumsum(h)
        return (np.searchsorted(c, c[-1] / 2.0) + 0.5) * _DEV_BIN if c[-1] else 0.01 / 1.4826
    pooled = med(hist.sum(0))
    out = np.array([med(h) if h.sum() >= 40 else pooled for h in hist])
    return np.maximum(1.4826 * out, 1e-3)


def appearance_sigma(idx: TrackletIndex) -> np.ndarray:
    """Per-camera spread of one row's appearance about its target's, ``(C,) float64`` chromaticity units.

    Robust estimate over the detected rows of tracklets with ≥ 5 of them:
    ``1.4826 · median |a − mean of its tracklet|`` over both chromaticity
    components (the normalised MAD, Rousseeuw & Croux 1993; the median read
    from a histogram of ``_DEV_BIN`` wide bins, so a session cut into blocks
    gets the same value from :func:`appearance_stats` and
    :func:`appearance_histogram` summed over its blocks). This spread
    includes the slow change of a target's appearance with its pose and the
    rows of another target after a 2D identity switch, which a track's
    running mean also sees; consecutive rows differ much less (measured:
    the estimate from consecutive rows is about half, and weights appearance
    too strongly). Cameras with fewer than 20 such rows take the pooled value.
    """
    return appearance_sigma_rows(idx.tk, idx.keys["cam"].to_numpy()[idx.tk], idx.appearance, idx.detected,
                                 len(idx.camera_names))


def appearance_sigma_rows(tk: np.ndarray, cam: np.ndarray, app: np.ndarray, detected: np.ndarray, C: int
                          ) -> np.ndarray:
    """:func:`appearance_sigma` from plain per-row arrays: tracklet ``tk (N,)``, camera ``cam (N,)`` (0..C-1),
    appearance ``app (N, 2)`` and the ``detected (N,)`` mask."""
    ok = detected & np.isfinite(app).all(1)
    K = int(tk.max()) + 1 if len(tk) else 0
    s, n = appearance_stats(tk, app, ok, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n[:, None]
    return sigma_from_histogram(appearance_histogram(tk, cam, app, ok, mean, n, C))


def _span(idx: np.ndarray) -> slice | np.ndarray:
    """Sorted unique indices ``idx`` as a slice when they are one contiguous range, else ``idx`` itself.

    Indexing the track arrays with the slice gives views instead of gathered
    copies (the same values; callers write back only arrays computed before).
    """
    n = len(idx)
    if n:
        lo = int(idx[0])
        if int(idx[-1]) - lo + 1 == n:
            return slice(lo, lo + n)
    return idx


def _predict(T: _Tracks, act: np.ndarray, step: int, motion_noise: float) -> None:
    """Constant-velocity prediction over ``step`` frames (discrete white-noise acceleration)."""
    dt = float(step)
    kernels.predict_cv(T.X, T.V, T.P, T.size, act, dt, dt ** 4, dt ** 3, float(motion_noise))


def _pair_error(ra: np.ndarray, rb: np.ndarray, rc, cxy, o_all, d_all, proj, tau0_sq) -> tuple[np.ndarray,
                                                                                            np.ndarray]:
    """Consistency of row pairs of two cameras: ``(e (M,), X (M, 3))``.

    ``e`` is the larger of the two rows' normalised reprojection errors
    ``|uv − proj(X)| / τ₀`` of the pair's ray midpoint ``X`` (``inf`` when the
    rays are parallel, the point is behind either camera or outside either
    image).
    """
    _, s_, t_, X = closest_points(o_all[ra], d_all[ra], o_all[rb], d_all[rb])
    uv, _ = proj(X)
    m = np.arange(len(ra))
    ea = np.hypot(*(uv[rc[ra], m] - cxy[ra]).T) / np.sqrt(tau0_sq[ra])
    eb = np.hypot(*(uv[rc[rb], m] - cxy[rb]).T) / np.sqrt(tau0_sq[rb])
    e = np.fmax(ea, eb)
    return np.where(np.isfinite(e) & (s_ > 0) & (t_ > 0), e, np.inf), X


def _repair_pairs(T: _Tracks, act, rc, assigned, dn, d2, cxy, o_all, d_all, proj, tau0_sq, pair_gate: float,
                  t: int = 0) -> None:
    """Ghost pairings of two-camera tracks, in place (``associate.pair_gate``; see :class:`AssociationConfig`).

    A track assigned rows of exactly two cameras whose pair error
    (:func:`_pair_error`) exceeds ``pair_gate`` holds rows of two different
    targets. Two such tracks that share a camera exchange their rows of that
    camera when both new pairs are within ``pair_gate`` (the two targets'
    rows were crossed); among the possible exchanges the one whose new points
    lie nearest the two tracks' predictions is taken, each track once. A
    track left with a pair error above ``_PAIR_DROP · pair_gate`` drops the
    row farther from its prediction (``d2``: squared normalised distances of
    the frame's rows to the tracks' predictions, ``(R, A)``), which births
    may then pair correctly — unless the partner rows of both its targets
    are free: then it is re-paired instead (:func:`_repair_with_free_rows`).
    One inconsistent pair is weaker evidence than
    two crossed pairs that become consistent when exchanged (a box cut by
    the image border or a merged blob also shifts a true pair's centroids):
    on the synthetic hard scene (6 seeds) dropping at ``pair_gate`` itself
    lowered 3D IDF1 on 4 seeds. The exchange candidates are the pairs of
    inconsistent tracks only (:func:`_exchange_candidates`; a handful, on
    frames that have them, none on most frames). Crossed pairs within
    ``pair_gate`` are handled first, over a few frames
    (:func:`_sustained_exchange`).
    """
    hit = np.flatnonzero(assigned >= 0)
    if hit.size < 2:
        return
    ap = np.searchsorted(act, assigned[hit])
    two = np.bincount(ap, minlength=len(act)) == 2
    sel = two[ap]
    if not sel.any():
        return
    o = np.argsort(ap[sel], kind="stable")
    h2 = hit[sel][o]
    ra, rb, trk = h2[0::2], h2[1::2], ap[sel][o][0::2]   # each two-camera track's rows (camera order)
    e, _ = _pair_error(ra, rb, rc, cxy, o_all, d_all, proj, tau0_sq)
    done = np.zeros(len(ra), bool)
    _sustained_exchange(T, act, trk, ra, rb, e, rc, assigned, dn, d2, cxy, o_all, d_all, proj, tau0_sq, pair_gate,
                        t, done)
    bad = np.flatnonzero((e > pair_gate) & ~done)
    if not bad.size:
        return
    if bad.size >= 2:   # crossed pairs: both tracks bad, both exchanged pairs within the gate
        i_, j_, ri_, rj_, oi, oj, ei, Xi, ej, Xj = _exchange_candidates(bad, ra, rb, rc, cxy, o_all, d_all, proj,
                                                                        tau0_sq)
        ok = np.flatnonzero((ei <= pair_gate) & (ej <= pair_gate))
        score = ((Xi - T.X[act[trk[i_]]]) ** 2).sum(1) + ((Xj - T.X[act[trk[j_]]]) ** 2).sum(1)
        for k in ok[np.argsort(score[ok], kind="stable")].tolist():   # nearest the predictions first
            _exchange_rows(act, trk, assigned, dn, d2, done, i_[k], j_[k], ri_[k], rj_[k])
    rest = bad[~done[bad]]
    if rest.size:
        _repair_with_free_rows(T, act, trk, ra, rb, rest, rc, assigned, dn, d2, cxy, o_all, d_all, proj, tau0_sq,
                               pair_gate, done)
    left = bad[~done[bad] & (e[bad] > _PAIR_DROP * pair_gate)]
    if left.size:   # clearly inconsistent: drop the row farther from the track's prediction
        far_a = d2[ra[left], trk[left]] >= d2[rb[left], trk[left]]
        drop = np.where(far_a, ra[left], rb[left])
        assigned[drop] = -1
        dn[drop] = np.nan


def _repair_with_free_rows(T: _Tracks, act, trk, ra, rb, rest, rc, assigned, dn, d2, cxy, o_all, d_all, proj,
                           tau0_sq, pair_gate: float, done: np.ndarray) -> None:
    """Inconsistent two-camera pairs whose partner rows are free: re-pair into two consistent pairs, in place.

    A track holding rows ``ra[i]`` (camera a) and ``rb[i]`` (camera b) of
    two different targets (pair error above ``pair_gate``, and no other
    inconsistent track to exchange with: the other two rows of the crossing
    went unassigned) is re-paired when *both* targets' rows can be: a free
    row of camera b pairs within ``pair_gate`` with ``ra[i]``, and a free row
    of camera a pairs within it with ``rb[i]``. The track then keeps one of
    its rows and takes that row's consistent free partner — of the two
    options, the one whose new point lies nearest its prediction — and
    releases the other row, which births pair with its own partner. Seen in
    the top + front two-view tank, where two fish at a similar ``x`` (the
    image direction both views share) pair up crossed at 1–2 τ₀: below
    ``_PAIR_DROP · pair_gate`` such a pair was kept, with the true partners
    unassigned, for tens of frames (``config/synthetic_topfront.yaml`` seed 3:
    3D IDF1 0.875 → 0.937). Requiring both new pairs to be consistent leaves
    crowds alone: the hard scene's 6 seeds and the 4-camera default are
    unchanged, the default scene's 54 camera pairs within ±0.01 (net +0.002).

    ``rest (K,)``: positions into ``ra, rb, trk`` of the inconsistent tracks
    not yet repaired; ``done`` marks the re-paired ones. Work: one
    :func:`_pair_error` call over (track, free row of one of its cameras).
    """
    free = np.flatnonzero(assigned < 0)
    if free.size < 2:
        return
    i_ = np.repeat(rest, len(free))
    f_ = np.tile(free, len(rest))
    on_b = rc[f_] == rc[rb[i_]]             # f would replace rb: pair (ra, f)
    sel = on_b | (rc[f_] == rc[ra[i_]])     # ... or ra: pair (f, rb)
    i_, f_, on_b = i_[sel], f_[sel], on_b[sel]
    if not i_.size:
        return
    e, X = _pair_error(np.where(on_b, ra[i_], rb[i_]), f_, rc, cxy, o_all, d_all, proj, tau0_sq)
    ok = e <= pair_gate
    has_b = np.zeros(len(ra), bool)
    has_a = np.zeros(len(ra), bool)
    has_b[i_[ok & on_b]] = True
    has_a[i_[ok & ~on_b]] = True
    cand = np.flatnonzero(ok & has_a[i_] & has_b[i_])
    if not cand.size:
        return
    dist = ((X[cand] - T.X[act[trk[i_[cand]]]]) ** 2).sum(1)
    taken: set[int] = set()
    for k in cand[np.argsort(dist, kind="stable")].tolist():   # nearest the prediction first
        i, f = int(i_[k]), int(f_[k])
        if done[i] or f in taken:
            continue
        taken.add(f)
        done[i] = True
        out = rb[i] if on_b[k] else ra[i]
        assigned[out], dn[out] = -1, np.nan
        assigned[f], dn[f] = act[trk[i]], np.sqrt(d2[f, trk[i]])


def _label_swap(T: _Tracks, a: int, b: int, Pa: np.ndarray, Pb: np.ndarray, t: int) -> bool:
    """Whether the points ``Pa, Pb (3,)`` (m) fit tracks ``b, a`` better than ``a, b``.

    Judged against each track's state from before its pairing became
    doubtful (``T.cX + T.cV · (t − T.ct)``, constant velocity), not against
    its current prediction, which has followed the crossed pairing since.
    """
    pa = T.cX[a] + T.cV[a] * (t - T.ct[a])
    pb = T.cX[b] + T.cV[b] * (t - T.ct[b])
    keep = ((Pa - pa) ** 2).sum() + ((Pb - pb) ** 2).sum()
    swap = ((Pb - pa) ** 2).sum() + ((Pa - pb) ** 2).sum()
    return bool(swap < keep)


def _sustained_exchange(T: _Tracks, act, trk, ra, rb, e, rc, assigned, dn, d2, cxy, o_all, d_all, proj, tau0_sq,
                        pair_gate: float, t: int, done: np.ndarray) -> None:
    """Crossed two-camera pairings that stay within ``pair_gate``, in place (called by :func:`_repair_pairs`).

    Where the blobs of two targets merge in one camera, the tracker may
    take each other's rows there; the crossed pairs then stay consistent
    enough to pass ``pair_gate`` (median 0.49 τ₀ against 0.04 for correct
    pairs; ``benchmarks/association_accuracy.py``, pair error) while their
    points drift off both targets, and the identities are lost once the
    pairs finally fail the gate. No single frame separates them, a few
    frames do: each two-camera track keeps a running mean of its squared
    pair error (``_PE_DECAY`` per frame). When two tracks sharing a camera
    both lie above ``_PE_HIGH``, and giving each the other's row of that
    camera yields pairs within ``_PE_NEW`` · ``pair_gate`` that at least
    halve (``_PE_RATIO``) their summed squared error, the rows are
    exchanged. The two new points go to the tracks they fit from the
    states recorded when the running means rose above ``_PE_HIGH``
    (:func:`_label_swap`): exchanging the rows of the shared camera or the
    other rows gives the same points with the identities the other way
    round.

    ``trk (K,)``: index into ``act`` of each two-camera track, ``ra, rb
    (K,)`` its rows, ``e (K,)`` their pair errors (τ₀); ``done (K,)`` marks
    the exchanged tracks. Candidates are enumerated over the doubtful
    tracks only (none on most frames).
    """
    ids = act[trk]
    old = T.pe2[ids] * _PE_DECAY ** (t - T.pe_t[ids])
    new = _PE_DECAY * old + (1 - _PE_DECAY) * np.minimum(e, 3.0) ** 2
    up = ids[(old <= _PE_HIGH) & (new > _PE_HIGH)]   # just became doubtful: remember the state before
    T.cX[up], T.cV[up], T.ct[up] = T.X[up], T.V[up], t
    T.pe2[ids], T.pe_t[ids] = new, t
    hi = np.flatnonzero(new > _PE_HIGH)
    if hi.size < 2:
        return
    i_, j_, ri_, rj_, oi, oj, ei, Xi, ej, Xj = _exchange_candidates(hi, ra, rb, rc, cxy, o_all, d_all, proj, tau0_sq)
    now = np.minimum(e[i_], 3.0) ** 2 + np.minimum(e[j_], 3.0) ** 2
    after = np.minimum(ei, 3.0) ** 2 + np.minimum(ej, 3.0) ** 2
    ok = np.flatnonzero((np.fmax(ei, ej) <= _PE_NEW * pair_gate) & (after < _PE_RATIO * now))
    for k in ok[np.argsort(after[ok] - now[ok], kind="stable")].tolist():   # largest gain first
        i, j = i_[k], j_[k]
        if done[i] or done[j]:
            continue
        a, b = act[trk[i]], act[trk[j]]
        # the same two points with the identities the other way round: exchange the other rows
        swap = _label_swap(T, a, b, Xi[k], Xj[k], t)
        _exchange_rows(act, trk, assigned, dn, d2, done, i, j, *((oi[k], oj[k]) if swap else (ri_[k], rj_[k])))
        T.pe2[a] = T.pe2[b] = 0.0


def _exchange_candidates(sel: np.ndarray, ra, rb, rc, cxy, o_all, d_all, proj, tau0_sq) -> tuple[np.ndarray, ...]:
    """Row exchanges between the two-camera tracks ``sel`` (positions into ``ra, rb``) that share a camera.

    For every pair ``i < j`` of ``sel`` (in order) and each shared camera
    (``ra`` rows first, then ``rb``): ``i, j``, the rows ``ri, rj`` of that
    camera (exchanged), the rows ``oi, oj`` that stay, and the pair errors
    (τ₀) and points (m) ``ei, Xi`` of ``(oi, rj)`` and ``ej, Xj`` of ``(oj, ri)``
    (:func:`_pair_error`). All arrays ``(M,)`` or ``(M, 3)``; M may be 0.
    """
    i_, j_ = np.triu_indices(len(sel), 1)
    i_, j_ = np.repeat(sel[i_], 2), np.repeat(sel[j_], 2)
    ri_ = np.column_stack([ra[i_[0::2]], rb[i_[0::2]]]).ravel()   # per pair: the ra rows, then the rb rows
    rj_ = np.column_stack([ra[j_[0::2]], rb[j_[0::2]]]).ravel()
    sh = rc[ri_] == rc[rj_]
    i_, j_, ri_, rj_ = i_[sh], j_[sh], ri_[sh], rj_[sh]
    oi = np.where(ra[i_] == ri_, rb[i_], ra[i_])   # the rows that stay with each track
    oj = np.where(ra[j_] == rj_, rb[j_], ra[j_])
    ei, Xi = _pair_error(oi, rj_, rc, cxy, o_all, d_all, proj, tau0_sq)
    ej, Xj = _pair_error(oj, ri_, rc, cxy, o_all, d_all, proj, tau0_sq)
    return i_, j_, ri_, rj_, oi, oj, ei, Xi, ej, Xj


def _exchange_rows(act, trk, assigned, dn, d2, done, i: int, j: int, ri: int, rj: int) -> None:
    """Give row ``ri`` of two-camera track ``i`` to track ``j`` and ``rj`` to ``i`` (in place), unless either is done."""
    if done[i] or done[j]:
        return
    done[i] = done[j] = True
    assigned[ri], assigned[rj] = act[trk[j]], act[trk[i]]
    dn[ri], dn[rj] = np.sqrt(d2[ri, trk[j]]), np.sqrt(d2[rj, trk[i]])


def _update(T: _Tracks, act, rows, rc, assigned, dn, cxy, o_all, d_all, proj, tau0_sq, size_px, f_px, cfg, t,
            w_all=None) -> None:
    """Triangulate each track's rows, drop each track's worst row beyond the gate once, Kalman-update."""
    hit = np.flatnonzero(assigned >= 0)
    if not hit.size:
        return
    A = len(act)
    ap = np.searchsorted(act, assigned[hit])   # position of each row's track in act (sorted)
    r, rh = rows[hit], rc[hit]
    for attempt in range(2):
        Xm, n = _intersect(ap, rh, o_all[r], d_all[r], A, len(f_px), None if w_all is None else w_all[r])
        multi = n >= 2
        if attempt == 1:
            break
        # reprojection of each multi-camera point into the cameras of its rows; only tracks with a row
        # farther than one tau from the prediction can hold a row that disagrees with the others
        far = ap[dn[hit] > 1.0]
        if not far.size or not multi[far].any():
            break
        check = np.zeros(A, bool)
        check[far] = True
        check &= multi
        uvq, _ = proj(Xm[check])
        q = np.cumsum(check) - 1
        sel = check[ap]
        e = np.full(len(hit), 0.0)
        u = uvq[rc[hit[sel]], q[ap[sel]]]
        e[sel] = np.sqrt(((cxy[r[sel]] - u) ** 2).sum(1) / tau0_sq[r[sel]])
        e = np.where(np.isfinite(e), e, np.inf)
        worst = np.zeros(A)
        np.maximum.at(worst, ap, e)
        bad = np.flatnonzero((e > cfg.gate) & (e == worst[ap]))
        if not bad.size:
            break
        _, first_bad = np.unique(ap[bad], return_index=True)   # one row per track
        drop = hit[bad[first_bad]]
        assigned[drop] = -1
        dn[drop] = np.nan
        hit = np.flatnonzero(assigned >= 0)
        if not hit.size:
            return
        ap = np.searchsorted(act, assigned[hit])
        r, rh = rows[hit], rc[hit]
    kernels.update_tracks(T.X, T.V, T.P, T.size, T.streak, T.last_multi, act, Xm, n, ap, r, rh, o_all, d_all,
                          size_px, f_px, proj.R2, proj.t2, t)


_COF = (np.array([1, 4, 3, 0, 3, 0]), np.array([2, 5, 5, 2, 4, 1]), np.array([5, 3, 4, 4, 0, 3]),
        np.array([5, 2, 1, 4, 5, 3]))   # cofactor terms of _intersect, indices into (a, e, i, b, c, f)
_DET = np.array([0, 3, 4])
_ADJ = np.array([0, 1, 2, 1, 3, 4, 2, 4, 5])


def _intersect(g: np.ndarray, cam: np.ndarray, o: np.ndarray, d: np.ndarray, G: int, C: int,
               w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares intersection of the rays of each group (midpoint method, as :func:`.refine.group_points`).

    ``g, cam (n,)`` group and camera of each ray (at most one ray per group and
    camera), ``o, d (n, 3)`` origins and unit directions. Returns ``X (G, 3)``
    (NaN for groups with < 2 rays or parallel rays) and the ray count
    ``(G,)``. The rays are laid out densely as ``(G, C, 3)`` (zeros where a
    camera has no ray, which adds nothing to the sums) and the 3×3 normal
    equations ``Σ(I − d dᵀ) X = Σ(I − d dᵀ) o`` are solved in closed form
    (adjugate / determinant) instead of a batched ``np.linalg.solve``. With
    fewer than 8 cameras the sums are accumulated ray by ray in one compiled
    call (:func:`.kernels.intersect_rays`; the rays of a group come in camera
    order, so the additions happen in the same order as the dense sums and the
    result is bit-identical; numpy sums ≥ 8 terms pairwise, hence the dense
    layout there); ``w`` is :func:`_ray_weights` of the rays if already
    computed.
    """
    if C < 8:
        return kernels.intersect_rays(g, _ray_weights(o, d) if w is None else w, G)
    n = np.bincount(g, minlength=G)
    P = o - d * (d * o).sum(1)[:, None]
    D = np.zeros((G, C, 3))
    Pd = np.zeros((G, C, 3))
    D[g, cam] = d
    Pd[g, cam] = P
    b = Pd.sum(1)
    dx, dy, dz = D[..., 0], D[..., 1], D[..., 2]
    V = np.column_stack([n - (dx * dx).sum(1), n - (dy * dy).sum(1), n - (dz * dz).sum(1),
                         -(dx * dy).sum(1), -(dx * dz).sum(1), -(dy * dz).sum(1)])
    # cofactors A0 = e·i − f², A1 = c·f − b·i, A2 = b·f − c·e, B1 = a·i − c², B2 = b·c − a·f, C2 = a·e − b²,
    # each product and difference evaluated as written (elementwise, so stacking them changes no bit)
    cof = V[:, _COF[0]] * V[:, _COF[1]] - V[:, _COF[2]] * V[:, _COF[3]]
    q = V[:, _DET] * cof[:, :3]                  # det = a·A0 + b·A1 + c·A2, summed left to right
    det = q[:, 0] + q[:, 1] + q[:, 2]
    t = cof[:, _ADJ].reshape(-1, 3, 3) * b[:, None, :]   # adjugate (symmetric) times b, row by row
    X = (t[..., 0] + t[..., 1] + t[..., 2]) / det[:, None]
    X[(n < 2) | ~(np.abs(det) > 1e-12)] = np.nan
    return X, n


def _ray_weights(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``(n, 9)`` per-ray terms of :func:`_intersect`'s normal equations: ``dx², dy², dz², dx·dy, dx·dz,
    dy·dz`` and ``o − d (d·o)`` (3)."""
    P = o - d * (d * o).sum(1)[:, None]
    return np.column_stack([d[:, 0] * d[:, 0], d[:, 1] * d[:, 1], d[:, 2] * d[:, 2], d[:, 0] * d[:, 1],
                            d[:, 0] * d[:, 2], d[:, 1] * d[:, 2], P])


def _bookkeeping(T: _Tracks, t: int, cfg: AssociationConfig, assigned: np.ndarray,
                 act: np.ndarray | None = None) -> None:
    """Confirm tentative tracks, drop failed ones, end lost tracks and duplicates.

    ``act``: the live tracks if the caller has them (no track born or ended since it took them)."""
    if act is None:
        act = np.flatnonzero(T.alive[:T.n])
    if not act.size:
        return
    sa = _span(act)
    conf = T.confirmed[sa]
    if not conf.all():
        _tentative(T, act, t, cfg, assigned)
        conf = T.confirmed[sa]
    lost = act[conf & (t - T.last_multi[sa] > cfg.max_coast_frames)]
    if lost.size:
        T.alive[lost] = False
    if t % _DUP_EVERY:
        return
    # duplicates: two confirmed tracks within a quarter target size for n_init + 10 frames
    live = act[T.alive[act] & T.confirmed[act]]
    if live.size >= 2:
        D2 = ((T.X[live, None] - T.X[None, live]) ** 2).sum(2)
        near = D2 < (0.25 * np.minimum(T.size[live, None], T.size[None, live])) ** 2
        # the younger of two near tracks (born later, or later index) is the duplicate
        older = (T.born[live, None] > T.born[None, live]) | \
            ((T.born[live, None] == T.born[None, live]) & (live[:, None] > live[None, :]))
        is_dup = (near & older).any(1)
        if is_dup.any() or T.close[live].any():
            T.close[live] = np.where(is_dup, T.close[live] + _DUP_EVERY, 0)
            T.alive[live[T.close[live] > cfg.n_init + 10]] = False


def _tentative(T: _Tracks, act: np.ndarray, t: int, cfg: AssociationConfig, assigned: np.ndarray) -> None:
    """Confirm tentative tracks with ``n_init`` multi-camera frames; drop those that missed this frame."""
    born_now = T.born[act] == t
    multi_now = T.last_multi[act] == t
    tent = act[~T.confirmed[act] & ~born_now]
    fail = tent[~multi_now[~T.confirmed[act] & ~born_now]]
    T.alive[fail] = False
    assigned[np.isin(assigned, fail)] = -1
    newc = act[~T.confirmed[act] & (T.streak[act] >= cfg.n_init) & T.alive[act]]
    T.confirmed[newc] = True


def _births(rows, rc, uv, o_all, d_all, proj: "_Projector", f_px, size_px, cfg
            ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """New 3D points from unassigned rows of ≥ 2 cameras: ``[(rows, X (3,), size m)]`` (see module docstring).

    Vectorised over candidates: every cross-camera pair of rows whose ray
    midpoint reprojects within the gate in both images is a candidate; it is
    extended by the nearest row of every other camera within the gate and
    triangulated again from all its rows (falling back to the pair if a row
    then leaves the gate); candidates are accepted greedily by number of
    cameras, then mean normalised error, each row used once.
    """
    C = len(f_px)
    tau = np.sqrt((cfg.box_fraction * size_px[rows]) ** 2 + cfg.centroid_sigma ** 2)
    by_cam = [np.flatnonzero(rc == c) for c in range(C)]
    ia, ib = [], []
    for ca in range(C):
        for cb in range(ca + 1, C):
            A, B = by_cam[ca], by_cam[cb]
            if A.size and B.size:
                ia.append(np.repeat(A, len(B)))
                ib.append(np.tile(B, len(A)))
    if not ia:
        return []
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    ra, rb = rows[ia], rows[ib]
    _, s, tt, X = closest_points(o_all[ra], d_all[ra], o_all[rb], d_all[rb])
    uvp, _ = proj(X)                                              # (C, M, 2)
    M = len(X)
    ea = np.hypot(*(uvp[rc[ia], np.arange(M)] - uv[ia]).T) / tau[ia]
    eb = np.hypot(*(uvp[rc[ib], np.arange(M)] - uv[ib]).T) / tau[ib]
    pg = cfg.gate if cfg.pair_gate is None else min(cfg.gate, cfg.pair_gate)   # pairs: associate.pair_gate
    ok = (s > 0) & (tt > 0) & (ea <= pg) & (eb <= pg)
    if not ok.any():
        return []
    ia, ib, X, uvp = ia[ok], ib[ok], X[ok], uvp[:, ok]
    M = len(X)
    # members (M, C): the pair, plus the nearest row of every other camera within the gate
    mem = np.full((M, C), -1, np.int64)
    mem[np.arange(M), rc[ia]] = ia
    mem[np.arange(M), rc[ib]] = ib
    for c in range(C):
        sel = by_cam[c]
        if not sel.size:
            continue
        e = np.hypot(uvp[c][:, None, 0] - uv[sel, 0][None], uvp[c][:, None, 1] - uv[sel, 1][None]) / tau[sel][None]
        e = np.where(np.isfinite(e), e, np.inf)
        k = e.argmin(1)
        near = (e[np.arange(M), k] <= cfg.gate) & (mem[:, c] < 0)
        mem[near, c] = sel[k[near]]
    # triangulate every candidate from all its members; check they all stay within the gate
    cand, cam = np.nonzero(mem >= 0)
    m_rows = rows[mem[cand, cam]]
    Xn, n = _intersect(cand, cam, o_all[m_rows], d_all[m_rows], M, C)
    uvn, _ = proj(Xn)
    en = np.hypot(*(uvn[cam, cand] - uv[mem[cand, cam]]).T) / tau[mem[cand, cam]]
    en = np.where(np.isfinite(en), en, np.inf)
    worst = np.zeros(M)
    np.maximum.at(worst, cand, en)
    full_ok = (worst <= cfg.gate) & np.isfinite(Xn).all(1)
    pair_only = ~full_ok
    mem[pair_only] = -1
    mem[pair_only, rc[ia[pair_only]]] = ia[pair_only]
    mem[pair_only, rc[ib[pair_only]]] = ib[pair_only]
    Xn[pair_only] = X[pair_only]
    n_cam = (mem >= 0).sum(1)
    mean_e = np.where(full_ok, np.bincount(cand, weights=np.where(np.isfinite(en), en, 0), minlength=M) /
                      np.maximum(n, 1), 0.5 * (np.hypot(*(uvp[rc[ia], np.arange(M)] - uv[ia]).T) / tau[ia] +
                                               np.hypot(*(uvp[rc[ib], np.arange(M)] - uv[ib]).T) / tau[ib]))
    used = np.zeros(len(rows), bool)
    out = []
    for q in np.lexsort((mean_e, -n_cam)).tolist():   # greedy; cheap per candidate
        m = mem[q][mem[q] >= 0]
        if used[m].any():
            continue
        used[m] = True
        r = rows[m]
        depth = proj.depth(np.broadcast_to(Xn[q], (len(r), 3)), rc[m])
        out.append((r, Xn[q], float(np.median(size_px[r] * depth / f_px[rc[m]]))))
        if used.all():
            break
    return out


def tracklet_pieces(idx: TrackletIndex, track: np.ndarray, min_run: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut every 2D tracklet where its rows' 3D track changes.

    Parameters
    ----------
    idx : the rows (sorted by tracklet, frame).
    track : (N,) from :func:`track_detections` (-1 unassigned, -2 not detected).
    min_run : detected rows a run of one track needs to stand on its own;
        shorter runs take their longer neighbour's track.

    A filled or absorbed row never gives its track a second row in one
    camera-frame: against a row the tracker assigned it stays unclaimed;
    against another filled row the one nearer (in frames) to the row it was
    filled from keeps the track, neither on a tie (:func:`_filled_twice`).

    Returns
    -------
    piece : (N,) int64 piece number per row, unique over the session
        (consecutive rows of one tracklet with one track).
    piece_track : (n_pieces,) int64 3D track of each piece, -1 for a piece
        no 3D track claimed (rows of a tracklet that never met one).
    """
    N = len(track)
    if not N:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    L = np.full(N, -1, np.int64)
    dist = np.zeros(N, np.int64)   # frames from each row to the known row it takes its track from
    bounds = np.r_[0, np.flatnonzero(np.diff(idx.tk)) + 1, N]
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):  # per tracklet; vectorised inside
        v = track[lo:hi]
        pos = np.flatnonzero(v >= 0)
        if not pos.size:
            continue
        v_known = _segment(v[pos], min_run) if min_run > 1 and (v[pos] != v[pos[0]]).any() else v[pos]
        # every row takes the track of the nearest known row before it (after it for leading rows)
        j = np.searchsorted(pos, np.arange(hi - lo), "right") - 1
        L[lo:hi] = v_known[np.maximum(j, 0)]
        dist[lo:hi] = np.abs(idx.frame[lo:hi] - idx.frame[lo + pos[np.maximum(j, 0)]])
    _release_conflicts(L, track, idx.keys["cam"].to_numpy()[idx.tk], idx.frame, dist)
    new = np.ones(N, bool)
    new[1:] = (idx.tk[1:] != idx.tk[:-1]) | (L[1:] != L[:-1])
    piece = np.cumsum(new) - 1
    return piece.astype(np.int64), L[new]


def _release_conflicts(L: np.ndarray, track: np.ndarray, cam: np.ndarray, frame: np.ndarray,
                       dist: np.ndarray) -> None:
    """Unclaim (``L = -1``, in place) filled or absorbed rows that would give their track a second camera-frame row.

    ``L (N,)`` the filled tracks, ``track (N,)`` the tracker's (≥ 0 assigned),
    ``cam, frame (N,)``, ``dist (N,)`` frames from each row to the row it was
    filled from. Against a row the tracker assigned that track there, the
    filled row stays unclaimed; among filled rows :func:`_filled_twice`
    decides. Shared by :func:`tracklet_pieces` and the block path
    (:mod:`.blocks`), so both give the same pieces.
    """
    other = np.flatnonzero((L >= 0) & (L != track))
    if not other.size:
        return
    n_t = int(max(L.max(), track.max())) + 2
    key = (cam * (int(frame.max()) + 1) + frame) * n_t
    own = np.sort(key[track >= 0] + track[track >= 0])
    if own.size:
        q = key[other] + L[other]
        L[other[own[np.minimum(np.searchsorted(own, q), len(own) - 1)] == q]] = -1
    L[_filled_twice(key, L, other, dist)] = -1


def _filled_twice(key: np.ndarray, L: np.ndarray, other: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Rows among ``other`` (filled or absorbed, still claimed) to release: they share their camera-frame and track.

    ``key (N,)`` is ``(cam·span + frame)·n_t`` per row, ``L (N,)`` the filled
    track, ``dist (N,)`` frames from each row to the row of its tracklet it
    took ``L`` from. Two tracklets of one camera filled with one track in one
    frame (each continuing the track's rows elsewhere) would give the global id
    two rows there. The row nearer its source keeps the track (2D continuity
    weakens with every frame coasted on it); on a tie neither does. Returns
    the row indices to release.
    """
    other = other[L[other] >= 0]
    if other.size < 2:
        return other[:0]
    _, inv, cnt = np.unique(key[other] + L[other], return_inverse=True, return_counts=True)
    d = dist[other]
    best = np.full(cnt.size, np.iinfo(np.int64).max)
    np.minimum.at(best, inv, d)
    at_best = d == best[inv]
    unique_best = np.bincount(inv[at_best], minlength=cnt.size)[inv] == 1
    return other[(cnt[inv] > 1) & ~(at_best & unique_best)]


def pieces_table(tracklets: pd.DataFrame, idx: TrackletIndex, piece: np.ndarray
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """TRACKLET2D rows with one track id per piece and the parent (original) track id of each piece.

    The first piece of a tracklet keeps its id; later pieces get new ids per
    camera (max id + 1, + 2, ... in tracklet order). Returns the new table (in
    ``idx`` row order) and ``(n_pieces,)`` int64 parent track ids.
    """
    src = tracklets.iloc[idx.source_row].reset_index(drop=True)
    cam = idx.keys["camera_id"].to_numpy()[idx.tk]
    old = idx.keys["track_id"].to_numpy()[idx.tk]
    n_p = int(piece.max()) + 1 if len(piece) else 0
    first_row = np.full(n_p, len(piece))
    np.minimum.at(first_row, piece, np.arange(len(piece)))
    p_cam = cam[first_row]
    p_old = old[first_row]
    p_tk = idx.tk[first_row]
    is_first = np.r_[True, p_tk[1:] != p_tk[:-1]] if n_p else np.zeros(0, bool)
    new_id = p_old.copy()
    base = pd.Series(old).groupby(cam).max()
    extra = ~is_first
    if extra.any():
        cnt = pd.Series(np.ones(extra.sum(), np.int64)).groupby(p_cam[extra]).cumsum().to_numpy()
        new_id[extra] = base.reindex(p_cam[extra]).to_numpy(np.int64) + cnt
    out = src.assign(track_id=new_id[piece])
    return out, p_old
