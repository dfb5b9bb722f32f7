"""Ground-plane association and camera handoff (issue 8, items 2 and 3).

Used instead of the ray-based association (:mod:`mctrack.associate`) when
``ground.enabled`` is set, or when the cameras have ground homographies but no
full calibration. Every tracklet row has a ground position (m, from its foot
point, :mod:`mctrack.ground`); then either (``ground.method: kalman``, the
default, :func:`track_ground`) one constant-velocity Kalman filter per target on
the floor is fed frame by frame by every camera's rows — identity follows
ground motion, tracklets are split where they change ground track, and a track
continuing into another camera is the handoff — or (``ground.method:
tracklets``, :func:`associate_ground`) whole tracklets are grouped:

1. **Overlap links**: every pair of tracklets of two cameras that share
   frames is scored by the median ground distance over their shared detected
   frames; pairs with at least ``min_shared`` shared frames and a median
   within ``gate`` m are candidate links.
2. **Grouping**: candidate links are merged greedily, closest first
   (union–find), never joining two tracklets of one camera that are alive in
   the same frame (hard cannot-link).
3. **Handoff**: the groups' ground tracks are linked end → start across time:
   a group ending at frame ``e`` (position ``p``, velocity ``v`` fitted over its
   last second) continues a group starting at ``s`` with
   ``1 <= s - e <= max_gap_frames`` when the start lies within
   ``gate + gate_growth · (s - e)/fps`` m of the prediction ``p + v (s - e)/fps``;
   one-to-one by ``scipy.optimize.linear_sum_assignment`` on that distance.
   Linked groups share a global id.

:func:`handoff_events` turns any (camera, global id, frame) observations into
handoff events — used on the result and, with the simulator's target ids, on
the ground truth.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..calibration import border_cut
from ..errors import InputError
from ..ground import FOOT_POINTS, GroundMap, ground_positions
from ..tables import ASSOCIATION, PAIR_EVIDENCE, POINTS3D, TRACKLET2D

__all__ = ["GroundConfig", "associate_ground", "track_ground", "ground_points", "handoff_events", "merged_box_members",
           "fragment_rows", "weak_rows", "merged_parts",
           "HANDOFF_COLUMNS"]

log = logging.getLogger("mctrack.associate.ground")

#: columns of a handoff event table (``/handoffs`` in the session HDF5)
HANDOFF_COLUMNS = ("frame", "global_id", "from_camera", "to_camera", "gap_frames")


@dataclass
class GroundConfig:
    """Settings of the ground-plane mode (config section ``ground``).

    ``enabled`` (bool|"auto"): use ground association (auto = when cameras have
    homographies but no full calibration); ``foot_point``: one of
    :data:`mctrack.ground.FOOT_POINTS`; ``foot_offset`` (m, >= 0): distance
    from the box bottom (the footprint's nearest point) to the footprint
    centre, see :func:`mctrack.ground.ground_positions`; ``gate`` (m): largest median ground
    distance of two cameras' tracklets of one target; ``min_shared``
    (frames): shared detected frames needed to link two cameras' tracklets;
    ``max_gap_frames``: longest handoff gap; ``gate_growth`` (m/s): growth of
    the handoff gate with the gap (uncertainty of the constant-velocity
    prediction); ``ransac_threshold`` (m): homography RANSAC threshold;
    ``min_absence`` (frames): a target must have been out of a camera's view
    this long for its reappearance to count as a new handoff;
    ``handoff_min_outside`` (frames, 0 = off): with ground positions and
    image sizes, a run counts as a handoff only if the target's ground
    position was outside the camera's view this many consecutive frames
    before it (:func:`handoff_events`): a break inside a view is no exit;
    ``handoff_min_visible`` (0..1, 0 = off): a detected row counts as the
    target being in a camera's view (for handoff events) only when its
    estimated visible fraction (:func:`visible_fraction`) is at least this;
    0.25 is the simulator's ground-truth rule (MOT ``conf = 0`` below 0.25 visibility).
    ``method``: ``"kalman"`` (:func:`track_ground`: one constant-velocity
    Kalman filter per target on the ground plane fed by every camera's
    detected rows, so identity survives 2D tracker switches, merges and gaps
    between views) or ``"tracklets"`` (:func:`associate_ground`: whole 2D
    tracklets grouped by median ground distance, then end → start handoff
    links). Kalman settings: ``acceleration_std`` (m/s², white-noise
    acceleration of a walker), ``position_sigma`` (m, foot-point model error
    per axis, added in quadrature to ``pixel_sigma`` px of foot-point noise
    propagated through the homography), ``n_init`` (detected frames before a
    ground track is confirmed; rows of never-confirmed tracks are clutter),
    ``min_view_support`` (0..1, 0 = off): a ground track observed in fewer than
    this fraction of the camera-frames whose view holds it is clutter
    (:func:`_drop_unseen_tracks`); ``max_ground_width`` (m, 0 = off): a
    detected row whose box bottom edge spans more floor than this
    (:func:`box_ground_width`) is a merged blob of several targets and no
    observation (it follows its tracklet like a coasted row);
    ``min_ground_width`` (m, 0 = off): a detected row whose box bottom edge
    spans less floor than this and does not touch the image's left or right
    border is a fragment (a limb, a static ghost of the background model: no
    whole upright target is that narrow) and no observation
    (:func:`fragment_rows`). ``split_merged`` (bool, off): with
    ``max_ground_width``, a merged box is cut along its bottom edge into
    one part per expected target (:func:`merged_parts`) whose foot points
    update the Kalman tracks (never start one); off by default: on the
    floor scene's seeds 0, 2, 3, 4, 5 it changed ground IDF1 by −0.08,
    +0.11, −0.08, +0.05, −0.03 (no consistent gain).
    ``appearance_weight`` (>= 0, 0 = off): weight of the appearance term of the
    Kalman matching cost when the rows carry chromaticity (``chroma_r,
    chroma_g``): ``w · (min(Δ²/σ_c², 9) − 2)``, Δ the distance between the row and
    the track's running mean (last ~20 rows) *in the row's camera*, σ_c that
    camera's spread (:data:`_APP_SCALE` × :func:`mctrack.associate.frames.appearance_sigma`),
    as in the 3D frame association but centred on a true match's mean (−2) so
    tracks without history in that camera compete fairly; used once the track
    has 3 rows there; it only ranks candidates inside the geometric gate.
    ``handoff_appearance_weight`` (>= 0, 0 = off): the same for a track seen in
    fewer than 3 rows of the row's camera (a handoff into that camera) against
    its running mean over all cameras, both as per-camera z-scores
    (:func:`_appearance_zscores`), σ = :data:`_Z_SIGMA`, same form; cameras'
    white balance and lighting differ, so raw chromaticity is never compared
    across cameras.
    """

    enabled: bool | str = "auto"
    foot_point: str = "bottom_center"
    foot_offset: float = 0.0
    gate: float = 1.0
    min_shared: int = 5
    max_gap_frames: int = 90
    gate_growth: float = 1.0
    ransac_threshold: float = 0.1
    min_absence: int = 15
    method: str = "kalman"
    acceleration_std: float = 2.0
    position_sigma: float = 0.2
    pixel_sigma: float = 2.0
    n_init: int = 5
    min_view_support: float = 0.6
    max_ground_width: float = 0.0
    min_ground_width: float = 0.0
    split_merged: bool = False
    appearance_weight: float = 1.0
    handoff_appearance_weight: float = 0.0
    handoff_min_outside: int = 5
    handoff_min_visible: float = 0.25

    def __post_init__(self):
        if self.foot_point not in FOOT_POINTS:
            raise InputError(None, "ground.foot_point", f"unknown foot point {self.foot_point!r}",
                             f"use one of {FOOT_POINTS}")
        if not float(self.foot_offset) >= 0:
            raise InputError(None, "ground.foot_offset", "must be >= 0", "use the footprint radius in m, or 0")
        for key in ("gate", "gate_growth", "ransac_threshold"):
            if not float(getattr(self, key)) > 0:
                raise InputError(None, f"ground.{key}", "must be > 0", "use a positive distance")
        if self.method not in ("kalman", "tracklets"):
            raise InputError(None, "ground.method", f"unknown method {self.method!r}", "use kalman or tracklets")
        for key in ("acceleration_std", "position_sigma", "pixel_sigma"):
            if not float(getattr(self, key)) > 0:
                raise InputError(None, f"ground.{key}", "must be > 0", "use a positive value")
        if not 0 <= float(self.min_view_support) < 1:
            raise InputError(None, "ground.min_view_support", "must be in [0, 1)", "e.g. 0.5, or 0 to keep all tracks")
        for key in ("appearance_weight", "handoff_appearance_weight"):
            if not float(getattr(self, key)) >= 0:
                raise InputError(None, f"ground.{key}", "must be >= 0", "use a non-negative weight, 0 = off")
        if not float(self.max_ground_width) >= 0:
            raise InputError(None, "ground.max_ground_width", "must be >= 0", "e.g. 1.2 (m) for people, 0 = off")
        if not 0 <= float(self.min_ground_width) < (float(self.max_ground_width) or np.inf):
            raise InputError(None, "ground.min_ground_width", "must be >= 0 and below max_ground_width",
                             "e.g. 0.3 (m) for people, 0 = off")
        if not 0 <= float(self.handoff_min_visible) < 1:
            raise InputError(None, "ground.handoff_min_visible", "must be in [0, 1)", "e.g. 0.25, or 0 = off")
        if int(self.n_init) < 1:
            raise InputError(None, "ground.n_init", "must be >= 1", "use a frame count")
        for key in ("min_shared", "max_gap_frames", "min_absence", "handoff_min_outside"):
            if int(getattr(self, key)) < 0:
                raise InputError(None, f"ground.{key}", "must be >= 0", "use a frame count")

    @classmethod
    def from_dict(cls, d: dict | None) -> "GroundConfig":
        """Build from the ``ground`` config mapping; raises InputError naming an unknown key."""
        d = dict(d or {})
        known = [f.name for f in fields(cls)]
        for k in d:
            if k not in known:
                raise InputError(None, f"ground.{k}", "unknown setting", f"use one of {known}")
        return cls(**d)


class _Groups:
    """Union–find over tracklets with per-group (camera, first, last) intervals for the cannot-link check."""

    def __init__(self, cams: np.ndarray, first: np.ndarray, last: np.ndarray):
        self.parent = np.arange(len(cams))
        self.members = {i: [i] for i in range(len(cams))}
        self.cams, self.first, self.last = cams, first, last

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return int(i)

    def can_join(self, a: int, b: int) -> bool:
        ma, mb = self.members[a], self.members[b]
        for i in ma:
            for j in mb:
                if self.cams[i] == self.cams[j] and self.first[i] <= self.last[j] and self.first[j] <= self.last[i]:
                    return False
        return True

    def union(self, a: int, b: int) -> None:
        self.parent[b] = a
        self.members[a] += self.members.pop(b)


def _track_table(tr: pd.DataFrame) -> pd.DataFrame:
    return tr.groupby(["camera_id", "track_id"], sort=True).agg(first=("frame", "min"), last=("frame", "max"),
                                                                n_frames=("frame", "size")).reset_index()


def _overlap_links(tr: pd.DataFrame, key: np.ndarray, gxy: np.ndarray, cfg: GroundConfig) -> pd.DataFrame:
    """Median ground distance of every overlapping pair of tracklets of two cameras (detected rows)."""
    det = tr["frame_status"].astype(str).to_numpy() == "detected"
    ok = det & np.isfinite(gxy).all(axis=1)
    rows = pd.DataFrame({"frame": tr["frame"].to_numpy()[ok], "cam": tr["camera_id"].astype(str).to_numpy()[ok],
                         "k": key[ok], "x": gxy[ok, 0], "y": gxy[ok, 1]})
    m = rows.merge(rows, on="frame", suffixes=("_a", "_b"))
    m = m[m["cam_a"] < m["cam_b"]]
    if m.empty:
        return pd.DataFrame(columns=["a", "b", "n_shared", "median_distance"])
    m = m.assign(d=np.hypot(m["x_a"] - m["x_b"], m["y_a"] - m["y_b"]))
    g = m.groupby(["k_a", "k_b"])["d"].agg(["size", "median"]).reset_index()
    g.columns = ["a", "b", "n_shared", "median_distance"]
    return g


def _group_tracks(rows: pd.DataFrame, fps: float, tail_frames: int) -> pd.DataFrame:
    """Per group: first/last frame, start/end positions and end velocity (m/s) from a line fit over the tail."""
    out = []
    for gid, g in rows.groupby("gid", sort=True):
        per = g.groupby("frame")[["x", "y"]].mean()
        f = per.index.to_numpy()
        xy = per.to_numpy()
        tail = f >= f[-1] - tail_frames
        if tail.sum() >= 3 and np.ptp(f[tail]) > 0:
            A = np.c_[f[tail] - f[-1], np.ones(tail.sum())]
            coef = np.linalg.lstsq(A, xy[tail], rcond=None)[0]
            v, end = coef[0] * fps, coef[1]
        else:
            v, end = np.zeros(2), xy[-1]
        head = f <= f[0] + tail_frames
        start = np.median(xy[head][: max(3, 1)], axis=0) if head.sum() else xy[0]
        out.append((gid, f[0], f[-1], *start, *end, *v))
    return pd.DataFrame(out, columns=["gid", "first", "last", "sx", "sy", "ex", "ey", "vx", "vy"])


def associate_ground(tracklets: pd.DataFrame, maps: dict[str, GroundMap], cfg: GroundConfig | None = None,
                     fps: float = 30.0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Associate tracklets of all cameras by ground distance, then link handoffs across time.

    Parameters
    ----------
    tracklets : TRACKLET2D DataFrame (all cameras and chunks of a session).
    maps : camera name → :class:`~mctrack.ground.GroundMap`; tracklets of cameras
        without a map keep their own global id.
    cfg : :class:`GroundConfig`.
    fps : frame rate (Hz) for the handoff velocity gate.

    Returns
    -------
    association : ASSOCIATION DataFrame (global ids 0..K−1 by decreasing number
        of detected rows; ``support`` = 1 − median distance / gate of the
        group's weakest overlap link, NaN for a group without overlap links).
    evidence : PAIR_EVIDENCE DataFrame of the scored overlap pairs
        (``median_distance`` in m, ``score``/``mean_evidence``/``support`` NaN).
    gxy : (len(tracklets), 2) float64 ground positions (m) of the rows.
    """
    cfg = cfg or GroundConfig()
    tr = tracklets.reset_index(drop=True)
    gxy = ground_positions(tr, maps, cfg.foot_point, cfg.foot_offset)
    tracks = _track_table(tr)
    if tracks.empty:
        return ASSOCIATION.empty(), PAIR_EVIDENCE.empty(), gxy
    idx = pd.MultiIndex.from_frame(tracks[["camera_id", "track_id"]])
    key = idx.get_indexer(pd.MultiIndex.from_arrays([tr["camera_id"].astype(str), tr["track_id"]]))
    cams = tracks["camera_id"].astype(str).to_numpy()
    first, last = tracks["first"].to_numpy(), tracks["last"].to_numpy()
    groups = _Groups(cams, first, last)

    links = _overlap_links(tr, key, gxy, cfg)
    cand = links[(links["n_shared"] >= cfg.min_shared) & (links["median_distance"] <= cfg.gate)]
    weakest = {}
    for a, b, d in cand.sort_values("median_distance")[["a", "b", "median_distance"]].itertuples(index=False):
        ra, rb = groups.find(int(a)), groups.find(int(b))
        if ra != rb and groups.can_join(ra, rb):
            groups.union(ra, rb)
            weakest[ra] = max(weakest.get(ra, 0.0), weakest.pop(rb, 0.0), float(d))
    n_overlap_groups = len(groups.members)

    # ---- handoff: link group ends to group starts across time
    roots = np.array([groups.find(i) for i in range(len(tracks))])
    ok = np.isfinite(gxy).all(axis=1) & (tr["frame_status"].astype(str).to_numpy() == "detected")
    rows = pd.DataFrame({"gid": roots[key[ok]], "frame": tr["frame"].to_numpy()[ok], "x": gxy[ok, 0],
                         "y": gxy[ok, 1]})
    n_handoff = 0
    if len(rows) and cfg.max_gap_frames > 0:
        gt = _group_tracks(rows, fps, tail_frames=int(round(fps)))
        gap = gt["first"].to_numpy()[None, :] - gt["last"].to_numpy()[:, None]  # (ends, starts)
        pred = gt[["ex", "ey"]].to_numpy()[:, None, :] + gt[["vx", "vy"]].to_numpy()[:, None, :] * (gap[..., None] / fps)
        dist = np.linalg.norm(pred - gt[["sx", "sy"]].to_numpy()[None, :, :], axis=-1)
        gate = cfg.gate + cfg.gate_growth * np.clip(gap, 0, None) / fps
        valid = (gap >= 1) & (gap <= cfg.max_gap_frames) & (dist <= gate)
        if valid.any():
            cost = np.where(valid, dist / gate, 1e6)
            r, c = linear_sum_assignment(cost)
            gids = gt["gid"].to_numpy()
            for i, j in sorted(zip(r, c), key=lambda p: cost[p[0], p[1]]):
                if not valid[i, j]:
                    continue
                ra, rb = groups.find(int(gids[i])), groups.find(int(gids[j]))
                if ra != rb and groups.can_join(ra, rb):
                    groups.union(ra, rb)
                    weakest[ra] = max(weakest.get(ra, 0.0), weakest.pop(rb, 0.0))
                    n_handoff += 1

    roots = np.array([groups.find(i) for i in range(len(tracks))])
    det_n = pd.Series(ok).groupby(key).sum().reindex(range(len(tracks)), fill_value=0).to_numpy()
    size = pd.Series(det_n).groupby(roots).transform("sum").to_numpy()
    order = pd.DataFrame({"root": roots, "size": size, "i": np.arange(len(tracks))})
    rank = order.groupby("root").agg(size=("size", "first"), i=("i", "min")).sort_values(["size", "i"],
                                                                                      ascending=[False, True])
    gid_of_root = dict(zip(rank.index, range(len(rank))))
    gid = np.array([gid_of_root[r] for r in roots], dtype=np.int64)
    n_cams = pd.Series(cams).groupby(gid).transform("nunique").to_numpy()
    support = np.array([1.0 - weakest[r] / cfg.gate if r in weakest and weakest[r] > 0 else np.nan for r in roots])
    association = pd.DataFrame({"camera_id": cams, "track_id": tracks["track_id"].to_numpy(), "global_id": gid,
                                "n_frames": tracks["n_frames"].to_numpy(), "n_linked_cameras": n_cams,
                                "support": support, "parent_track_id": tracks["track_id"].to_numpy()})
    linked = set(zip(cand["a"], cand["b"]))
    ev = pd.DataFrame({"camera_a": cams[links["a"].astype(int)], "track_a": tracks["track_id"].to_numpy()[links["a"].astype(int)],
                       "camera_b": cams[links["b"].astype(int)], "track_b": tracks["track_id"].to_numpy()[links["b"].astype(int)],
                       "n_shared": links["n_shared"].astype(np.int64), "n_votes": links["n_shared"].astype(np.int64),
                       "median_distance": links["median_distance"].astype(float),
                       "linked": [(a, b) in linked and gid[int(a)] == gid[int(b)] for a, b in zip(links["a"], links["b"])],
                       "score": np.nan, "mean_evidence": np.nan, "support": np.nan, "n_negative": 0})
    log.info("ground association: %d tracklets -> %d groups by overlap (gate %.2f m) -> %d global ids after %d "
             "handoff links (max gap %d frames)", len(tracks), n_overlap_groups, cfg.gate, len(rank), n_handoff,
             cfg.max_gap_frames)
    return ASSOCIATION.coerce(association), PAIR_EVIDENCE.coerce(ev), gxy


#: chi-square 2 dof, 99.7 %: Mahalanobis gate of a ground observation against a track's prediction
_CHI2_GATE = 11.62


#: Appearance in the ground Kalman tracker's matching cost (:func:`_kalman_tracks`).
#: ``_APP_SCALE``: σ of the within-camera term = this × :func:`mctrack.associate.frames.appearance_sigma`.
#: That normalised MAD describes the core of a target's row-to-row spread; the tail is heavy (partial
#: occlusion mixes two walkers' colours in one blob, pose): on the synthetic floor scene (seed 0) a row's
#: squared distance to its target's per-camera median is 0.2 σ² at the median, 2 σ² at P75, 22 σ² at P90
#: and 86 σ² at P95, while different walkers mostly lie 18-1800 σ² apart (two pairs of near-twins < 1 σ²).
#: Seed 0, IDF1 on ground positions by scale: 1: 0.62, 1.5: 0.76, 2: 0.75, 3: 0.74, 4: 0.75, 6: 0.75,
#: 10: 0.75 (0.68 without appearance): 4 = the middle of that plateau (log scale); seed 1 checks it.
_APP_SCALE = 4.0
#: ``_APP_CENTRE``: the term is ``w · (min(Δ²/σ², 9) − _APP_CENTRE)``, 2 = the mean of Δ²/σ² for a true
#: match (χ² with 2 dof), so a track without appearance history in the row's camera (term 0, e.g. a
#: new one or one just handed off) competes on equal terms with one whose history fits (measured with an
#: earlier σ estimate, scale 6: IDF1 0.744 centred vs 0.738 uncentred; on footage whose walkers changed
#: colour between cameras, 0.71 vs 0.65). With scale 1 (the 3D association's form) IDF1 fell to 0.62
#: (0.64 uncentred), below motion alone: true rows in the tail paid the full cap.
_APP_CENTRE = 2.0
#: z-score units: spread of one target's per-camera appearance z-score between cameras (cross-camera
#: appearance term of the handoff, :class:`GroundConfig` ``handoff_appearance_weight``)
_Z_SIGMA = 0.5


def _kalman_tracks(frame: np.ndarray, cam: np.ndarray, z: np.ndarray, r2: np.ndarray, prev: np.ndarray,
                   cfg: GroundConfig, fps: float, app: np.ndarray | None = None,
                   app_sig: np.ndarray | None = None, zapp: np.ndarray | None = None,
                   birth: np.ndarray | None = None) -> np.ndarray:
    """Ground track index ``(N,) int64`` of every observation (−1 = clutter) by a multi-camera Kalman tracker.

    ``frame`` (N,) int, ``cam`` (N,) int camera index, ``z`` (N, 2) m ground
    positions, ``r2`` (N,) m² per-axis observation variance, ``prev`` (N,) int
    the index of the same 2D tracklet's previous observation (−1 = none).
    Optional appearance: ``app`` (N, 2) chromaticity (NaN = none), ``app_sig``
    (C,) its per-camera spread, ``zapp`` (N, 2) per-camera z-scores
    (:func:`_appearance_zscores`); weights from ``cfg``. ``birth`` (N,) bool:
    observations that may start a track (default all; the parts of a split
    merged blob, :func:`merged_parts`, only update existing tracks).
    Observations must be sorted by frame. See :func:`track_ground`.
    """
    n_cams = int(cam.max()) + 1 if len(cam) else 1
    use_app = app is not None and app_sig is not None and cfg.appearance_weight > 0
    use_z = zapp is not None and cfg.handoff_appearance_weight > 0
    dt = 1.0 / fps
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    q = cfg.acceleration_std ** 2
    Q = q * np.block([[dt ** 4 / 4 * np.eye(2), dt ** 3 / 2 * np.eye(2)], [dt ** 3 / 2 * np.eye(2), dt ** 2 * np.eye(2)]])
    v0 = 1.5  # m/s: prior std of a new track's velocity (walking speed; Bohannon 1997: 1.2-1.5 m/s)
    cap = 4096
    s = np.zeros((cap, 4))
    P = np.zeros((cap, 4, 4))
    last = np.full(cap, -1, np.int64)      # frame of the last update
    hits = np.zeros(cap, np.int64)
    confirmed = np.zeros(cap, bool)
    alive = np.zeros(cap, bool)
    am = np.zeros((cap, n_cams, 2))   # per track and camera: running mean chromaticity of its rows
    an = np.zeros((cap, n_cams))      # ... and how many rows it holds (capped: a ~20-row memory)
    zm = np.zeros((cap, 2))           # per track: running mean per-camera z-score over all cameras
    zn = np.zeros(cap)
    n_tracks = 0
    out = np.full(len(frame), -1, np.int64)
    bounds = np.flatnonzero(np.r_[True, np.diff(frame) != 0, True])
    prev_frame = None
    for b0, b1 in zip(bounds[:-1], bounds[1:]):
        f = int(frame[b0])
        steps = 1 if prev_frame is None else f - prev_frame
        prev_frame = f
        # end tracks: confirmed ones unseen longer than the handoff gap, tentative ones after 2 missed frames
        miss = f - last[:n_tracks]
        alive[:n_tracks] &= np.where(confirmed[:n_tracks], miss <= cfg.max_gap_frames, miss <= 3)
        act = np.flatnonzero(alive[:n_tracks])
        for _ in range(steps):  # predict (frames without observations included)
            s[act] = s[act] @ F.T
            P[act] = F @ P[act] @ F.T + Q
        for c in np.unique(cam[b0:b1]):
            obs = b0 + np.flatnonzero(cam[b0:b1] == c)
            act = np.flatnonzero(alive[:n_tracks])
            if not len(act):
                continue
            S = P[act][:, :2, :2][:, None] + r2[obs][None, :, None, None] * np.eye(2)  # (K, M, 2, 2)
            y = z[obs][None] - s[act][:, None, :2]                                       # (K, M, 2)
            d2 = np.einsum("kmi,kmij,kmj->km", y, np.linalg.inv(S), y)
            ok = d2 <= _CHI2_GATE
            # the 2D tracker's identity is evidence too: its tracklet's last ground track is preferred
            same = (prev[obs] >= 0)[None] & (out[np.maximum(prev[obs], 0)][None] == act[:, None])
            cost = d2 - 4.0 * same + 2.0 * ~confirmed[act][:, None]
            if use_app:  # appearance within this camera: squared normalised distance to the track's mean, capped
                da = ((app[obs][None] - am[act, c][:, None]) ** 2).sum(-1) / (_APP_SCALE * app_sig[c]) ** 2    # (K, M)
                within = (an[act, c] >= 3)[:, None] & np.isfinite(da)
                cost = np.where(within, cost + cfg.appearance_weight * (np.minimum(da, 9.0) - _APP_CENTRE), cost)
            else:
                within = np.zeros_like(ok)
            if use_z:  # a track new to this camera (handoff): per-camera z-scores against its all-camera mean
                dz = ((zapp[obs][None] - zm[act][:, None]) ** 2).sum(-1) / _Z_SIGMA ** 2
                cross = ~within & (zn[act] >= 3)[:, None] & np.isfinite(dz)
                cost = np.where(cross, cost + cfg.handoff_appearance_weight * (np.minimum(dz, 9.0) - _APP_CENTRE), cost)
            r, k = linear_sum_assignment(np.where(ok, cost, 1e6))
            keep = ok[r, k]
            r, k = r[keep], k[keep]
            t, o = act[r], obs[k]
            Sm = P[t][:, :2, :2] + r2[o][:, None, None] * np.eye(2)
            K = P[t][:, :, :2] @ np.linalg.inv(Sm)                                       # (n, 4, 2)
            s[t] = s[t] + np.einsum("nij,nj->ni", K, z[o] - s[t][:, :2])
            P[t] = P[t] - K @ P[t][:, :2, :]
            out[o] = t
            last[t] = f
            hits[t] += 1
        # births: unassigned observations, cameras' observations of one target (within the gate) merged
        new = b0 + np.flatnonzero((out[b0:b1] < 0) & (True if birth is None else birth[b0:b1]))
        born: list[int] = []
        for o in new:
            near = [t for t in born if np.hypot(*(s[t, :2] - z[o])) <= cfg.gate]
            if near:
                t = near[0]
                s[t, :2] = (s[t, :2] + z[o]) / 2
            else:
                if n_tracks == cap:
                    cap *= 2
                    s, P = np.resize(s, (cap, 4)), np.resize(P, (cap, 4, 4))
                    last, hits = np.resize(last, cap), np.resize(hits, cap)
                    confirmed, alive = np.resize(confirmed, cap), np.resize(alive, cap)
                    am, an = np.resize(am, (cap, n_cams, 2)), np.resize(an, (cap, n_cams))
                    zm, zn = np.resize(zm, (cap, 2)), np.resize(zn, cap)
                t = n_tracks
                n_tracks += 1
                s[t] = [z[o, 0], z[o, 1], 0.0, 0.0]
                an[t], zn[t] = 0.0, 0.0
                P[t] = np.diag([r2[o], r2[o], v0 ** 2, v0 ** 2])
                hits[t] = 1
                confirmed[t] = False
                alive[t] = True
                last[t] = f
                born.append(t)
            out[o] = t
        if use_app or use_z:  # running means (memory of ~20 rows) of the observations just assigned
            o = b0 + np.flatnonzero(out[b0:b1] >= 0)
            t, c = out[o], cam[o]
            if use_app:
                fin = np.isfinite(app[o]).all(1)
                t_, c_ = t[fin], c[fin]
                n_ = np.minimum(an[t_, c_], 19.0)[:, None]
                am[t_, c_] = (am[t_, c_] * n_ + app[o[fin]]) / (n_ + 1)
                an[t_, c_] += 1
            if use_z:
                fin = np.isfinite(zapp[o]).all(1)
                t_ = t[fin]
                n_ = np.minimum(zn[t_], 49.0)[:, None]
                zm[t_] = (zm[t_] * n_ + zapp[o[fin]]) / (n_ + 1)
                zn[t_] += 1
        confirmed[:n_tracks] |= hits[:n_tracks] >= cfg.n_init
    good = confirmed[:n_tracks]
    return np.where(out >= 0, np.where(good[np.maximum(out, 0)], out, -1), -1)


def in_view(gm: GroundMap, xy: np.ndarray, margin: float = 0.02, below: bool = False) -> np.ndarray:
    """Whether ground points ``(N, 2)`` m are in a camera's view: ``(N,) bool``.

    True where the point maps to a pixel inside the image (``gm.size``, shrunk
    by ``margin`` of its width/height on every side) in front of the camera
    (the pixel maps back to the point). ``below``: points under the image's
    bottom edge (between the camera and the floor line the bottom edge sees,
    horizontally inside the image) count as in view too — an upright target
    standing there has its feet out of the image but its body in it. All
    False when the map has no image size. Occlusion is not considered.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if gm.size is None or not len(xy):
        return np.zeros(len(xy), bool)
    W, H = gm.size
    with np.errstate(invalid="ignore", divide="ignore"):
        uv = gm.to_image(xy)
        back = gm.to_ground(uv)
    inside = (uv[:, 0] >= margin * W) & (uv[:, 0] <= (1 - margin) * W) & (uv[:, 1] >= margin * H) & \
             ((uv[:, 1] <= (1 - margin) * H) | below)
    return inside & (np.linalg.norm(back - xy, axis=1) < 1e-3 * (1 + np.linalg.norm(xy, axis=1)))


def _drop_unseen_tracks(frame: np.ndarray, cam: np.ndarray, z: np.ndarray, label: np.ndarray,
                        maps: dict[str, GroundMap], min_support: float) -> np.ndarray:
    """Labels with ground tracks that the cameras viewing them mostly do not see set to −1 (clutter).

    Per ground track: ``possible`` = Σ over its frames of the cameras whose
    view holds its mean position (:func:`in_view`) plus any that observe it
    (cameras with no observation in the whole session do not count),
    ``observed`` = Σ of the cameras observing it. A track with
    ``observed / possible < min_support`` and at least 30 unobserved
    camera-frames is a single-view false positive (a background ghost, a
    blob fragment): a target standing in two cameras' views is detected by
    both most of the time. Single-camera sessions are never affected.
    """
    ok = label >= 0
    if not ok.any() or len(np.unique(cam[ok])) < 2:
        return label
    obs = pd.DataFrame({"t": label[ok], "frame": frame[ok], "cam": cam[ok], "x": z[ok, 0], "y": z[ok, 1]})
    per = obs.groupby(["t", "frame"]).agg(x=("x", "mean"), y=("y", "mean"), n_obs=("cam", "nunique")).reset_index()
    seen = obs.groupby(["t", "frame", "cam"]).size().rename("n").reset_index()
    xy = per[["x", "y"]].to_numpy()
    possible = np.zeros(len(per))
    key = pd.MultiIndex.from_frame(per[["t", "frame"]])
    for name, gm in maps.items():
        s = seen[seen["cam"] == name]
        if s.empty:  # a camera without any observation (no video content, failed detector) is no evidence
            continue
        observing = np.zeros(len(per), bool)
        observing[key.get_indexer(pd.MultiIndex.from_frame(s[["t", "frame"]]))] = True
        possible += in_view(gm, xy) | observing
    per = per.assign(possible=possible)
    tot = per.groupby("t")[["n_obs", "possible"]].sum()
    bad = tot.index[(tot["n_obs"] < min_support * tot["possible"]) & (tot["possible"] - tot["n_obs"] >= 30)]
    if len(bad):
        log.info("ground tracks %s dropped: seen in %s of the camera-frames whose view holds them", list(bad),
                 [f"{o:.0f}/{p:.0f}" for o, p in tot.loc[bad].to_numpy()])
    return np.where(np.isin(label, bad), -1, label)


def box_ground_width(tracklets: pd.DataFrame, maps: dict[str, GroundMap]) -> np.ndarray:
    """Floor width ``(N,) float64`` m spanned by each row's box bottom edge (``(x1, y2)`` to ``(x2, y2)``).

    NaN for cameras without a map or edges above the horizon. A single upright
    target's box spans about its footprint plus the perspective splay of its
    upper body (0.6–1.14 m, 5th–99th percentile, for the 0.5 m synthetic
    walkers of ``config/synthetic_ground.yaml``); much wider boxes hold several
    targets.
    """
    out = np.full(len(tracklets), np.nan)
    cams = tracklets["camera_id"].astype(str).to_numpy()
    for name, gm in maps.items():
        sel = cams == name
        if sel.any():
            a = gm.to_ground(tracklets.loc[sel, ["x1", "y2"]].to_numpy(np.float64))
            b = gm.to_ground(tracklets.loc[sel, ["x2", "y2"]].to_numpy(np.float64))
            out[sel] = np.linalg.norm(a - b, axis=1)
    return out


def merged_parts(rows: pd.DataFrame, maps: dict[str, GroundMap], cfg: GroundConfig) -> pd.DataFrame:
    """Ground positions of the targets side by side in merged boxes: ``frame, camera_id, x, y, r2``.

    ``rows``: detected boxes wider on the floor than ``cfg.max_ground_width``
    (:func:`box_ground_width`: several targets merged in one blob). A box
    whose bottom edge spans ``W`` m is cut into ``k = clip(round(W / w1), 2,
    4)`` equal parts along that edge, ``w1 = 0.6 · max_ground_width`` the
    typical single-target width (for people, 1.2 m → 0.72 m, the median
    single-walker box width on the synthetic floor scene); each part's
    foot point (bottom centre) is mapped like a box's
    (:func:`mctrack.ground.ground_positions`, ``cfg.foot_point``,
    ``cfg.foot_offset``). Exact for targets side by side at one depth; a
    target behind another gets the nearer one's box bottom, too near the
    camera, so the per-axis variance ``r2`` (m²) is the usual one
    (``position_sigma``, ``pixel_sigma``) plus the square of half a part's
    floor width. Returns an empty frame for no rows.
    """
    from ..ground import ground_std

    cols = ["frame", "camera_id", "x", "y", "r2"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    w = box_ground_width(rows, maps)
    k = np.clip(np.rint(np.nan_to_num(w) / (0.6 * cfg.max_ground_width)), 2, 4).astype(int)
    rep = rows.loc[rows.index.repeat(k)].reset_index(drop=True)
    j = np.concatenate([np.arange(n) for n in k])
    kk = np.repeat(k, k)
    x1, x2 = rep["x1"].to_numpy(np.float64), rep["x2"].to_numpy(np.float64)
    step = (x2 - x1) / kk
    rep = rep.assign(x1=x1 + j * step, x2=x1 + (j + 1) * step)
    xy = ground_positions(rep, maps, cfg.foot_point, cfg.foot_offset)
    r2 = cfg.position_sigma ** 2 + np.nan_to_num(ground_std(rep, maps, cfg.foot_point, cfg.pixel_sigma), nan=1.0) ** 2 \
        + (np.repeat(w, k) / kk / 2) ** 2
    out = pd.DataFrame({"frame": rep["frame"].to_numpy(), "camera_id": rep["camera_id"].astype(str).to_numpy(),
                        "x": xy[:, 0], "y": xy[:, 1], "r2": r2})
    return out[np.isfinite(out[["x", "y", "r2"]]).all(axis=1)].reset_index(drop=True)


def fragment_rows(tracklets: pd.DataFrame, maps: dict[str, GroundMap], min_width: float,
                  width: np.ndarray | None = None) -> np.ndarray:
    """``(N,) bool``: rows whose box bottom edge spans less than ``min_width`` m of floor (:func:`box_ground_width`).

    Boxes touching the image's left or right border (within 1 px; image size
    ``maps[camera].size``) are cut off by it and never count as fragments;
    with an unknown image size every box is judged. Rows without a ground
    width (no map, edge above the horizon) are False. On the synthetic floor
    scene (0.5 m walkers) boxes of whole walkers inside the image span at
    least 0.31 m (0.5 % quantile 0.31, 1 % 0.55; seed 0), the static ghosts of one
    camera 0.14 m. ``width``: the rows' :func:`box_ground_width` if the caller has it.
    """
    w = box_ground_width(tracklets, maps) if width is None else width
    sizes = {name: gm.size for name, gm in maps.items() if gm.size is not None}
    wh = np.array([sizes.get(c, (np.inf, np.inf)) for c in tracklets["camera_id"].astype(str)], np.float64)
    cut = border_cut(*(tracklets[k].to_numpy() for k in ("x1", "y1", "x2", "y2")), wh, 1.0, 1.0)[:, 0]
    return (w < min_width) & ~cut


def weak_rows(tracklets: pd.DataFrame, maps: dict[str, GroundMap], cfg: GroundConfig) -> np.ndarray:
    """``(N,) bool``: rows that are no clean observation of one target.

    Boxes spanning more floor than ``cfg.max_ground_width`` (merged blobs of
    several targets: their bottom centre lies between them,
    :func:`box_ground_width`) or, with ``cfg.min_ground_width``, less
    (fragments, :func:`fragment_rows`); each test off at 0. Used by
    :func:`track_ground` (no observation) and :func:`ground_points` (used only
    where no clean row of the target exists).
    """
    weak = np.zeros(len(tracklets), bool)
    if not (cfg.max_ground_width > 0 or cfg.min_ground_width > 0):
        return weak
    w = box_ground_width(tracklets, maps)
    if cfg.max_ground_width > 0:
        weak |= w > cfg.max_ground_width
    if cfg.min_ground_width > 0:
        weak |= fragment_rows(tracklets, maps, cfg.min_ground_width, w)
    return weak


def _appearance_zscores(app: np.ndarray, cam: np.ndarray, tk: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per-camera z-scores ``(N, 2) float64`` of row chromaticities ``app`` (N, 2) against that camera's targets.

    Per camera, the population is the per-tracklet median chromaticity of the
    tracklets (``tk`` (N,) int) with at least 5 usable rows (``ok`` (N,) bool:
    detected, finite); ``z = (a − median of the population) / its standard
    deviation`` per component (floor 1e-3). A camera's white balance and
    lighting shift and scale every target's chromaticity alike, so z-scores of
    one target agree better across cameras than raw chromaticities (measured in
    ``benchmarks/ground_accuracy.py``, ``appearance``). NaN for rows of cameras
    with fewer than 3 such tracklets and rows without appearance.
    """
    out = np.full(app.shape, np.nan)
    sel = ok & np.isfinite(app).all(1)
    if not sel.any():
        return out
    d = pd.DataFrame({"cam": cam[sel], "tk": tk[sel], "r": app[sel, 0], "g": app[sel, 1]})
    per = d.groupby(["cam", "tk"]).agg(r=("r", "median"), g=("g", "median"), n=("r", "size")).reset_index()
    per = per[per["n"] >= 5]
    stats = per.groupby("cam").agg(mr=("r", "median"), mg=("g", "median"), sr=("r", "std"), sg=("g", "std"),
                                   k=("r", "size"))
    stats = stats[stats["k"] >= 3]
    rows = stats.reindex(cam)
    mu = rows[["mr", "mg"]].to_numpy(np.float64)
    sd = np.maximum(rows[["sr", "sg"]].to_numpy(np.float64), 1e-3)
    return (app - mu) / sd


