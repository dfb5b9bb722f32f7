"""Quality control without ground truth: compact summaries, plots that scale, proxy metrics.

:func:`collect_qc_data` reads the stage tables one file at a time (only the
columns it needs) and reduces them to a :class:`QCData` whose size depends on
cameras × global ids × frames only through small arrays (detections per frame,
an active-id bitmap, *runs* of consecutive detected frames), so 12 cameras × 50
global ids × 100k frames stay fast. Each plot is a function ``plot_<name>(qc)
-> Figure`` (usable in a notebook); per-camera plots are small multiples that
wrap after 4 columns; timelines draw runs, never one marker per frame.
:func:`make_qc_plots` writes the PNGs and the proxy-metric table
(:func:`proxy_metrics`) for the report; :func:`session_summary` computes the
same metrics from a session file (``mctrack inspect``).

Plots: ``detections_per_frame``, ``tracklet_lengths``, ``coasted_fraction``,
``cameras_per_target``, ``reprojection_error``, ``top_view``,
``identity_timeline`` (which camera sees which global id when),
``ids_over_time`` (global ids alive and triangulated per frame).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from .errors import atomic_path  # noqa: E402
from .tables import FRAME_STATUS  # noqa: E402

#: most frames drawn per time series; longer sessions are binned (min / mean / max per bin)
MAX_BINS = 1000
#: most points per global id in the top view (evenly strided)
MAX_POINTS_PER_ID = 2000
#: most global ids drawn in the identity timeline (those with the most frames)
MAX_TIMELINE_IDS = 60
PANEL_COLS = 4


@dataclass
class QCData:
    """Reduced stage tables for QC (``C`` cameras, ``T`` frames, ``K`` global ids).

    ``det_per_frame (C, T) int32``; ``track_lengths``: rows per tracklet
    (camera, track_id, length, global_id); ``rows`` ``(C,)`` tracklet rows;
    ``by_status``: ``{status: (C,) rows}`` for each ``frame_status`` other than
    detected (coasted, interpolated, reprojected), and their sum ``coasted``
    ``(C,)`` (rows without a detection); ``runs``: DataFrame ``camera`` (index),
    ``global_id``, ``start``, ``stop`` (exclusive) of consecutive *detected*
    frames; ``active (T, K) bool`` (some camera has a row of the id);
    ``points``: POINTS3D columns ``frame, global_id, x, y, n_cameras,
    reprojection_error``; ``residuals``: ``{camera: residual_px array}`` (px).
    """

    cameras: list[str]
    n_frames: int
    association: pd.DataFrame
    det_per_frame: np.ndarray
    track_lengths: pd.DataFrame
    rows: np.ndarray
    by_status: dict
    runs: pd.DataFrame
    active: np.ndarray
    points: pd.DataFrame
    residuals: dict = field(default_factory=dict)

    @property
    def coasted(self) -> np.ndarray:
        """``(C,)`` tracklet rows without a detection (every status but detected)."""
        return sum(self.by_status.values(), np.zeros(len(self.cameras), np.int64))

    @property
    def n_global_ids(self) -> int:
        return self.active.shape[1]


def _pieces(source, columns):
    """DataFrames of ``columns`` from a DataFrame or from parquet files read one at a time."""
    if isinstance(source, pd.DataFrame):
        yield source[columns]
        return
    for p in source:
        yield pd.read_parquet(p, columns=columns)


def _merge_runs(runs: pd.DataFrame, min_gap: int = 1) -> pd.DataFrame:
    """Merge runs of one (camera, global_id) separated by fewer than ``min_gap`` frames."""
    if runs.empty:
        return runs
    r = runs.sort_values(["camera", "global_id", "start"], kind="stable").reset_index(drop=True)
    c, g, s, e = (r[k].to_numpy() for k in ("camera", "global_id", "start", "stop"))
    new = np.ones(len(r), bool)  # runs of one key are disjoint and sorted by start
    new[1:] = (c[1:] != c[:-1]) | (g[1:] != g[:-1]) | (s[1:] - e[:-1] >= min_gap)
    return pd.DataFrame({"camera": c[new], "global_id": g[new], "start": s[new],
                         "stop": np.maximum.reduceat(e, np.flatnonzero(new))})


def collect_qc_data(detections, tracklets, association: pd.DataFrame, points, residuals, n_frames: int,
                    cameras: list[str]) -> QCData:
    """Reduce the stage tables (DataFrames or lists of parquet files; ``points`` / ``residuals`` a DataFrame,
    a parquet path or None) to :class:`QCData`, reading one file and only the needed columns at a time."""
    C, T = len(cameras), int(n_frames)
    cam_index = pd.Index(cameras)
    K = int(association["global_id"].max()) + 1 if len(association) else 0
    acode = cam_index.get_indexer(association["camera_id"].astype(str))
    akey = pd.Index(acode.astype(np.int64) * (1 << 40) + association["track_id"].to_numpy(np.int64))
    agid = association["global_id"].to_numpy(np.int64)

    det = np.zeros((C, T), np.int32)
    for d in _pieces(detections, ["camera_id", "frame"]):
        cc = cam_index.get_indexer(d["camera_id"].astype(str))
        f = d["frame"].to_numpy(np.int64)
        ok = (cc >= 0) & (f >= 0) & (f < T)
        det += np.bincount(cc[ok] * T + f[ok], minlength=C * T).reshape(C, T).astype(np.int32)

    rows = np.zeros(C, np.int64)
    by_status = {st: np.zeros(C, np.int64) for st in FRAME_STATUS if st != "detected"}
    active = np.zeros((max(T, 0), K), bool)
    lengths, runs = [], []
    for tr in _pieces(tracklets, ["camera_id", "track_id", "frame", "frame_status"]):
        if not len(tr):
            continue
        cc = cam_index.get_indexer(tr["camera_id"].astype(str)).astype(np.int64)
        tid = tr["track_id"].to_numpy(np.int64)
        f = tr["frame"].to_numpy(np.int64)
        status = tr["frame_status"].astype(str).to_numpy()
        is_det = status == "detected"
        rows += np.bincount(cc, minlength=C)
        for st, n in by_status.items():
            n += np.bincount(cc[status == st], minlength=C)
        key = cc * (1 << 40) + tid
        uk, cnt = np.unique(key, return_counts=True)
        lengths.append(pd.DataFrame({"key": uk, "length": cnt}))
        pos = akey.get_indexer(key)
        g = np.where(pos >= 0, agid[np.maximum(pos, 0)], -1)
        ok = (g >= 0) & (f >= 0) & (f < T)
        active[f[ok], g[ok]] = True
        m = ok & is_det
        cd, gd, fd = cc[m], g[m], f[m]
        o = np.lexsort((fd, gd, cd))
        cd, gd, fd = cd[o], gd[o], fd[o]
        if len(fd):
            brk = np.ones(len(fd), bool)
            brk[1:] = (cd[1:] != cd[:-1]) | (gd[1:] != gd[:-1]) | (fd[1:] != fd[:-1] + 1)
            starts = np.flatnonzero(brk)
            ends = np.r_[starts[1:], len(fd)] - 1
            runs.append(pd.DataFrame({"camera": cd[starts], "global_id": gd[starts], "start": fd[starts],
                                      "stop": fd[ends] + 1}))
    lens = (pd.concat(lengths).groupby("key", sort=True)["length"].sum().reset_index() if lengths
            else pd.DataFrame({"key": np.zeros(0, np.int64), "length": np.zeros(0, np.int64)}))
    k = lens["key"].to_numpy(np.int64)
    pos = akey.get_indexer(k)
    track_lengths = pd.DataFrame({"camera": k >> 40, "track_id": k & ((1 << 40) - 1),
                                  "length": lens["length"].to_numpy(),
                                  "global_id": np.where(pos >= 0, agid[np.maximum(pos, 0)], -1)})
    runs_df = (_merge_runs(pd.concat(runs, ignore_index=True)) if runs else
               pd.DataFrame({c: np.zeros(0, np.int64) for c in ("camera", "global_id", "start", "stop")}))

    pcols = ["frame", "global_id", "x", "y", "n_cameras", "reprojection_error"]
    if points is None:
        pts = pd.DataFrame({c: np.zeros(0) for c in pcols})
    elif isinstance(points, pd.DataFrame):
        pts = points[pcols]
    else:
        pts = pd.read_parquet(points, columns=pcols)
    res = {}
    if residuals is not None:
        if isinstance(residuals, pd.DataFrame):
            codes = cam_index.get_indexer(residuals["camera_id"].astype(str))
            vals = residuals["residual_px"].to_numpy(np.float32)
            for i, cam in enumerate(cameras):
                res[cam] = vals[codes == i]
        else:
            import pyarrow.parquet as pq

            t = pq.read_table(residuals, columns=["camera_id", "residual_px"], read_dictionary=["camera_id"])
            col = t.column("camera_id").combine_chunks()
            vals = t.column("residual_px").to_numpy()
            if len(vals):
                codes = cam_index.get_indexer(pd.Index(col.dictionary.to_pylist()))[col.indices.to_numpy()]
                for i, cam in enumerate(cameras):
                    res[cam] = vals[codes == i]
    return QCData(list(cameras), T, association, det, track_lengths, rows, by_status, runs_df, active, pts, res)


# --------------------------------------------------------------------------- proxy metrics


def _pct(a, q) -> float:
    a = np.asarray(a, np.float64)
    a = a[np.isfinite(a)]
    return float(np.percentile(a, q)) if len(a) else float("nan")


def proxy_metrics(qc: QCData) -> dict:
    """Ground-truth-free quality figures of a session.

    - ``unassociated_tracklet_fraction``: tracklets whose global id spans one
      camera only (NaN with one camera); ``unassociated_row_fraction`` the same
      weighted by tracklet rows;
    - ``global_ids``, ``multi_camera_ids``; ``ids_per_frame_median`` / ``_max``
      (ids alive per frame) and ``triangulated_ids_per_frame_median``;
    - ``cameras_per_target_mean`` (cameras a global id is linked across),
      ``cameras_per_point_mean`` (cameras per 3D point);
    - ``coverage_median``: per multi-camera global id, triangulated frames / frames alive (median);
    - ``coasted_fraction``; ``residual_px_p50/p90/p99`` (all cameras) and
      ``residual_px_p50[camera]`` per camera (from per-camera residuals, else
      the 3D points' mean reprojection error).
    """
    a = qc.association
    C = len(qc.cameras)
    n_tr = len(a)
    lone = (a["n_linked_cameras"].to_numpy() <= 1) if n_tr else np.zeros(0, bool)
    w = a["n_frames"].to_numpy(np.float64) if n_tr else np.zeros(0)
    alive = qc.active.sum(1) if qc.active.size else np.zeros(qc.n_frames, np.int64)
    pf = qc.points["frame"].to_numpy(np.int64)
    tri_per_frame = np.bincount(pf[(pf >= 0) & (pf < qc.n_frames)], minlength=qc.n_frames)
    gid_alive = qc.active.sum(0)
    tri_by_gid = np.bincount(qc.points["global_id"].to_numpy(np.int64), minlength=qc.n_global_ids)
    per_gid = a.groupby("global_id")["camera_id"].nunique() if n_tr else pd.Series(dtype=float)
    multi = np.zeros(qc.n_global_ids, bool)
    multi[per_gid.index[per_gid >= 2].to_numpy(np.int64)] = True
    sel = multi & (gid_alive > 0)
    cover = tri_by_gid[sel] / gid_alive[sel]
    out = {
        "cameras": C,
        "frames": qc.n_frames,
        "detections": int(qc.det_per_frame.sum()),
        "tracklets": n_tr,
        "global_ids": int(a["global_id"].nunique()) if n_tr else 0,
        "multi_camera_ids": int((per_gid >= 2).sum()),
        "unassociated_tracklet_fraction": float(lone.mean()) if n_tr and C > 1 else float("nan"),
        "unassociated_row_fraction": float(w[lone].sum() / w.sum()) if n_tr and C > 1 and w.sum() else float("nan"),
        "ids_per_frame_median": float(np.median(alive)) if len(alive) else float("nan"),
        "ids_per_frame_max": int(alive.max()) if len(alive) else 0,
        "triangulated_ids_per_frame_median": float(np.median(tri_per_frame)) if len(tri_per_frame) else float("nan"),
        "cameras_per_target_mean": float(per_gid.mean()) if len(per_gid) else float("nan"),
        "cameras_per_point_mean": float(qc.points["n_cameras"].mean()) if len(qc.points) else float("nan"),
        "coverage_median": float(np.median(cover)) if len(cover) else float("nan"),
        "coasted_fraction": float(qc.coasted.sum() / qc.rows.sum()) if qc.rows.sum() else float("nan"),
    }
    allres = np.concatenate(list(qc.residuals.values())) if qc.residuals else \
        qc.points["reprojection_error"].to_numpy(np.float64)
    for q in (50, 90, 99):
        out[f"residual_px_p{q}"] = _pct(allres, q)
    for cam, r in qc.residuals.items():
        out[f"residual_px_p50[{cam}]"] = _pct(r, 50)
        out[f"residual_px_p90[{cam}]"] = _pct(r, 90)
    return out


def session_summary(session) -> dict:
    """:func:`proxy_metrics` of a session file (``mctrack.read_session`` object), plus session facts."""
    qc = collect_qc_data(session.detections, session.tracklets, session.association, session.points3d, None,
                         session.n_frames, session.camera_names)
    out = {"session": session.session, "file": str(session.path), "fps": session.fps}
    out.update(proxy_metrics(qc))
    out["tracklets_per_camera"] = {c: int(n) for c, n in zip(qc.cameras, np.bincount(
        qc.track_lengths["camera"].to_numpy(np.int64), minlength=len(qc.cameras)))}
    out["detections_per_camera"] = {c: int(n) for c, n in zip(qc.cameras, qc.det_per_frame.sum(1))}
    v = session.versions
    out["versions"] = {k: v[k] for k in ("mctrack", "ultralytics", "boxmot", "snakemake", "model_file") if k in v}
    return out


def format_summary(summary: dict) -> str:
    """Human-readable lines of :func:`session_summary`."""
    lines = []
    for k, v in summary.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        elif isinstance(v, float):
            v = f"{v:.4g}"
        lines.append(f"{k:36s} {v}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _panels(n: int, w: float = 3.2, h: float = 2.2, sharex=True, sharey=True):
    """Figure with ``n`` panels wrapping after :data:`PANEL_COLS` columns; unused axes hidden."""
    n = max(n, 1)
    cols = min(PANEL_COLS, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows + 0.6), sharex=sharex, sharey=sharey,
                             squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _binned(y: np.ndarray, max_bins: int = MAX_BINS):
    """(x centres, min, mean, max) of ``y`` in at most ``max_bins`` equal frame bins."""
    T = len(y)
    if T <= max_bins:
        x = np.arange(T)
        return x, y, y, y
    edges = np.linspace(0, T, max_bins + 1).astype(np.int64)
    y = y.astype(np.float64)
    return ((edges[:-1] + edges[1:]) / 2, np.minimum.reduceat(y, edges[:-1]),
            np.add.reduceat(y, edges[:-1]) / np.diff(edges), np.maximum.reduceat(y, edges[:-1]))


def plot_detections_per_frame(qc: QCData):
    """Detections per frame, one panel per camera (binned: mean line, min–max band, when long)."""
    fig, axes = _panels(len(qc.cameras))
    for ax, cam, y in zip(axes, qc.cameras, qc.det_per_frame):
        x, lo, mean, hi = _binned(y)
        ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.25, lw=0)
        ax.plot(x, mean, lw=0.8, color="tab:blue")
        ax.set_title(cam, fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.supxlabel("frame", fontsize=8)
    fig.supylabel("detections", fontsize=8)
    fig.suptitle("Detections per frame" + (" (binned: mean, min–max)" if qc.n_frames > MAX_BINS else ""),
                 fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def plot_tracklet_lengths(qc: QCData):
    """Histogram of tracklet lengths (frames, detected + coasted), one panel per camera, log bins."""
    fig, axes = _panels(len(qc.cameras))
    L = qc.track_lengths
    bins = np.unique(np.geomspace(1, max(int(L["length"].max()) if len(L) else 2, 2) + 1, 25).astype(int))
    cam_codes = L["camera"].to_numpy()
    for i, (ax, cam) in enumerate(zip(axes, qc.cameras)):
        v = L["length"].to_numpy()[cam_codes == i]
        if len(v):
            ax.hist(v, bins=bins, color="tab:purple")
            ax.set_xscale("log")
        else:
            _empty(ax, "no tracklets")
        ax.set_title(f"{cam}: {len(v)} tracklets", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.supxlabel("tracklet length (frames)", fontsize=8)
    fig.supylabel("tracklets", fontsize=8)
    fig.tight_layout()
    return fig


def plot_coasted_fraction(qc: QCData):
    """Stacked bar per camera: fraction of tracklet rows without a detection, by ``frame_status``.

    coasted (the 2D tracker's prediction), interpolated (gap filled by
    refinement) and reprojected (from the 3D track where this camera missed
    the target); the rest of each bar's height to 1 is detected rows.
    """
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(qc.cameras) + 1.5), 3.2))
    colours = {"coasted": "tab:orange", "interpolated": "tab:purple", "reprojected": "tab:cyan"}
    parts = qc.by_status
    bottom = np.zeros(len(qc.cameras))
    with np.errstate(invalid="ignore", divide="ignore"):
        for st, n in parts.items():
            frac = np.nan_to_num(n / qc.rows)
            ax.bar(qc.cameras, frac, bottom=bottom, color=colours.get(st), label=st)
            bottom += frac
    ax.set(ylabel="fraction of tracklet rows", ylim=(0, 1), title="Rows without a detection")
    ax.legend(fontsize=7, loc="upper right")
    ax.tick_params(axis="x", labelrotation=45 if len(qc.cameras) > 6 else 0, labelsize=7)
    fig.tight_layout()
    return fig


def plot_cameras_per_target(qc: QCData):
    """Left: cameras used per 3D point; right: cameras each global id is linked across."""
    C = len(qc.cameras)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.3))
    bins = np.arange(0.5, C + 1.5)
    if len(qc.points):
        a1.hist(qc.points["n_cameras"], bins=bins, rwidth=0.8)
    else:
        _empty(a1, "no 3D points")
    a1.set(xlabel="cameras per 3D point", ylabel="points", title="Cameras per triangulated point")
    a2.hist(qc.association.groupby("global_id")["camera_id"].nunique(), bins=bins, rwidth=0.8, color="tab:green")
    a2.set(xlabel="cameras linked", ylabel="global ids", title="Cameras per global id")
    fig.tight_layout()
    return fig


def plot_reprojection_error(qc: QCData):
    """Histogram of reprojection residuals (px) per camera panel, median and p90 in the title."""
    res = qc.residuals
    if not res and len(qc.points):
        res = {"all cameras (3D point mean)": qc.points["reprojection_error"].to_numpy()}
    names = list(res) or ["-"]
    fig, axes = _panels(len(names), sharey=False)
    allv = np.concatenate([np.asarray(v, np.float64) for v in res.values()]) if res else np.zeros(0)
    hi = _pct(allv, 99) if len(allv) else 1.0
    bins = np.linspace(0, hi if np.isfinite(hi) and hi > 0 else 1.0, 40)
    for ax, name in zip(axes, names):
        v = np.asarray(res.get(name, []), np.float64)
        v = v[np.isfinite(v)]
        if len(v):
            counts, _ = np.histogram(np.clip(v, 0, bins[-1]), bins)
            ax.stairs(counts, bins, fill=True, color="tab:red", alpha=0.7)
            ax.set_title(f"{name}: median {np.median(v):.1f}, p90 {np.percentile(v, 90):.1f} px", fontsize=8)
        else:
            _empty(ax, "no 3D points (single camera or uncalibrated)")
            ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.supxlabel("reprojection error (px; last bin = p99 and above)", fontsize=8)
    fig.supylabel("observations", fontsize=8)
    fig.tight_layout()
    return fig


def plot_top_view(qc: QCData):
    """x–y of the 3D trajectories (world units), one colour per global id, ≤ 2000 points per id."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    p = qc.points
    if p.empty:
        _empty(ax, "no 3D points")
    else:
        p = p.sort_values(["global_id", "frame"], kind="stable")
        g = p["global_id"].to_numpy()
        starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
        counts = np.diff(np.r_[starts, len(g)])
        stride = np.maximum(1, -(-counts // MAX_POINTS_PER_ID))
        rank = np.arange(len(g)) - np.repeat(starts, counts)
        keep = rank % np.repeat(stride, counts) == 0
        cmap = plt.get_cmap("tab20")
        colors = cmap(g[keep] % 20)
        ax.scatter(p["x"].to_numpy()[keep], p["y"].to_numpy()[keep], s=1, c=colors, linewidths=0, rasterized=True)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"3D trajectories, top view ({len(starts)} global ids)", fontsize=9)
    ax.set(xlabel="x (world units)", ylabel="y (world units)")
    return fig


def plot_identity_timeline(qc: QCData):
    """Per camera panel: for each global id (rows), runs of frames where that camera has a detected box.

    Runs closer than one pixel column (``T / 1500`` frames) are drawn merged.
    At most :data:`MAX_TIMELINE_IDS` global ids (those alive longest) are shown.
    """
    runs = qc.runs
    multi = qc.association.groupby("global_id")["camera_id"].nunique()
    ids = multi.index.to_numpy()
    alive = qc.active.sum(0) if qc.active.size else np.zeros(0)
    order = ids[np.argsort(-alive[ids], kind="stable")] if len(ids) else ids
    shown = np.sort(order[:MAX_TIMELINE_IDS])
    fig, axes = _panels(len(qc.cameras), w=3.6, h=max(1.8, 0.06 * len(shown) + 1.0))
    if len(runs):
        runs = _merge_runs(runs, min_gap=max(1, qc.n_frames // 1500))
    row_of = pd.Series(np.arange(len(shown)), index=shown)
    cmap = plt.get_cmap("tab10")
    for i, (ax, cam) in enumerate(zip(axes, qc.cameras)):
        r = runs[(runs["camera"].to_numpy() == i) & np.isin(runs["global_id"].to_numpy(), shown)]
        if len(r):
            y = row_of.loc[r["global_id"].to_numpy()].to_numpy()
            segs = np.stack([np.c_[r["start"], y], np.c_[r["stop"], y]], axis=1).astype(np.float64)
            ax.add_collection(LineCollection(segs, linewidths=max(0.6, min(3.0, 120 / max(len(shown), 1))),
                                             colors=[cmap(i % 10)]))
        ax.set_xlim(0, max(qc.n_frames, 1))
        ax.set_ylim(-1, max(len(shown), 1))
        ax.set_title(cam, fontsize=8)
        ax.tick_params(labelsize=6)
        if len(shown) <= 30:
            ax.set_yticks(range(len(shown)), [str(g) for g in shown])
    more = f" ({len(shown)} of {len(ids)} global ids, longest alive)" if len(ids) > len(shown) else ""
    fig.suptitle("Which camera sees which global id (detected runs)" + more, fontsize=9, x=0.01, ha="left")
    fig.supxlabel("frame", fontsize=8)
    fig.supylabel("global id", fontsize=8)
    fig.tight_layout()
    return fig


def plot_ids_over_time(qc: QCData):
    """Global ids alive per frame (any camera) and triangulated per frame; binned when long."""
    fig, ax = plt.subplots(figsize=(8, 3))
    alive = qc.active.sum(1) if qc.active.size else np.zeros(qc.n_frames)
    pf = qc.points["frame"].to_numpy(np.int64)
    tri = np.bincount(pf[(pf >= 0) & (pf < qc.n_frames)], minlength=qc.n_frames)
    for y, lab, col in ((alive, "alive (any camera)", "tab:blue"), (tri, "triangulated", "tab:green")):
        x, lo, mean, hi = _binned(np.asarray(y))
        ax.fill_between(x, lo, hi, color=col, alpha=0.2, lw=0)
        ax.plot(x, mean, lw=0.9, color=col, label=lab)
    ax.set(xlabel="frame", ylabel="global ids", title="Global ids over time")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


PLOTS = {
    "detections_per_frame": plot_detections_per_frame,
    "tracklet_lengths": plot_tracklet_lengths,
    "coasted_fraction": plot_coasted_fraction,
    "cameras_per_target": plot_cameras_per_target,
    "reprojection_error": plot_reprojection_error,
    "top_view": plot_top_view,
    "identity_timeline": plot_identity_timeline,
    "ids_over_time": plot_ids_over_time,
}


def write_summary(metrics: dict, path: str | os.PathLike) -> None:
    """Proxy metrics as a two-column TSV (``metric``, ``value``), atomically."""
    with atomic_path(path) as tmp:
        pd.DataFrame({"metric": list(metrics), "value": [f"{v:.4g}" if isinstance(v, float) else v
                                                          for v in metrics.values()]}).to_csv(tmp, sep="\t",
                                                                                             index=False)


def make_qc_plots(qc: QCData, outputs: dict[str, str | os.PathLike], title: str = "") -> None:
    """Write every plot named in ``outputs`` (name → PNG path) and ``summary`` (→ TSV), atomically."""
    unknown = set(outputs) - set(PLOTS) - {"summary"}
    if unknown:
        raise ValueError(f"unknown QC outputs {sorted(unknown)}; known: {sorted(PLOTS) + ['summary']}")
    for name, path in outputs.items():
        if name == "summary":
            write_summary(proxy_metrics(qc), path)
            continue
        fig = PLOTS[name](qc)
        if title:
            fig.text(0.99, 0.995, title, fontsize=7, ha="right", va="top", color="0.4")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)  # tight_layout already fitted the axes: no second draw for a tight bbox
        plt.close(fig)
