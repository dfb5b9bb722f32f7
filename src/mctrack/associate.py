"""Cross-camera association: one global id per target, from calibrated geometry.

Tracklet-level association in three steps.

1. **Per-frame evidence** (vectorised). For every pair of cameras and every
   frame, each detected tracklet centroid is back-projected to a world ray.
   The distance between the two rays' closest points (m; the classic
   ray–ray distance, e.g. Hartley & Zisserman §12.1) measures whether the two
   centroids can be the same 3D point. Per frame, a pair of tracklets is a
   *vote* when each is the other's nearest ray (mutual nearest neighbours)
   and the distance is below ``max_ray_distance`` — this keeps one match per
   tracklet per frame, as a per-frame assignment would.
2. **Tracklet-pair scores.** Votes are summed over the frames both tracklets
   share. A pair is a *link* candidate when it has ≥ ``min_votes`` votes and
   votes / shared frames ≥ ``min_vote_ratio``; it is a *cannot-link* when it
   shares ≥ ``min_votes`` frames but its ratio is below ``min_vote_ratio / 3``
   (the tracklets are seen together and are clearly apart).
3. **Constrained clustering.** Links are merged greedily, strongest first
   (most votes), with union-find. Two clusters are never merged when that
   would put two tracklets of one camera that overlap in time into one target
   (one camera cannot see one target twice at one frame), or when any pair
   across them is a cannot-link. Tracklets of one camera that do *not*
   overlap in time may join one target: another camera bridges the gap.

Every tracklet gets a global id, linked or not (a target seen by one camera is
still a target). Global ids are numbered 0..K−1 by decreasing number of
detected observations, so id 0 is the most observed target.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .calibration import Camera
from .tables import ASSOCIATION


@dataclass(frozen=True)
class AssociationConfig:
    """Settings of :func:`associate`.

    ``max_ray_distance``: world units (m); two centroid rays closer than this
    may be one target. Scale it to the target size: bounding-box centres of one
    person in two views are different body points (~0.1–0.2 m apart), those of
    a small fish a few mm. Default 0.2 m (people).
    ``min_votes``: frames of agreement needed for a link (default 5).
    ``min_vote_ratio``: fraction of shared frames that must agree (default 0.5).
    ``use_coasted``: also use coasted rows as evidence (default False).
    """

    max_ray_distance: float = 0.2
    min_votes: int = 5
    min_vote_ratio: float = 0.5
    use_coasted: bool = False

    @classmethod
    def from_dict(cls, d: dict | None) -> "AssociationConfig":
        """Build from the config's ``associate`` section (already schema-validated)."""
        d = dict(d or {})
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def ray_distance(o1: np.ndarray, d1: np.ndarray, o2: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Distance between the closest points of rays ``o1 + s·d1`` and ``o2 + t·d2``.

    ``o1, o2``: (3,) or (N, 3) origins; ``d1, d2``: (N, 3) unit directions.
    Returns (N,) float64 in world units; ``inf`` where the closest point lies
    behind either camera (s ≤ 0 or t ≤ 0). Parallel rays (no unique closest
    points) use the distance of ``o2`` to the first ray.
    """
    w = o1 - o2
    b = np.einsum("ij,ij->i", d1, d2)
    d = np.einsum("ij,ij->i", d1, w) if w.ndim == 2 else d1 @ w
    e = np.einsum("ij,ij->i", d2, w) if w.ndim == 2 else d2 @ w
    den = 1.0 - b * b
    par = den < 1e-12
    den = np.where(par, 1.0, den)
    s = (b * e - d) / den
    t = (e - b * d) / den
    s = np.where(par, 0.0, s)
    t = np.where(par, e, t)
    gap = (o1 + s[:, None] * d1) - (o2 + t[:, None] * d2)
    dist = np.linalg.norm(gap, axis=1)
    return np.where(~par & ((s <= 0) | (t <= 0)), np.inf, dist)


def pair_evidence(tracklets: pd.DataFrame, cameras: dict[str, Camera], cfg: AssociationConfig) -> pd.DataFrame:
    """Votes for every pair of tracklets of different cameras that share frames.

    Returns a DataFrame with ``camera_a, track_a, camera_b, track_b`` (camera_a
    < camera_b), ``n_shared`` (frames both detected), ``n_votes`` (mutual
    nearest rays within ``max_ray_distance``) and ``median_distance`` (m, over
    shared frames).
    """
    obs = tracklets if cfg.use_coasted else tracklets[tracklets["frame_status"] == "detected"]
    obs = obs[obs["camera_id"].isin(list(cameras))]
    per_cam = {}
    for cam_id, rows in obs.groupby("camera_id", sort=True, observed=True):
        o, d = cameras[cam_id].rays(rows[["cx", "cy"]].to_numpy(np.float64))
        per_cam[cam_id] = (o, pd.DataFrame({"frame": rows["frame"].to_numpy(), "track": rows["track_id"].to_numpy(),
                                            "dx": d[:, 0], "dy": d[:, 1], "dz": d[:, 2]}))
    out = []
    for ca, cb in itertools.combinations(sorted(per_cam), 2):
        (oa, ta), (ob, tb) = per_cam[ca], per_cam[cb]
        m = ta.merge(tb, on="frame", suffixes=("_a", "_b"))
        if m.empty:
            continue
        dist = ray_distance(oa, m[["dx_a", "dy_a", "dz_a"]].to_numpy(), ob, m[["dx_b", "dy_b", "dz_b"]].to_numpy())
        m = pd.DataFrame({"frame": m["frame"].to_numpy(), "track_a": m["track_a"].to_numpy(),
                          "track_b": m["track_b"].to_numpy(), "dist": dist})
        best_a = m.groupby(["frame", "track_a"])["dist"].transform("min")
        best_b = m.groupby(["frame", "track_b"])["dist"].transform("min")
        m["vote"] = (m["dist"] == best_a) & (m["dist"] == best_b) & (m["dist"] < cfg.max_ray_distance)
        agg = m.groupby(["track_a", "track_b"]).agg(n_shared=("frame", "size"), n_votes=("vote", "sum"),
                                                    median_distance=("dist", "median")).reset_index()
        agg.insert(0, "camera_a", ca)
        agg.insert(2, "camera_b", cb)
        out.append(agg)
    cols = ["camera_a", "track_a", "camera_b", "track_b", "n_shared", "n_votes", "median_distance"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


class _Clusters:
    """Union-find over tracklets with per-cluster time intervals per camera and cannot-links."""

    def __init__(self, keys: list[tuple[str, int]], intervals: np.ndarray, cannot: set[tuple[int, int]]):
        self.parent = list(range(len(keys)))
        self.members = {i: [i] for i in range(len(keys))}
        self.cam = [k[0] for k in keys]
        self.iv = intervals
        self.cannot = cannot

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def compatible(self, ra: int, rb: int) -> bool:
        for i in self.members[ra]:
            for j in self.members[rb]:
                if (min(i, j), max(i, j)) in self.cannot:
                    return False
                if self.cam[i] == self.cam[j]:
                    (s1, e1), (s2, e2) = self.iv[i], self.iv[j]
                    if s1 <= e2 and s2 <= e1:
                        return False
        return True

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or not self.compatible(ra, rb):
            return False
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] += self.members.pop(rb)
        return True


def associate(tracklets: pd.DataFrame, cameras: dict[str, Camera] | None,
              cfg: AssociationConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give every tracklet of a session a global id.

    Parameters
    ----------
    tracklets : TRACKLET2D table of all cameras of the session.
    cameras : calibrated cameras keyed by sheet ``camera_id``, or None/empty
        (no calibration: each tracklet becomes its own target).
    cfg : :class:`AssociationConfig`.

    Returns
    -------
    association : ASSOCIATION table, one row per ``(camera_id, track_id)``.
    evidence : the :func:`pair_evidence` table with a boolean ``linked`` column
        (True where the pair ended up in one target).
    """
    cfg = cfg or AssociationConfig()
    det = tracklets[tracklets["frame_status"] == "detected"]
    stats = det.groupby(["camera_id", "track_id"], sort=True).agg(
        n_frames=("frame", "size"), first=("frame", "min"), last=("frame", "max")).reset_index()
    # tracklets with only coasted rows (not expected) still get an id
    allk = tracklets[["camera_id", "track_id"]].drop_duplicates()
    stats = allk.merge(stats, how="left", on=["camera_id", "track_id"]).fillna({"n_frames": 0})
    stats["first"] = stats["first"].fillna(-1)
    stats["last"] = stats["last"].fillna(-2)
    stats = stats.sort_values(["camera_id", "track_id"]).reset_index(drop=True)
    stats["track_id"] = stats["track_id"].astype(np.int64)
    keys = list(zip(stats["camera_id"], stats["track_id"]))

    if cameras and len(set(stats["camera_id"]) & set(cameras)) >= 2:
        ev = pair_evidence(tracklets, cameras, cfg)
    else:
        ev = pd.DataFrame(columns=["camera_a", "track_a", "camera_b", "track_b", "n_shared", "n_votes",
                                   "median_distance"])
    pos = pd.Series(np.arange(len(stats)), index=pd.MultiIndex.from_frame(stats[["camera_id", "track_id"]]))
    ia = pos.reindex(pd.MultiIndex.from_arrays([ev["camera_a"], ev["track_a"].astype(np.int64)])).to_numpy(int)
    ib = pos.reindex(pd.MultiIndex.from_arrays([ev["camera_b"], ev["track_b"].astype(np.int64)])).to_numpy(int)
    n_votes = ev["n_votes"].to_numpy(dtype=np.int64)
    ratio = n_votes / np.maximum(ev["n_shared"].to_numpy(dtype=np.int64), 1)
    link = (n_votes >= cfg.min_votes) & (ratio >= cfg.min_vote_ratio)
    cannot_mask = (ev["n_shared"].to_numpy(dtype=np.int64) >= cfg.min_votes) & (ratio < cfg.min_vote_ratio / 3)
    cannot = {(min(a, b), max(a, b)) for a, b in zip(ia[cannot_mask], ib[cannot_mask])}

    uf = _Clusters(keys, stats[["first", "last"]].to_numpy(), cannot)
    order = np.lexsort((ev["median_distance"].to_numpy(dtype=np.float64), -n_votes))
    for e in order:
        if link[e]:
            uf.union(ia[e], ib[e])

    roots = np.array([uf.find(i) for i in range(len(keys))], dtype=int)
    n_frames = stats["n_frames"].to_numpy(dtype=np.int64)
    root_ids, inv = np.unique(roots, return_inverse=True)
    total = np.bincount(inv, weights=n_frames)
    first_member = np.full(root_ids.size, len(keys))
    np.minimum.at(first_member, inv, np.arange(len(keys)))
    rank = np.lexsort((first_member, -total))
    gid_of_root = np.empty(root_ids.size, dtype=np.int64)
    gid_of_root[rank] = np.arange(root_ids.size)
    gids = gid_of_root[inv]
    n_cams = pd.Series(stats["camera_id"].to_numpy()).groupby(gids).transform("nunique").to_numpy()
    association = ASSOCIATION.coerce(pd.DataFrame({
        "camera_id": stats["camera_id"], "track_id": stats["track_id"], "global_id": gids,
        "n_frames": n_frames, "n_linked_cameras": n_cams}))
    ev = ev.copy()
    ev["linked"] = gids[ia] == gids[ib] if len(ev) else np.zeros(0, bool)
    return association, ev