def _row_appearance(tr: pd.DataFrame, det: np.ndarray, cam_names: np.ndarray, ucam: np.ndarray):
    """Rows' chromaticity ``(N, 2)``, per-camera spread ``(len(ucam),)`` and per-camera z-scores ``(N, 2)``.

    ``(None, None, None)`` when the rows carry no chromaticity (grey video, detectors without it). The spread
    is :func:`mctrack.associate.frames.appearance_sigma_rows` over the detected rows' 2D tracklets.
    """
    from .frames import appearance_sigma_rows

    if not {"chroma_r", "chroma_g"} <= set(tr.columns):
        return None, None, None
    app = tr[["chroma_r", "chroma_g"]].to_numpy(np.float64)
    ok = det & np.isfinite(app).all(1)
    if not ok.any():
        return None, None, None
    keys = pd.MultiIndex.from_arrays([cam_names, tr["track_id"].to_numpy()])
    tk, uniq = pd.factorize(keys)
    cam_i = pd.Index(ucam).get_indexer(cam_names)
    key_cam = pd.Index(ucam).get_indexer(uniq.get_level_values(0))
    sig = appearance_sigma_rows(tk, key_cam[tk], app, ok, len(ucam))
    return app, sig, _appearance_zscores(app, cam_i, tk, ok)


