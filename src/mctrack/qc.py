"""Quality-control plots (matplotlib, Agg) from the stage tables.

Each plot is a function ``plot_<name>(...) -> Figure`` so it can be used in a
notebook; :func:`make_qc_plots` writes all of them as PNG for the report.
Plots:

- ``detections_per_frame``: detections per frame, one line per camera.
- ``tracklet_lengths``: histogram of tracklet lengths (frames, detected + coasted) per camera.
- ``coasted_fraction``: fraction of tracklet rows that are coasted, per camera.
- ``cameras_per_target``: how many cameras each triangulated point used, and
  how many cameras each global id was linked across.
- ``reprojection_error``: distribution of per-camera reprojection residuals (px).
- ``top_view``: x–y view of the 3D trajectories, one colour per global id.
- ``identity_timeline``: for every global id seen by ≥ 2 cameras, which
  camera sees it at which frame (a broken bar = an identity gap or switch).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .errors import atomic_path  # noqa: E402


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_detections_per_frame(detections: pd.DataFrame, n_frames: int, cameras: list[str]):
    """Detections per frame (count) for each camera against session frame."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for cam in cameras:
        f = detections.loc[detections["camera_id"] == cam, "frame"].to_numpy()
        ax.plot(np.arange(n_frames), np.bincount(f, minlength=n_frames)[:n_frames], lw=1, label=cam)
    ax.set(xlabel="frame", ylabel="detections", title="Detections per frame")
    ax.legend(fontsize=7, ncol=min(len(cameras), 6))
    return fig


def plot_tracklet_lengths(tracklets: pd.DataFrame, cameras: list[str]):
    """Histogram of tracklet lengths (rows per track, frames) per camera, log-spaced bins."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lengths = tracklets.groupby(["camera_id", "track_id"]).size()
    if lengths.empty:
        _empty(ax, "no tracklets")
    else:
        bins = np.unique(np.geomspace(1, max(lengths.max(), 2) + 1, 25).astype(int))
        for cam in cameras:
            if cam in lengths.index.get_level_values(0):
                ax.hist(lengths.loc[cam].to_numpy(), bins=bins, histtype="step", label=cam)
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    ax.set(xlabel="tracklet length (frames)", ylabel="tracklets", title="Tracklet lengths")
    return fig


def plot_coasted_fraction(tracklets: pd.DataFrame, cameras: list[str]):
    """Bar per camera: coasted rows / all tracklet rows."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    coasted = (tracklets["frame_status"] == "coasted").groupby(tracklets["camera_id"]).mean()
    ax.bar(cameras, [coasted.get(c, np.nan) for c in cameras], color="tab:orange")
    ax.set(ylabel="coasted fraction", ylim=(0, 1), title="Coasted (predicted) tracklet rows")
    return fig


def plot_cameras_per_target(points: pd.DataFrame, association: pd.DataFrame, n_cameras: int):
    """Left: cameras used per 3D point; right: cameras each global id is linked across."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.5))
    bins = np.arange(0.5, n_cameras + 1.5)
    if len(points):
        a1.hist(points["n_cameras"], bins=bins, rwidth=0.8)
    else:
        _empty(a1, "no 3D points")
    a1.set(xlabel="cameras per 3D point", ylabel="points", title="Cameras per triangulated point")
    per_gid = association.groupby("global_id")["camera_id"].nunique()
    a2.hist(per_gid, bins=bins, rwidth=0.8, color="tab:green")
    a2.set(xlabel="cameras linked", ylabel="global ids", title="Cameras per global id")
    fig.tight_layout()
    return fig


def plot_reprojection_error(residuals: pd.DataFrame, cameras: list[str]):
    """Histogram of reprojection residuals (px) per camera, with medians in the legend."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if residuals.empty:
        _empty(ax, "no 3D points (single camera or uncalibrated)")
    else:
        hi = np.nanpercentile(residuals["residual_px"], 99) or 1.0
        bins = np.linspace(0, hi, 40)
        for cam in cameras:
            r = residuals.loc[residuals["camera_id"] == cam, "residual_px"].to_numpy()
            if len(r):
                ax.hist(r, bins=bins, histtype="step", label=f"{cam} (median {np.median(r):.1f} px)")
        ax.legend(fontsize=7)
    ax.set(xlabel="reprojection error (px)", ylabel="observations", title="Reprojection error")
    return fig


