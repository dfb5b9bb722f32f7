"""Offline tracklet refinement, per camera over a whole session (all chunks at once).

Online trackers decide frame by frame; after a session is tracked we see each
tracklet's whole life and can repair what online association broke. Three
steps, in order (:func:`refine_tracklets`):

1. **Link fragments** of one target across gaps. A tracklet ``A`` that ends
   at frame ``e`` can continue as a tracklet ``B`` that starts at ``s`` with
   ``1 <= s - e <= max_gap`` frames. Both ends are extrapolated across the gap
   with constant velocity (least-squares slope of the box centre over the last
   / first ``velocity_window`` detected frames; no velocity for tracklets
   shorter than 3 detected frames) and the *motion cost* is the mean of the
   forward and backward extrapolation errors divided by the box scale
   ``sqrt(w * h)`` at the ends. A pair is a candidate when that cost is at
   most ``max_link_distance + gap_slack * gap_seconds``, box heights differ by at
   most a factor ``max_size_ratio``, and, when appearance embeddings exist for
   both, the cosine distance of their mean embeddings is at most
   ``max_appearance_distance``. Candidates are assigned one-to-one (each end
   to at most one start) by minimum total cost with
   :func:`scipy.optimize.linear_sum_assignment` (cost = motion cost +
   ``appearance_weight`` x appearance distance); the same pass links chains
   ``A -> B -> C``. This is the offline counterpart of the "tracklet
   association" step of e.g. StrongSORT's AFLink (Du et al., IEEE TMM 2023),
   with an explicit motion model instead of a learned one.
2. **Interpolate gaps** of at most ``max_interp_gap`` frames between two
   detected rows of one (linked) tracklet linearly in ``x1, y1, x2, y2``
   (StrongSORT's linear interpolation; GSI smooths additionally). These rows
   get ``frame_status = "interpolated"``, ``det_index = -1``, ``confidence =
   NaN``. The tracker's own ``"coasted"`` rows (Kalman predictions) inside
   such gaps are replaced; coasted rows after a tracklet's last detection and
   in longer gaps are dropped.
3. **Drop** tracklets with fewer than ``min_length`` detected rows or with a
   mean detection confidence below ``min_mean_confidence`` (a target that is
   really there is detected confidently at least some of the time).

Durations are configured in seconds and converted with the session's fps, so a
60 fps video gets twice the frames of a 30 fps one. Everything is vectorised
over tracklets (no per-row Python loops); the result depends only on the rows
(sorted internally), so chunked and unchunked tracking give identical refined
tracklets.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from ..errors import InputError
from ..tables import FRAME_STATUS, TRACKLET2D, read_tables, write_table

__all__ = ["RefineConfig", "refine_camera", "refine_tracklets"]


@dataclass(frozen=True)
class RefineConfig:
    """Settings of tracklet refinement (config section ``track_2d.refine``).

    Attributes (durations in seconds, converted with the session fps)
    ----------
    enabled : bool or "auto"
        Run refinement. False: the tracker's rows pass unchanged. ``"auto"``
        (default) is resolved by the workflow with :meth:`resolve`: on for a
        session without calibrated multi-camera association (one camera, or
        no calibration), off where association and its 3D stitching bridge
        the gaps from the other views. Measured on the synthetic default (4
        cameras, 6 fish): per-camera linking raised 2D IDF1 (0.59-0.81 ->
        0.62-0.86) but joined fragments of different fish across crossings
        that association could not undo (3D IDF1 0.91 -> 0.84, 7 -> 8 3D
        tracks); on single-camera TUD-Campus it gives +4 HOTA / +9 IDF1.
        Called directly, the library treats ``"auto"`` as on.
    max_gap_seconds : float
        Longest gap between two fragments that may be linked (default 2.0 s).
    max_interp_seconds : float
        Longest gap filled with interpolated rows (default 1.0 s; longer gaps
        of a linked track stay empty).
    min_length_seconds : float
        Tracklets with fewer detected rows than ``max(1, round(min_length_seconds
        * fps))`` are dropped (default 0.2 s: 6 frames at 30 fps).
    min_mean_confidence : float
        Tracklets whose detected rows have a lower mean confidence are dropped
        (default 0.0 = off).
    max_link_distance : float
        Motion gate: extrapolation error in box sizes at the gap's ends
        (default 1.0).
    gap_slack : float
        Extra motion gate per second of gap, box sizes per second (default 1.0).
    max_size_ratio : float
        Largest ratio of box heights at the two ends (default 1.5).
    velocity_window : int
        Detected frames used to estimate the end velocities (default 10).
    max_appearance_distance : float
        Appearance gate: cosine distance of mean ReID embeddings (default 0.3),
        used only when both tracklets have embeddings.
    appearance_weight : float
        Weight of the appearance distance in the assignment cost (default 2.0).
    """

    enabled: bool | str = "auto"
    max_gap_seconds: float = 2.0
    max_interp_seconds: float = 1.0
    min_length_seconds: float = 0.2
    min_mean_confidence: float = 0.0
    max_link_distance: float = 1.0
    gap_slack: float = 1.0
    max_size_ratio: float = 1.5
    velocity_window: int = 10
    max_appearance_distance: float = 0.3
    appearance_weight: float = 2.0

    @classmethod
    def from_dict(cls, d: dict | None) -> RefineConfig:
        """Build and check a config from the ``track_2d.refine`` mapping.

        Raises :class:`~mctrack.errors.InputError` naming ``track_2d.refine.<key>``
        for an unknown key or a value of the wrong type / range.
        """
        d = {} if d is None else d
        if not isinstance(d, dict):
            raise InputError(None, "track_2d.refine", f"expected a mapping, got {type(d).__name__}",
                             "write track_2d.refine as key: value pairs")
        known = set(cls.__dataclass_fields__)
        for k in d:
            if k not in known:
                raise InputError(None, f"track_2d.refine.{k}", "unknown key", f"use only {sorted(known)}")
        cfg = cls(**d)
        for k, v in asdict(cfg).items():
            if k == "enabled":
                ok = isinstance(v, bool) or v == "auto"
            elif k == "velocity_window":
                ok = isinstance(v, int) and not isinstance(v, bool) and v >= 2
            elif k == "max_size_ratio":
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1
            else:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0
            if not ok:
                raise InputError(None, f"track_2d.refine.{k}", f"invalid value {v!r}",
                                 "see mctrack.track2d.refine.RefineConfig for types and ranges")
        return cfg

    def resolve(self, multi_view: bool) -> "RefineConfig":
        """This config with ``enabled = "auto"`` decided: off when ``multi_view`` (a calibrated session of
        ≥ 2 cameras, whose association bridges gaps with the other views), else on."""
        if self.enabled != "auto":
            return self
        return replace(self, enabled=not multi_view)

    def frames(self, seconds: float, fps: float) -> int:
        """``round(seconds * fps)`` frames (at least 0)."""
        return max(0, int(round(float(seconds) * float(fps))))


# ---------------------------------------------------------------------------
# per-tracklet summaries (vectorised over rows)
# ---------------------------------------------------------------------------


def _end_velocity(starts: np.ndarray, counts: np.ndarray, t: np.ndarray, c: np.ndarray,
                  window: int, at_end: bool) -> np.ndarray:
    """Least-squares slope ``(K, 2)`` px/frame of centres ``c (N, 2)`` over frames ``t (N,)``.

    Rows are grouped by tracklet (``starts``/``counts`` index into the sorted
    rows); only the last (``at_end``) or first ``window`` rows of each group are
    used. Groups with fewer than 3 rows get 0 velocity.
    """
    k = len(starts)
    w = np.minimum(counts, window)
    first = starts + counts - w if at_end else starts
    grp = np.repeat(np.arange(k), w)
    idx = np.repeat(first, w) + (np.arange(w.sum()) - np.repeat(np.cumsum(w) - w, w))
    tt = t[idx].astype(np.float64)
    cc = c[idx]
    nw = np.maximum(w, 1).astype(np.float64)
    mt = np.bincount(grp, tt, k) / nw
    dt = tt - mt[grp]
    var = np.bincount(grp, dt * dt, k)
    v = np.zeros((k, 2))
    for d in range(2):
        mc = np.bincount(grp, cc[:, d], k) / nw
        cov = np.bincount(grp, dt * (cc[:, d] - mc[grp]), k)
        v[:, d] = np.divide(cov, var, out=np.zeros(k), where=var > 0)
    v[w < 3] = 0.0
    return v


def _link(det: pd.DataFrame, emb: dict[int, np.ndarray] | None, cfg: RefineConfig, fps: float) -> dict[int, int]:
    """Map ``track_id -> new track_id`` linking fragments (see module doc, step 1)."""
    max_gap = cfg.frames(cfg.max_gap_seconds, fps)
    if max_gap < 1 or det.empty:
        return {}
    tid = det["track_id"].to_numpy(np.int64)
    t = det["frame"].to_numpy(np.int64)
    box = det[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    c = (box[:, :2] + box[:, 2:]) / 2
    ids, starts, counts = np.unique(tid, return_index=True, return_counts=True)
    ends = starts + counts - 1
    k = len(ids)
    v_end = _end_velocity(starts, counts, t, c, cfg.velocity_window, True)
    v_start = _end_velocity(starts, counts, t, c, cfg.velocity_window, False)
    f_start, f_end = t[starts], t[ends]
    wh = box[:, 2:] - box[:, :2]
    scale = np.sqrt(np.clip(wh[:, 0] * wh[:, 1], 1e-6, None))
    # candidate pairs: A (end) -> B (start) with 1 <= f_start[B] - f_end[A] <= max_gap
    order = np.argsort(f_start, kind="stable")
    fs_sorted = f_start[order]
    lo = np.searchsorted(fs_sorted, f_end + 1, "left")
    hi = np.searchsorted(fs_sorted, f_end + max_gap, "right")
    n_c = hi - lo
    a = np.repeat(np.arange(k), n_c)
    b = order[np.repeat(lo, n_c) + (np.arange(n_c.sum()) - np.repeat(np.cumsum(n_c) - n_c, n_c))]
    if len(a) == 0:
        return {}
    gap = (f_start[b] - f_end[a]).astype(np.float64)
    ea, sb = ends[a], starts[b]
    fwd = c[ea] + v_end[a] * gap[:, None] - c[sb]
    bwd = c[sb] - v_start[b] * gap[:, None] - c[ea]
    err = 0.5 * (np.hypot(*fwd.T) / scale[ea] + np.hypot(*bwd.T) / scale[sb])
    ratio = np.maximum(wh[ea, 1], wh[sb, 1]) / np.clip(np.minimum(wh[ea, 1], wh[sb, 1]), 1e-6, None)
    ok = (err <= cfg.max_link_distance + cfg.gap_slack * gap / fps) & (ratio <= cfg.max_size_ratio)
    cost = err.copy()
    if emb:
        ea_e = np.array([i in emb for i in ids[a]]) & np.array([i in emb for i in ids[b]])
        dist = np.zeros(len(a))
        if ea_e.any():
            ea_v = np.stack([emb[i] for i in ids[a[ea_e]]])
            eb_v = np.stack([emb[i] for i in ids[b[ea_e]]])
            dist[ea_e] = 1.0 - np.sum(ea_v * eb_v, axis=1)
        ok &= ~ea_e | (dist <= cfg.max_appearance_distance)
        cost = cost + cfg.appearance_weight * dist
    a, b, cost = a[ok], b[ok], cost[ok]
    if len(a) == 0:
        return {}
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    big = 1e6
    m = np.full((len(ua), len(ub)), big)
    np.minimum.at(m, (ia, ib), cost)
    from scipy.optimize import linear_sum_assignment  # lazy: keeps scipy out of workflow planning

    r, cidx = linear_sum_assignment(m)
    keep = m[r, cidx] < big
    nxt = dict(zip(ids[ua[r[keep]]].tolist(), ids[ub[cidx[keep]]].tolist()))
    # follow chains: each chain takes the id of its first fragment
    has_prev = set(nxt.values())
    mapping: dict[int, int] = {}
    for head in nxt:
        if head in has_prev:
            continue
        cur = head
        while cur in nxt:
            cur = nxt[cur]
            mapping[cur] = head
    return mapping


def _mean_embeddings(det: pd.DataFrame, emb_table: pd.DataFrame | None) -> dict[int, np.ndarray] | None:
    """Unit-norm mean embedding per track id from detected rows joined to ``(frame, det_index)`` embeddings."""
    if emb_table is None or emb_table.empty or det.empty:
        return None
    ecols = [col for col in emb_table.columns if col.startswith("e") and col[1:].isdigit()]
    j = det[["track_id", "frame", "det_index"]].merge(emb_table, on=["frame", "det_index"], how="inner")
    if j.empty:
        return None
    j = j.sort_values(["track_id", "frame"], kind="stable")
    tids, inv = np.unique(j["track_id"].to_numpy(np.int64), return_inverse=True)
    e = j[ecols].to_numpy(np.float64)
    s = np.zeros((len(tids), e.shape[1]))
    np.add.at(s, inv, e)
    s /= np.clip(np.linalg.norm(s, axis=1, keepdims=True), 1e-12, None)
    return {int(i): s[n] for n, i in enumerate(tids)}


def refine_tracklets(tracklets: pd.DataFrame, fps: float, cfg: RefineConfig | None = None,
                     embeddings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Refine one camera's TRACKLET2D rows of a whole session (link, interpolate, drop).

    Parameters
    ----------
    tracklets : DataFrame
        TRACKLET2D rows of one camera (all chunks), any order.
    fps : float
        Session frame rate (Hz), converts the config's seconds to frames.
    cfg : RefineConfig, optional
        Settings (defaults if None). ``cfg.enabled = False`` returns the rows
        unchanged (coerced and sorted).
    embeddings : DataFrame, optional
        Appearance embeddings per detection: ``frame, det_index, e0..e{D-1}``
        (unit-norm rows, see :mod:`mctrack.track2d.reid`), joined to detected
        rows on ``(frame, det_index)``.

    Returns
    -------
    DataFrame
        TRACKLET2D rows sorted by ``(frame, track_id)``: detected rows (boxes
        unchanged, ``track_id`` replaced by the id of the first fragment of its
        linked chain) and ``"interpolated"`` rows in gaps; no ``"coasted"`` rows.

    Raises :class:`~mctrack.errors.InputError` if the rows hold several cameras
    or ``fps`` is not positive.
    """
    cfg = cfg or RefineConfig()
    tr = TRACKLET2D.coerce(tracklets)
    if tr["camera_id"].nunique() > 1:
        raise InputError(None, "Tracklet2D column 'camera_id'", "rows of several cameras",
                         "refine each camera's tracklets separately")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(None, "fps", f"must be positive, got {fps!r}", "pass the session frame rate")
    tr = tr.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)
    if not cfg.enabled or tr.empty:
        return TRACKLET2D.coerce(tr.sort_values(["frame", "track_id"], kind="stable"))
    cam = tr["camera_id"].iloc[0]
    det = tr[tr["frame_status"].astype(str).to_numpy() == "detected"].reset_index(drop=True)

    # 1. link fragments
    mapping = _link(det, _mean_embeddings(det, embeddings), cfg, fps)
    if mapping:
        tid = det["track_id"].to_numpy(np.int64)
        det["track_id"] = pd.Series(tid).map(mapping).fillna(pd.Series(tid)).to_numpy(np.int64)
        det = det.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)

    # 3. drop short / weak tracklets (on detected rows, after linking)
    min_len = max(1, cfg.frames(cfg.min_length_seconds, fps))
    g = det.groupby("track_id", sort=False)
    n = g["frame"].transform("size").to_numpy()
    mc = g["confidence"].transform("mean").to_numpy()
    det = det[(n >= min_len) & (mc >= cfg.min_mean_confidence)].reset_index(drop=True)

    # 2. interpolate gaps between consecutive detected rows of one track
    max_interp = cfg.frames(cfg.max_interp_seconds, fps)
    tid = det["track_id"].to_numpy(np.int64)
    f = det["frame"].to_numpy(np.int64)
    box = det[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    same = tid[1:] == tid[:-1]
    d = f[1:] - f[:-1]
    gi = np.flatnonzero(same & (d > 1) & (d <= max_interp + 1))
    n_new = d[gi] - 1
    rep = np.repeat(gi, n_new)
    step = np.arange(n_new.sum()) - np.repeat(np.cumsum(n_new) - n_new, n_new) + 1
    w = (step / np.repeat(d[gi], n_new))[:, None]
    ibox = (box[rep] * (1 - w) + box[rep + 1] * w).astype(np.float32)
    interp = pd.DataFrame({
        "camera_id": cam, "track_id": tid[rep], "frame": f[rep] + step,
        "x1": ibox[:, 0], "y1": ibox[:, 1], "x2": ibox[:, 2], "y2": ibox[:, 3],
        "cx": (ibox[:, 0] + ibox[:, 2]) * np.float32(0.5), "cy": (ibox[:, 1] + ibox[:, 3]) * np.float32(0.5),
        "frame_status": pd.Categorical(["interpolated"] * len(rep), categories=FRAME_STATUS),
        "det_index": np.full(len(rep), -1, np.int32), "confidence": np.full(len(rep), np.nan, np.float32),
    })
    out = pd.concat([det, interp], ignore_index=True) if len(interp) else det
    out = out.sort_values(["frame", "track_id"], kind="stable")
    return TRACKLET2D.coerce(out)


def refine_camera(chunk_paths: list[str | os.PathLike], out_path: str | os.PathLike, fps: float,
                  cfg: RefineConfig | None = None, embedding_paths: list[str | os.PathLike] | None = None,
                  camera_id: str | None = None) -> pd.DataFrame:
    """Read all chunk tables of one camera, refine them and write one TRACKLET2D parquet (atomic).

    ``embedding_paths``: the matching per-chunk embedding parquet files written
    by :func:`mctrack.track2d.track_chunk` when ReID is on (or None). Returns the
    refined table. Raises :class:`~mctrack.errors.InputError` on a missing or
    malformed input table.
    """
    cfg = cfg or RefineConfig()
    tr = read_tables(list(chunk_paths), TRACKLET2D)
    emb = None
    if embedding_paths:
        parts = [pd.read_parquet(p) for p in embedding_paths]
        parts = [p for p in parts if len(p)]
        emb = pd.concat(parts, ignore_index=True) if parts else None
    out = refine_tracklets(tr, fps, cfg, emb)
    write_table(out, TRACKLET2D, out_path, refined=str(cfg.enabled), camera_id=str(camera_id or ""),
                fps=str(fps))
    return out