def track_ground(tracklets: pd.DataFrame, maps: dict[str, GroundMap], cfg: GroundConfig | None = None,
                 fps: float = 30.0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Ground-plane association by one Kalman filter per target, fed by every camera (``ground.method: kalman``).

    Every detected TRACKLET2D row with a ground position is an observation
    ``z`` (m, :func:`mctrack.ground.ground_positions`) with per-axis variance
    ``position_sigma² + ground_std(pixel_sigma)²`` (foot-point model error plus
    pixel noise propagated through the homography; grows with distance). Frame
    by frame, every ground track (state ``x, y, vx, vy``, constant velocity,
    white-noise acceleration ``acceleration_std``; Bar-Shalom, Li &
    Kirubarajan, *Estimation with Applications to Tracking*, §6.3.2) is
    predicted; then per camera its observations are assigned one-to-one to the
    tracks (Hungarian on the squared Mahalanobis distance, gate χ²₂ 99.7 %; a
    row whose 2D tracklet fed a track in its previous row gets a bonus of 4 on
    that track — unless a weak row (:func:`weak_rows`: merged blob, fragment) of
    that tracklet lies between them: inside a merged blob the 2D tracker may
    have swapped targets —, tentative tracks a penalty of 2; rows with chromaticity
    ``chroma_r, chroma_g`` add the appearance term of
    :class:`GroundConfig` ``appearance_weight`` / ``handoff_appearance_weight``)
    and the matched tracks are updated. Unassigned observations start tentative tracks (observations of
    other cameras within ``gate`` m in that frame join them); ``n_init``
    updates confirm a track. A confirmed track coasts up to
    ``max_gap_frames`` without observations (a target between views): the
    prediction's growing covariance is the handoff gate, and the track
    continuing in another camera *is* the handoff. Identity is thus carried by
    ground motion through 2D tracker switches and blob merges.

    Returns
    -------
    tracklets : TRACKLET2D rows split where a 2D tracklet changes ground track
        (its first segment keeps the 2D tracker's id, later ones get new ids above
        the camera's largest; ``parent_track_id`` in the association keeps the
        2D tracker's id). Detected rows of no
        confirmed track (clutter: background ghosts, fragments) are dropped,
        coasted rows follow the segment before them (or after, at the start).
    association : ASSOCIATION table (global ids 0..K−1 by decreasing number of
        detected rows; ``support`` NaN).
    evidence : PAIR_EVIDENCE of the overlapping segment pairs (median ground distance).
    gxy : (len(tracklets_out), 2) float64 ground positions (m) of the returned rows.
    """
    from ..ground import ground_std

    cfg = cfg or GroundConfig()
    tr = tracklets.reset_index(drop=True)
    gxy = ground_positions(tr, maps, cfg.foot_point, cfg.foot_offset)
    gstd = ground_std(tr, maps, cfg.foot_point, cfg.pixel_sigma)
    det = (tr["frame_status"].astype(str).to_numpy() == "detected") & np.isfinite(gxy).all(axis=1)
    cam_names = tr["camera_id"].astype(str).to_numpy()
    weak = weak_rows(tr, maps, cfg)  # merged blobs, fragments
    # a 2D tracklet leaving a merged blob may have swapped targets inside it: its first row after a weak
    # row gets no continuity preference (seeds 0, 2, 3, 5 with min_ground_width 0.3: IDF1 +0.00, +0.08, 0, 0)
    srt = tr.assign(_w=weak & (tr["frame_status"].astype(str).to_numpy() == "detected")).sort_values(["camera_id", "track_id", "frame"])
    after_weak = srt.groupby(["camera_id", "track_id"])["_w"].shift(1, fill_value=False).reindex(tr.index).to_numpy(bool)
    det &= ~weak
    label = np.full(len(tr), -1, np.int64)
    if det.any():
        idx = np.flatnonzero(det)
        order = idx[np.lexsort((tr["track_id"].to_numpy()[idx], cam_names[idx], tr["frame"].to_numpy()[idx]))]
        ucam, cam_i = np.unique(cam_names[order], return_inverse=True)
        key = pd.Series(list(zip(cam_names[order], tr["track_id"].to_numpy()[order])))
        pos = pd.Series(np.arange(len(order)))
        prev = pos.groupby(key.to_numpy()).shift(1).fillna(-1).astype(np.int64).to_numpy()
        prev[after_weak[order]] = -1
        r2 = cfg.position_sigma ** 2 + np.nan_to_num(gstd[order], nan=1.0) ** 2
        app, app_sig, zapp = _row_appearance(tr, det, cam_names, ucam)
        frame_o, z_o = tr["frame"].to_numpy()[order], gxy[order]
        app_o = None if app is None else app[order]
        zapp_o = None if zapp is None else zapp[order]
        parts = merged_parts(tr[weak & ~np.isnan(gxy[:, 0]) & (tr["frame_status"].astype(str).to_numpy() == "detected")],
                             maps, cfg) if cfg.split_merged and cfg.max_ground_width > 0 else None
        if parts is not None and len(parts):  # merged blobs' parts update tracks (no births), then are dropped
            parts = parts[np.isin(parts["camera_id"], ucam)]
            n0, n1 = len(order), len(parts)
            frame_a = np.r_[frame_o, parts["frame"].to_numpy()]
            cam_a = np.r_[cam_i, np.searchsorted(ucam, parts["camera_id"].to_numpy())]
            perm = np.lexsort((cam_a, frame_a))
            inv = np.empty_like(perm)
            inv[perm] = np.arange(len(perm))
            prev_a = np.r_[prev, np.full(n1, -1)]
            prev_a = np.where(prev_a >= 0, inv[np.maximum(prev_a, 0)], -1)[perm]
            pad = np.full((n1, 2), np.nan)
            lab = _kalman_tracks(frame_a[perm], cam_a[perm], np.r_[z_o, parts[["x", "y"]].to_numpy()][perm],
                                 np.r_[r2, parts["r2"].to_numpy()][perm], prev_a, cfg, fps,
                                 None if app_o is None else np.r_[app_o, pad][perm], app_sig,
                                 None if zapp_o is None else np.r_[zapp_o, pad][perm],
                                 birth=np.r_[np.ones(n0, bool), np.zeros(n1, bool)][perm])
            label[order] = lab[inv[:n0]]
        else:
            label[order] = _kalman_tracks(frame_o, cam_i, z_o, r2, prev, cfg, fps, app_o, app_sig, zapp_o)
        if cfg.min_view_support > 0:
            label[order] = _drop_unseen_tracks(tr["frame"].to_numpy()[order], cam_names[order], gxy[order],
                                               label[order], maps, cfg.min_view_support)
    # coasted rows (and nothing else) inherit their tracklet's neighbouring label
    lab = np.where(det, label.astype(np.float64), np.nan)  # -1 = clutter, NaN = coasted / no ground position
    srt = tr.assign(_lab=lab, _i=np.arange(len(tr))).sort_values(["camera_id", "track_id", "frame"])
    filled = srt.groupby(["camera_id", "track_id"])["_lab"].transform(lambda x: x.ffill().bfill())
    lab_all = pd.Series(filled.to_numpy(), index=srt["_i"].to_numpy()).sort_index().to_numpy()
    keep = np.isfinite(lab_all) & (lab_all >= 0)
    out = tr[keep].reset_index(drop=True)
    g = lab_all[keep].astype(np.int64)
    gxy = gxy[keep]
    if out.empty:
        return TRACKLET2D.empty(), ASSOCIATION.empty(), PAIR_EVIDENCE.empty(), gxy
    # segments: runs of one (camera, 2D track id, ground track) in frame order -> new per-camera track ids
    o = out.assign(_g=g, _i=np.arange(len(out))).sort_values(["camera_id", "track_id", "frame"])
    brk = (o["_g"] != o["_g"].shift()) | (o["camera_id"] != o["camera_id"].shift()) | \
          (o["track_id"] != o["track_id"].shift())
    seg = brk.cumsum().to_numpy()
    o = o.assign(_seg=seg)
    # the first segment of a 2D tracklet keeps its id; later ones get new ids above the camera's largest
    first = (o["camera_id"] != o["camera_id"].shift()) | (o["track_id"] != o["track_id"].shift())
    later = brk & ~first
    extra = later.astype(np.int64).groupby(o["camera_id"]).cumsum()
    top = o.groupby("camera_id")["track_id"].transform("max")
    seg_id = np.where(later, top + extra, o["track_id"])
    o["_new"] = pd.Series(seg_id, index=o.index).groupby(seg).transform("first").astype(np.int64)
    o = o.sort_values("_i")
    parent = out["track_id"].to_numpy()
    out["track_id"] = o["_new"].to_numpy()
    segs = o.drop_duplicates(["camera_id", "_new"])
    tracks = out.groupby(["camera_id", "track_id"], sort=True).agg(
        n_frames=("frame", "size")).reset_index()
    seg_info = segs.set_index(["camera_id", "_new"])
    mi = pd.MultiIndex.from_frame(tracks[["camera_id", "track_id"]])
    gtrack = seg_info["_g"].reindex(mi).to_numpy()
    parent_tid = pd.Series(parent, index=pd.MultiIndex.from_arrays([out["camera_id"], out["track_id"]])
                           ).groupby(level=[0, 1]).first().reindex(mi).to_numpy()
    isdet = out["frame_status"].astype(str).to_numpy() == "detected"
    size = pd.Series(isdet.astype(int)).groupby(g).sum()
    rank = size.reset_index().set_axis(["g", "n"], axis=1).sort_values(["n", "g"], ascending=[False, True])
    gid = pd.Series(np.arange(len(rank)), index=rank["g"].to_numpy()).reindex(gtrack).to_numpy(np.int64)
    cams = tracks["camera_id"].astype(str).to_numpy()
    n_cams = pd.Series(cams).groupby(gid).transform("nunique").to_numpy()
    association = pd.DataFrame({"camera_id": cams, "track_id": tracks["track_id"].to_numpy(), "global_id": gid,
                                "n_frames": tracks["n_frames"].to_numpy(), "n_linked_cameras": n_cams,
                                "support": np.nan, "parent_track_id": parent_tid})
    key = mi.get_indexer(pd.MultiIndex.from_arrays([out["camera_id"].astype(str), out["track_id"]]))
    links = _overlap_links(out, key, gxy, cfg)
    a, b = links["a"].astype(int).to_numpy(), links["b"].astype(int).to_numpy()
    tid = tracks["track_id"].to_numpy()
    ev = pd.DataFrame({"camera_a": cams[a], "track_a": tid[a], "camera_b": cams[b], "track_b": tid[b],
                       "n_shared": links["n_shared"].astype(np.int64), "n_votes": links["n_shared"].astype(np.int64),
                       "median_distance": links["median_distance"].astype(float), "linked": gid[a] == gid[b],
                       "score": np.nan, "mean_evidence": np.nan, "support": np.nan, "n_negative": 0})
    log.info("ground Kalman tracking: %d detected rows -> %d ground tracks (%d clutter rows dropped); %d 2D "
             "tracklets -> %d segments", int(det.sum()), len(rank), int((det & ~keep).sum()),
             tr.groupby(["camera_id", "track_id"]).ngroups, len(tracks))
    return TRACKLET2D.coerce(out), ASSOCIATION.coerce(association), PAIR_EVIDENCE.coerce(ev), gxy



def ground_points(tracklets: pd.DataFrame, association: pd.DataFrame, gxy: np.ndarray,
                  gstd: np.ndarray | None = None, weak: np.ndarray | None = None) -> pd.DataFrame:
    """POINTS3D rows on the ground plane: per (frame, global id) the mean ground position of its cameras' rows.

    Detected rows are used where a (frame, global id) has any, else coasted
    ones; ``weak`` (``(N,) bool``, e.g. boxes wider than
    ``ground.max_ground_width`` on the floor: merged blobs) marks detected
    rows used only like coasted ones. ``z = 0``; ``n_cameras`` the rows averaged; ``std_x = std_y`` (m) the
    standard deviation of the mean: ``sqrt(Σ s_i² / n² + spread² / n)`` with
    ``s_i`` the rows' propagated pixel noise ``gstd`` (``(N,)`` m,
    :func:`mctrack.ground.ground_std`; 0 if not given) and ``spread`` the
    cameras' disagreement per axis (0 for one camera); ``std_z = 0``,
    ``position_std`` the RMS of ``std_x, std_y``; ``reprojection_error`` NaN (no reprojection in
    ground mode); ``confidence`` the mean detection confidence.
    """
    tr = tracklets.reset_index(drop=True)
    s2 = np.zeros(len(tr)) if gstd is None else np.nan_to_num(np.asarray(gstd, float)) ** 2
    strong = (tr["frame_status"].astype(str) == "detected").to_numpy()
    if weak is not None:
        strong &= ~np.asarray(weak, bool)
    m = tr[["camera_id", "track_id", "frame", "confidence"]].assign(
        camera_id=tr["camera_id"].astype(str), x=gxy[:, 0], y=gxy[:, 1], s2=s2, det=strong)
    m = m.merge(association[["camera_id", "track_id", "global_id"]].astype({"camera_id": str}),
                on=["camera_id", "track_id"], how="inner")
    m = m[np.isfinite(m["x"]) & np.isfinite(m["y"])]
    if m.empty:
        return POINTS3D.empty()
    best = m.groupby(["frame", "global_id"])["det"].transform("max")
    m = m[m["det"] == best]
    g = m.groupby(["frame", "global_id"])
    p = g.agg(x=("x", "mean"), y=("y", "mean"), sx=("x", "std"), sy=("y", "std"), s2=("s2", "sum"),
              n_cameras=("x", "size"), confidence=("confidence", "mean")).reset_index()
    n = p["n_cameras"].to_numpy(float)
    p["std_x"] = np.sqrt(p["s2"] / n ** 2 + p["sx"].fillna(0) ** 2 / n)
    p["std_y"] = np.sqrt(p["s2"] / n ** 2 + p["sy"].fillna(0) ** 2 / n)
    p["z"] = 0.0
    p["std_z"] = 0.0
    p["reprojection_error"] = np.nan
    p["position_std"] = np.sqrt((p["std_x"] ** 2 + p["std_y"] ** 2) / 2)
    return POINTS3D.coerce(p)


def _merge_runs_in_view(runs: pd.DataFrame, positions: pd.DataFrame, maps: dict[str, GroundMap],
                        min_outside: int) -> pd.DataFrame:
    """Runs (``camera_id, global_id, first, last``) with each run that is no view entry merged into the one before.

    A run is an entry (column ``entry``) when the target was outside its
    camera's view for ``min_outside`` consecutive frames (:func:`_left_view`)
    between the previous run's last frame there (for its first run there: the
    target's first observed frame in any camera) and its own first frame. A
    non-entry run extends the previous run in that camera; a first run in a
    camera that is no entry stays a run (an observation for later
    ``from_camera`` choices) but starts no handoff (the camera picked up a
    target already standing in its view).
    """
    streaks = _outside_streaks(positions, maps)
    first_seen = runs.groupby("global_id")["first"].min()
    runs = runs.sort_values(["global_id", "camera_id", "first"]).reset_index(drop=True)
    keep = []
    prev_key, cur = None, None
    for r in runs.itertuples(index=False):
        key = (r.global_id, r.camera_id)
        lo = cur[3] + 1 if key == prev_key else int(first_seen[r.global_id])
        is_entry = _left_view(streaks, r.camera_id, r.global_id, lo, r.first - 1, min_outside)
        if key == prev_key and not is_entry:
            cur[3] = max(cur[3], r.last)
            continue
        if cur is not None:
            keep.append(cur)
        cur = [r.camera_id, r.global_id, r.first, r.last, is_entry]
        prev_key = key
    keep.append(cur)
    return pd.DataFrame(keep, columns=["camera_id", "global_id", "first", "last", "entry"])


def _bodies_rise_into_view(gm: GroundMap) -> bool:
    """Whether an upright target standing under the image's bottom edge has its body in the image.

    True for an oblique camera: the image of the world's downward direction
    (the nadir vanishing point ``K · R · (0, 0, −1)``, world z up, floor z = 0)
    lies below the image, so vertical lines rise from the feet into the
    image. False for a camera looking steeply down (nadir inside or above the
    image: bodies lean outwards there). A map without a calibrated camera (a
    homography CSV) is assumed oblique (cameras on walls or poles).
    """
    cam, size = gm.camera, gm.size
    if cam is None or size is None:
        return True
    d = cam.R @ np.array([0.0, 0.0, -1.0])
    if d[2] <= 1e-9:  # the camera does not look down at all
        return True
    return bool((cam.K @ d)[1] / d[2] > size[1])


def _outside_streaks(positions: pd.DataFrame, maps: dict[str, GroundMap], margin: float = 0.0) -> dict:
    """Per camera, per global id: frames and the length of the out-of-view streak ending at each frame.

    ``positions``: ``global_id, frame, x, y`` (m, ground plane), several rows
    of one (global id, frame) averaged. Each global id's track is filled
    over every frame from its first to its last position by linear
    interpolation (a target seen by no camera is assumed to keep walking
    straight between its last and next positions). ``margin``: see
    :func:`in_view`; a position under the image's bottom edge counts as in
    view (``below``: the target's body is) when the camera looks obliquely
    (:func:`_bodies_rise_into_view`). Returns ``{camera: {global_id: (frames (F,) int64,
    streak (F,) int64)}}`` where ``streak[i]`` counts the consecutive frames
    up to ``frames[i]`` whose position is outside the camera's view (0 = in view).
    """
    p = positions.groupby(["global_id", "frame"], sort=True)[["x", "y"]].mean().reset_index()
    filled = []
    for gid, g in p.groupby("global_id", sort=False):
        f = g["frame"].to_numpy(np.int64)
        fr = np.arange(f[0], f[-1] + 1, dtype=np.int64)
        filled.append((gid, fr, np.column_stack([np.interp(fr, f, g["x"].to_numpy()),
                                                 np.interp(fr, f, g["y"].to_numpy())])))
    out = {}
    if not filled:
        return {name: {} for name in maps}
    xy = np.concatenate([q[2] for q in filled])
    bounds = np.cumsum([0] + [len(q[1]) for q in filled])
    for name, gm in maps.items():
        outside = ~in_view(gm, xy, margin, below=_bodies_rise_into_view(gm))
        # streak length ending at each frame: index minus the index of the last in-view frame
        idx = np.arange(len(xy))
        last_in = np.maximum.accumulate(np.where(outside, -1, idx))
        per = {}
        for k, (gid, fr, _) in enumerate(filled):
            a, b = bounds[k], bounds[k + 1]
            per[gid] = (fr, np.where(outside[a:b], idx[a:b] - np.maximum(last_in[a:b], a - 1), 0))
        out[name] = per
    return out


def _left_view(streaks: dict, camera: str, gid, lo: int, hi: int, min_outside: int) -> bool:
    """Whether global id ``gid`` was outside ``camera``'s view for ``min_outside`` consecutive frames in ``[lo, hi]``.

    ``streaks``: :func:`_outside_streaks`. Frames without a (filled) position
    count as outside (the target was seen by no camera there, before its
    first or after its last position), so a target with no position at all is
    always "outside".
    """
    if hi < lo:
        return False
    per = streaks.get(camera, {})
    if gid not in per:
        return True
    fr, st = per[gid]
    if lo < fr[0] and min(hi, fr[0] - 1) - lo + 1 >= min_outside:
        return True
    if hi > fr[-1] and hi - max(lo, fr[-1] + 1) + 1 >= min_outside:
        return True
    a, b = np.searchsorted(fr, lo), np.searchsorted(fr, hi, side="right")
    if b <= a:
        return False
    s = np.minimum(st[a:b], np.arange(1, b - a + 1))  # streaks started before lo count from lo
    return bool(s.max() >= min_outside)


def handoff_events(obs: pd.DataFrame, min_absence: int = 15, min_run: int = 10, positions: pd.DataFrame | None = None,
                   maps: dict[str, GroundMap] | None = None, min_outside: int = 0) -> pd.DataFrame:
    """Handoff events of targets observed by several cameras.

    ``obs``: one row per observation with columns ``camera_id``, ``global_id``,
    ``frame``. Per (camera, global id) the frames are split into *runs* where
    gaps exceed ``min_absence`` frames; runs shorter than ``min_run`` frames
    are dropped (a target grazing an image edge). Every run that starts after
    the target was already seen by *another* camera is a handoff: ``frame`` =
    the run's first frame, ``to_camera`` its camera, ``from_camera`` the other
    camera whose latest run (started before) was seen last (ties: the earlier
    start), ``gap_frames`` = frames between that camera's last observation and
    the run's start (0 when it still sees the target). The target's first
    appearance is not a handoff.

    Geometry (``positions``: ``global_id, frame, x, y`` m ground positions of
    the targets from all cameras, ``maps``: camera → ground map with image
    size, ``min_outside`` > 0 frames): a handoff is a target *entering* a
    view, so a run counts only when the target's ground position was outside
    that camera's view (:func:`in_view`, image bounds, no margin) for at least
    ``min_outside`` consecutive frames since its previous run there ended (or,
    for its first run there, since its first position): otherwise the break
    is an occlusion, a merged blob or missed detections while the target
    stood in the view, and the run continues the previous one (no event, and
    the continued run is not a handoff start later either). ``min_outside``
    is the hysteresis against positions flickering across a view's border.
    Positions are filled over frames without one by linear interpolation
    (:func:`_outside_streaks`). Without positions/maps or with
    ``min_outside`` = 0 every run counts (the observation-only definition).

    Returns a DataFrame with :data:`HANDOFF_COLUMNS`, sorted by frame, global id.
    """
    if obs.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(HANDOFF_COLUMNS, ("int64", "int64", str, str, "int64"))})
    o = obs[["camera_id", "global_id", "frame"]].astype({"camera_id": str}).drop_duplicates()
    o = o.sort_values(["global_id", "camera_id", "frame"])
    new = (o["frame"].diff() > min_absence) | (o["camera_id"] != o["camera_id"].shift()) | \
          (o["global_id"] != o["global_id"].shift())
    o = o.assign(run=new.cumsum())
    runs = o.groupby("run").agg(camera_id=("camera_id", "first"), global_id=("global_id", "first"),
                                first=("frame", "min"), last=("frame", "max"), n=("frame", "size")).reset_index()
    runs = runs[runs["last"] - runs["first"] + 1 >= min_run]
    if positions is not None and maps and min_outside > 0 and len(runs):
        runs = _merge_runs_in_view(runs, positions, maps, min_outside)
    events = []
    for gid, g in runs.groupby("global_id"):
        g = g.sort_values(["first", "camera_id"])
        f, last, c = g["first"].to_numpy(), g["last"].to_numpy(), g["camera_id"].to_numpy()
        entry = g["entry"].to_numpy() if "entry" in g else np.ones(len(g), bool)
        for i in range(1, len(g)):
            prev = (f < f[i]) & (c != c[i])
            if not entry[i] or not prev.any():
                continue
            seen = np.where(prev, np.minimum(last, f[i]), -1)
            j = int(np.argmax(seen))
            events.append((int(f[i]), int(gid), str(c[j]), str(c[i]), int(max(0, f[i] - last[j]))))
    ev = pd.DataFrame(events, columns=list(HANDOFF_COLUMNS))
    return ev.astype({"frame": "int64", "global_id": "int64", "gap_frames": "int64"}).sort_values(
        ["frame", "global_id"]).reset_index(drop=True)


def use_ground_mode(plan, cfg: GroundConfig) -> bool:
    """Whether a session runs in ground-plane mode (:func:`mctrack.config.ground_mode` of ``cfg.enabled``).

    ``cfg.enabled`` True/False decides; ``"auto"``: when at least one camera
    of ``plan`` (:class:`mctrack.config.SessionPlan`) names a homography CSV
    and the session is not calibrated (fewer than 2 calibrated cameras).
    """
    from ..config import ground_mode

    return ground_mode(plan, cfg.enabled)


def session_ground_maps(plan, cfg: GroundConfig, cameras: dict | None = None) -> dict[str, GroundMap]:
    """Camera name → :class:`~mctrack.ground.GroundMap` of a session.

    A camera's ``homography`` CSV wins (:func:`mctrack.ground.read_homography_csv`,
    its RMS error logged); otherwise a calibrated camera's map comes from the
    calibration and ``z = 0`` (:func:`mctrack.ground.homography_from_camera`;
    ``cameras`` as from :func:`mctrack.config.load_session_cameras`). Raises
    :class:`~mctrack.errors.InputError` when no camera has either.
    """
    from ..ground import homography_from_camera, read_homography_csv
    from ..video import video_info

    maps = {}
    for name, entry in plan.cameras.items():
        if entry.homography:
            maps[name] = read_homography_csv(entry.homography, cfg.ransac_threshold)
            if entry.video and os.path.exists(entry.video):
                info = video_info(entry.video)
                maps[name] = dataclasses.replace(maps[name], size=(info.width, info.height))
            log.info("camera %s: homography from %s, RMS ground error %.3f m over its point pairs", name,
                     entry.homography, maps[name].rms_error)
        elif cameras and name in cameras:
            maps[name] = homography_from_camera(cameras[name])
            log.info("camera %s: ground homography from the calibration (plane z = 0)", name)
    if not maps:
        raise InputError(None, f"session '{plan.session}'", "ground-plane mode but no camera has a homography "
                         "CSV or a calibration", "add a 'homography' column (CSV u,v,x,y) to the camera sheet")
    return maps


def merged_box_members(rows: pd.DataFrame, points: pd.DataFrame, maps: dict[str, GroundMap],
                       tolerance: float = 0.1) -> pd.DataFrame:
    """Which targets each box holds: ``(camera_id, global_id, frame)`` of every ground point inside a box.

    ``rows``: boxes (``camera_id, frame, x1, y1, x2, y2`` px), e.g. the detected
    rows wider than one target (merged blobs); ``points``: POINTS3D ground points (``frame, global_id, x,
    y`` m, from all cameras). A point is inside a box when its image
    (``maps[camera].to_image``, in front of the camera) lies within ``[x1,
    x2]`` and ``[y1, y2 + tolerance · (y2 − y1)]`` (the tolerance absorbs
    foot-point error; a footprint centre lies a little above the box bottom,
    the footprint's nearest point). A box wider than one target (a merged
    blob of targets overlapping in that camera) holds several. Returns a
    DataFrame with columns ``camera_id`` (str), ``global_id``, ``frame``
    (int64), one row per distinct triple.
    """
    out = []
    cams = rows["camera_id"].astype(str).to_numpy()
    for name, gm in maps.items():
        b = rows[cams == name]
        if b.empty:
            continue
        m = b[["frame", "x1", "y1", "x2", "y2"]].merge(points[["frame", "global_id", "x", "y"]], on="frame")
        if m.empty:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            xy = m[["x", "y"]].to_numpy(np.float64)
            uv = gm.to_image(xy)
            front = np.linalg.norm(gm.to_ground(uv) - xy, axis=1) < 1e-3 * (1 + np.linalg.norm(xy, axis=1))
        h = (m["y2"] - m["y1"]).to_numpy()
        inside = front & (uv[:, 0] >= m["x1"].to_numpy()) & (uv[:, 0] <= m["x2"].to_numpy()) & \
                 (uv[:, 1] >= m["y1"].to_numpy()) & (uv[:, 1] <= m["y2"].to_numpy() + tolerance * h)
        out.append(m.loc[inside, ["global_id", "frame"]].assign(camera_id=name))
    if not out:
        return pd.DataFrame({"camera_id": pd.Series(dtype=str), "global_id": pd.Series(dtype="int64"),
                             "frame": pd.Series(dtype="int64")})
    return pd.concat(out, ignore_index=True)[["camera_id", "global_id", "frame"]].drop_duplicates()


def visible_fraction(rows: pd.DataFrame, sizes: dict[str, tuple[int, int] | None], border: float = 2.0) -> np.ndarray:
    """Estimated visible fraction ``(N,) float64`` (0..1] of each row's target, from box sizes.

    ``rows``: TRACKLET2D-like rows (``camera_id, track_id, frame, x1, y1, x2,
    y2`` px); ``sizes``: camera → image ``(width, height)`` px (None/missing:
    every row of that camera is 1). A box more than ``border`` px from every
    image side holds the whole target (1.0). A box touching the left/right
    side is cut in width: ``fx`` = its width over the width of the same
    track's nearest (in frames) row not touching those sides; likewise ``fy``
    for the top/bottom sides and heights; when the track has no row uncut in
    height, the reference height is the reference width times the camera's
    median height/width of wholly uncut boxes (upright targets of one kind
    have one shape). Fraction = ``min(fx, 1) · min(fy, 1)``; 1 where nothing
    can be compared. A walker entering a view is first detected from a
    sliver of its body, up to a second before most of it is visible, and at
    about the same distance a few frames later, uncut. Visibility as in
    MOTChallenge ground truth and :mod:`mctrack.simulate_floor` (visible
    silhouette pixels / all silhouette pixels); occlusion by other targets is
    not estimated.
    """
    r = rows[["camera_id", "track_id", "frame", "x1", "y1", "x2", "y2"]].astype({"camera_id": str}).reset_index(drop=True)
    if r.empty:
        return np.ones(0)
    wh = np.array([sizes.get(c) or (np.inf, np.inf) for c in r["camera_id"]], dtype=np.float64)
    x1, y1, x2, y2 = (r[k].to_numpy(np.float64) for k in ("x1", "y1", "x2", "y2"))
    cut_x, cut_y = border_cut(x1, y1, x2, y2, wh, border, border).T
    if not (cut_x | cut_y).any():
        return np.ones(len(r))
    r = r.assign(w=np.clip(x2 - x1, 1e-6, None), h=np.clip(y2 - y1, 1e-6, None), idx=np.arange(len(r)),
                 key=r["camera_id"] + "/" + r["track_id"].astype(str))
    whole = ~cut_x & ~cut_y
    aspect = (r.loc[whole, "h"] / r.loc[whole, "w"]).groupby(r.loc[whole, "camera_id"]).median()

    def nearest(uncut: np.ndarray, col: str) -> np.ndarray:
        """Per row: ``col`` of the same track's nearest-in-frames row with ``uncut`` (NaN if none)."""
        ref = r.loc[uncut, ["key", "frame", col]].rename(columns={col: "ref"}).sort_values("frame")
        q = r[["key", "frame", "idx"]].sort_values("frame")
        m = pd.merge_asof(q, ref, on="frame", by="key", direction="nearest")
        out = np.full(len(r), np.nan)
        out[m["idx"].to_numpy()] = m["ref"].to_numpy()
        return out

    w_ref = nearest(~cut_x, "w")
    h_ref = nearest(~cut_y, "h")
    h_ref = np.where(np.isfinite(h_ref), h_ref,
                     np.where(np.isfinite(w_ref), w_ref, r["w"].to_numpy()) * r["camera_id"].map(aspect).to_numpy())
    fx = np.where(cut_x & np.isfinite(w_ref), np.minimum(r["w"].to_numpy() / w_ref, 1.0), 1.0)
    fy = np.where(cut_y & np.isfinite(h_ref), np.minimum(r["h"].to_numpy() / h_ref, 1.0), 1.0)
    return fx * fy


def session_handoffs(tracklets: pd.DataFrame, association: pd.DataFrame, cfg: GroundConfig,
                     maps: dict[str, GroundMap] | None = None, points: pd.DataFrame | None = None) -> pd.DataFrame:
    """Handoff events (:func:`handoff_events`) of the detected rows of associated tracklets.

    A target (global id) is observed by a camera in the frames of its own
    detected rows there. With ``maps`` and ``points`` (POINTS3D ground points
    of all cameras) and ``cfg.max_ground_width > 0``, a detected box spanning
    more floor than that (:func:`box_ground_width`: a blob of several targets
    merged in that camera) is also an observation of every target whose
    ground point lies inside it (:func:`merged_box_members`): a target hidden
    in a merged blob is still in that camera's view and detected, so it makes
    no break in its run there and no spurious handoff when it separates
    again (floor scene seed 0, same association: precision 0.28 → 0.41,
    recall 0.47 → 0.58; with ground-truth boxes, which never merge, nothing
    changes). Boxes of one target are not used so: a target behind another
    is occluded, and the ground truth counts it out of view.

    With ``maps`` and ``points``: rows whose estimated visible fraction
    (:func:`visible_fraction`) is below ``cfg.handoff_min_visible`` are no
    observations (a sliver at the image border is not yet "in view"), and a
    run counts only as a view entry (``cfg.handoff_min_outside``, positions =
    ``points``; :func:`handoff_events`).
    """
    det = tracklets[tracklets["frame_status"].astype(str) == "detected"]
    if maps and cfg.handoff_min_visible > 0:  # slivers of a walker at a view's border are not yet "in view"
        det = det[visible_fraction(det, {c: gm.size for c, gm in maps.items()}) >= cfg.handoff_min_visible]
    obs = det[["camera_id", "track_id", "frame"]].astype({"camera_id": str}).merge(
        association[["camera_id", "track_id", "global_id"]].astype({"camera_id": str}), on=["camera_id", "track_id"])
    if maps and points is not None and len(points) and cfg.max_ground_width > 0:
        wide = box_ground_width(det, maps) > cfg.max_ground_width
        obs = pd.concat([obs[["camera_id", "global_id", "frame"]], merged_box_members(det[wide], points, maps)],
                        ignore_index=True)
    geo = maps and points is not None and len(points) and cfg.handoff_min_outside > 0
    return handoff_events(obs, cfg.min_absence, positions=points if geo else None, maps=maps if geo else None,
                          min_outside=cfg.handoff_min_outside)


def gt_handoffs(gt2d: dict[str, pd.DataFrame], min_absence: int = 15, min_visibility_conf: bool = True,
                gt3d: pd.DataFrame | None = None, maps: dict[str, GroundMap] | None = None,
                min_outside: int = 0) -> pd.DataFrame:
    """Ground-truth handoff events from per-camera MOT ground truth whose ids are shared across cameras.

    ``gt2d``: camera → :func:`mctrack.evaluate.read_mot_gt` table (``frame``,
    ``id``, ``conf``); rows with ``conf == 0`` (visibility below 0.25 in the
    simulator) are not "in view". Same rules as :func:`handoff_events`, with the
    target id as global id; with ``gt3d`` (``frame, target_id, x, y`` m foot
    points), ``maps`` and ``min_outside`` > 0 the same view-entry geometry
    as the predicted events (a target hidden behind another inside a view
    and reappearing is no handoff).
    """
    obs = [g.loc[(g["conf"] > 0) if min_visibility_conf else slice(None), ["frame", "id"]]
           .rename(columns={"id": "global_id"}).assign(camera_id=str(cam)) for cam, g in gt2d.items()]
    obs = pd.concat(obs, ignore_index=True) if obs else pd.DataFrame(columns=["camera_id", "global_id", "frame"])
    pos = None if gt3d is None else gt3d.rename(columns={"target_id": "global_id"})
    return handoff_events(obs, min_absence, positions=pos, maps=maps, min_outside=min_outside)


def _match_events(p: pd.DataFrame, g: pd.DataFrame, keys: list[str], tolerance: int) -> list[int]:
    """Frame errors of one-to-one matches (closest frames first) of events ``p`` to ``g`` equal on ``keys``."""
    m = p.reset_index().merge(g.reset_index(), on=keys, suffixes=("_p", "_g"))
    m = m.assign(df=(m["frame_p"] - m["frame_g"]).abs())
    m = m[m["df"] <= tolerance].sort_values("df", kind="stable")
    used_p, used_g, errs = set(), set(), []
    for ip, ig, d in m[["index_p", "index_g", "df"]].itertuples(index=False):
        if ip not in used_p and ig not in used_g:
            used_p.add(ip)
            used_g.add(ig)
            errs.append(int(d))
    return errs


def evaluate_handoffs(pred: pd.DataFrame, gt: pd.DataFrame, gid_to_target: dict, tolerance: int = 15) -> dict:
    """Recall and precision of handoff events against ground truth.

    A predicted event (global id ``g``) matches a ground-truth event of target
    ``gid_to_target[g]`` with the same ``from_camera`` and ``to_camera`` whose
    frame differs by at most ``tolerance`` frames; one-to-one, closest frames
    first. ``gid_to_target`` maps global ids to GT target ids (e.g.
    :func:`ground_gid_targets`).
    Returns ``recall``, ``precision`` (NaN without events), ``n_gt``,
    ``n_pred``, ``n_matched``, ``median_frame_error`` and ``tolerance_frames``;
    ``recall_to_camera`` / ``precision_to_camera``: the same matching without
    the ``from_camera`` condition (a target leaving an overlap zone of two
    cameras was last seen by either, within a few frames: which one is
    ground truth's "from" is a coin toss there).
    """
    p = pred.assign(target=pred["global_id"].map(gid_to_target)).reset_index(drop=True)
    g = gt.reset_index(drop=True).rename(columns={"global_id": "target"})
    errs = _match_events(p, g, ["target", "from_camera", "to_camera"], tolerance)
    n_to = len(_match_events(p, g, ["target", "to_camera"], tolerance))
    n = len(errs)
    nan = float("nan")
    return {"recall": n / len(g) if len(g) else nan, "precision": n / len(p) if len(p) else nan,
            "n_gt": int(len(g)), "n_pred": int(len(p)), "n_matched": int(n),
            "median_frame_error": float(np.median(errs)) if errs else nan, "tolerance_frames": int(tolerance),
            "recall_to_camera": n_to / len(g) if len(g) else nan,
            "precision_to_camera": n_to / len(p) if len(p) else nan}


def ground_gid_targets(points: pd.DataFrame, gt3d: pd.DataFrame, radius: float) -> dict:
    """Global id → the GT target it follows most often (many-to-one).

    Each point is paired with the nearest GT foot point of its frame within
    ``radius`` m; a global id maps to the target of most of its pairs. Several
    fragments of one target all map to it: handoff events are judged on the
    target a global id follows, identity continuity is IDF1's business.
    """
    pairs = points[["frame", "global_id", "x", "y"]].merge(
        gt3d[["frame", "target_id", "x", "y"]].rename(columns={"x": "gx", "y": "gy"}), on="frame")
    if pairs.empty:
        return {}
    pairs = pairs.assign(dist=np.hypot(pairs["x"] - pairs["gx"], pairs["y"] - pairs["gy"]))
    nearest = pairs.loc[pairs.groupby(["frame", "global_id"])["dist"].idxmin()]
    nearest = nearest[nearest["dist"] < radius]
    if nearest.empty:
        return {}
    votes = nearest.groupby(["global_id", "target_id"]).size().rename("n").reset_index()
    best = votes.sort_values(["n", "target_id"], ascending=[False, True]).drop_duplicates("global_id")
    return dict(zip(best["global_id"], best["target_id"]))


def plot_handoffs(handoffs: pd.DataFrame, association: pd.DataFrame, tracklets: pd.DataFrame, path,
                  title: str = "") -> None:
    """QC plot: per global id (y) the frames each camera sees it (coloured bars) and its handoffs (arrows at the frame)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..errors import atomic_path

    det = tracklets[tracklets["frame_status"].astype(str) == "detected"][["camera_id", "track_id", "frame"]]
    obs = det.astype({"camera_id": str}).merge(association[["camera_id", "track_id", "global_id"]]
                                               .astype({"camera_id": str}), on=["camera_id", "track_id"])
    cams = sorted(obs["camera_id"].unique()) if len(obs) else []
    colours = {c: plt.cm.tab10(i % 10) for i, c in enumerate(cams)}
    gids = sorted(obs["global_id"].unique()) if len(obs) else []
    row = {g: i for i, g in enumerate(gids)}
    fig, ax = plt.subplots(figsize=(10, 0.35 * max(len(gids), 4) + 1.5))
    k = max(len(cams), 1)
    for cam in cams:
        o = obs[obs["camera_id"] == cam]
        j = cams.index(cam)
        ax.scatter(o["frame"], o["global_id"].map(row) + (j - (k - 1) / 2) * 0.6 / k, s=1.5,
                   color=colours[cam], label=cam, marker="s", linewidths=0)
    for h in handoffs.itertuples(index=False):
        if h.global_id in row:
            ax.annotate("", xy=(h.frame, row[h.global_id] + 0.4), xytext=(h.frame, row[h.global_id] - 0.4),
                        arrowprops=dict(arrowstyle="->", color=colours.get(h.to_camera, "k"), lw=1.5))
    ax.set_yticks(range(len(gids)), [str(g) for g in gids])
    ax.set_xlabel("frame")
    ax.set_ylabel("global id")
    ax.set_title(f"{title}: {len(handoffs)} handoffs (arrows, colour = camera entered)")
    if cams:
        ax.legend(loc="upper right", markerscale=6, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def session_handoff_metrics(tracklets: pd.DataFrame, association: pd.DataFrame, points: pd.DataFrame,
                            gt2d_paths: dict, gt3d_path, cfg: GroundConfig, radius: float,
                            tolerance: int = 15, maps: dict[str, GroundMap] | None = None) -> dict:
    """Handoff recall/precision of a session (:func:`evaluate_handoffs`) plus the ground-position error.

    ``gt2d_paths``: camera → MOT ``gt.txt`` (ids shared across cameras);
    ``maps``: the session's ground maps; given, predicted events count a
    target inside another's box as observed (:func:`session_handoffs`);
    ``gt3d_path``: ``frame,target_id,x,y,z`` foot points; global ids are mapped
    to targets by :func:`ground_gid_targets` within ``radius`` m. Adds
    ``ground_median_error_cm`` / ``ground_p90_error_cm``: distance (cm) of every
    ground point to the nearest GT foot point of its frame, whatever its
    identity (localisation only; the identity-mapped error is
    ``tracking_3d.median_error_m``).
    """
    from ..evaluate import read_gt3d, read_mot_gt

    gt3d = read_gt3d(gt3d_path)
    mapping = ground_gid_targets(points, gt3d, radius)
    gt2d = {c: read_mot_gt(p) for c, p in gt2d_paths.items()}
    out = evaluate_handoffs(session_handoffs(tracklets, association, cfg, maps, points),
                            gt_handoffs(gt2d, cfg.min_absence, gt3d=gt3d, maps=maps, min_outside=cfg.handoff_min_outside),
                            mapping, tolerance)
    if cfg.handoff_min_outside > 0 or cfg.handoff_min_visible > 0:  # before issue 8's geometry, for reference
        obs_cfg = dataclasses.replace(cfg, handoff_min_outside=0, handoff_min_visible=0.0)
        ref = evaluate_handoffs(session_handoffs(tracklets, association, obs_cfg, maps, points),
                                gt_handoffs(gt2d, cfg.min_absence), mapping, tolerance)
        out.update({f"observation_only_{k}": ref[k] for k in ("recall", "precision", "n_gt", "n_pred", "n_matched")})
    pairs = points[["frame", "global_id", "x", "y"]].merge(gt3d.rename(columns={"x": "gx", "y": "gy"}), on="frame")
    d = (np.hypot(pairs["x"] - pairs["gx"], pairs["y"] - pairs["gy"]) * 100).groupby(
        [pairs["frame"], pairs["global_id"]]).min()
    out["ground_median_error_cm"] = float(np.median(d)) if len(d) else float("nan")
    out["ground_p90_error_cm"] = float(np.quantile(d, 0.9)) if len(d) else float("nan")
    return out