def plot_top_view(points: pd.DataFrame):
    """x–y trajectories (world units), one colour per global id; marker size ∝ nothing, lines only."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if points.empty:
        _empty(ax, "no 3D points")
    else:
        cmap = plt.get_cmap("tab20")
        for i, (gid, p) in enumerate(points.sort_values("frame").groupby("global_id")):
            ax.plot(p["x"], p["y"], ".", ms=2, color=cmap(i % 20), label=str(gid) if i < 20 else None)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(title="global id", fontsize=6, markerscale=4, loc="upper right", ncol=2)
    ax.set(xlabel="x (m)", ylabel="y (m)", title="3D trajectories, top view")
    return fig


def plot_identity_timeline(tracklets: pd.DataFrame, association: pd.DataFrame, cameras: list[str], n_frames: int):
    """For each global id linked across ≥ 2 cameras: frames at which each camera has a detected box."""
    multi = association[association["n_linked_cameras"] >= 2]
    gids = sorted(multi["global_id"].unique())[:30]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.35 * len(gids) * len(cameras) ** 0.5)))
    if not gids:
        _empty(ax, "no global id seen by two or more cameras")
    else:
        det = tracklets[tracklets["frame_status"] == "detected"].merge(
            multi[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"])
        cmap = plt.get_cmap("tab10")
        h = 0.8 / len(cameras)
        for row, gid in enumerate(gids):
            d = det[det["global_id"] == gid]
            for c, cam in enumerate(cameras):
                f = d.loc[d["camera_id"] == cam, "frame"].to_numpy()
                ax.plot(f, np.full(f.shape, row - 0.4 + (c + 0.5) * h), "|", ms=3, color=cmap(c % 10),
                        label=cam if row == 0 else None)
        ax.set_yticks(range(len(gids)), [str(g) for g in gids])
        ax.set_xlim(0, n_frames)
        ax.legend(fontsize=7, ncol=len(cameras), loc="upper center", bbox_to_anchor=(0.5, -0.15))
    ax.set(xlabel="frame", ylabel="global id", title="Which camera sees which global id")
    fig.tight_layout()
    return fig


def make_qc_plots(detections: pd.DataFrame, tracklets: pd.DataFrame, association: pd.DataFrame,
                  points: pd.DataFrame, residuals: pd.DataFrame, n_frames: int, cameras: list[str],
                  outputs: dict[str, str | os.PathLike], title: str = "") -> None:
    """Write every QC plot named in ``outputs`` (plot name → PNG path), atomically."""
    makers = {
        "detections_per_frame": lambda: plot_detections_per_frame(detections, n_frames, cameras),
        "tracklet_lengths": lambda: plot_tracklet_lengths(tracklets, cameras),
        "coasted_fraction": lambda: plot_coasted_fraction(tracklets, cameras),
        "cameras_per_target": lambda: plot_cameras_per_target(points, association, len(cameras)),
        "reprojection_error": lambda: plot_reprojection_error(residuals, cameras),
        "top_view": lambda: plot_top_view(points),
        "identity_timeline": lambda: plot_identity_timeline(tracklets, association, cameras, n_frames),
    }
    unknown = set(outputs) - set(makers)
    if unknown:
        raise ValueError(f"unknown QC plots {sorted(unknown)}; known: {sorted(makers)}")
    for name, path in outputs.items():
        fig = makers[name]()
        if title:
            fig.suptitle(title, fontsize=8, x=0.99, ha="right")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
        plt.close(fig)
