"""Calibration QC: the ``calibrate`` rule's figure and its end-to-end entry point."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import atomic_path
from .anipose import write_anipose_toml
from .board import Board
from .board_solve import Observations, RigSolution, board_report, calibrate_rig, detect_board
from .formats import find_camera, load_calibration

log = logging.getLogger("mctrack.calibrate")


def plot_calibration(report: dict, sol: RigSolution, obs: Observations, path: str | os.PathLike, title: str = "") -> None:
    """Write the calibration QC figure (PNG): residuals per camera, square lengths per view, rig top view.

    Panels: (1) bundle-adjustment residual distribution per camera (px, log
    count); (2) triangulated square length per board view relative to the
    board's (%); (3) camera centres and board placements in the world x–y plane (m).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    r = np.linalg.norm(sol.residuals, axis=1)
    bins = np.linspace(0, max(1.0, np.percentile(r, 99.5)), 40)
    for c, name in enumerate(obs.cameras):
        m = report["cameras"][name]
        ax[0].hist(r[sol.obs_cam == c], bins=bins, histtype="step", lw=1.5,
                   label=f"{name}: median {m['bundle_median_px']:.2f} px")
    ax[0].set(xlabel="reprojection error (px)", ylabel="corners", yscale="log", title="bundle adjustment residuals")
    ax[0].legend(fontsize=8)
    views = sorted(report["views"], key=int)
    rel = [100 * report["views"][v]["square_rel_error"] for v in views]
    ax[1].bar([str(v) for v in views], rel, color="tab:blue")
    ax[1].axhline(0, color="k", lw=0.8)
    ax[1].set(xlabel="board view", ylabel="square length error (%)",
              title=f"triangulated squares vs {1000 * report['square_length_m']:.2f} mm")
    for cam in sol.cameras:
        C = cam.center
        ax[2].plot(C[0], C[1], "^", ms=10)
        ax[2].annotate(cam.name, C[:2])
    for T in sol.board_poses.values():
        ax[2].plot(*T[:2, 3], "s", color="grey", ms=4)
    ax[2].set(xlabel="x (m)", ylabel="y (m)", title="cameras (▲) and board origins (■)", aspect="equal")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def calibrate_session(boards: dict[str, str], cfg: dict, out_toml: str | os.PathLike, out_report: str | os.PathLike,
                      out_plot: str | os.PathLike, intrinsics: str | None = None,
                      calibration_names: dict[str, str | None] | None = None, title: str = "") -> dict:
    """Calibrate a rig from board footage and write our TOML, a JSON report and the QC figure.

    ``boards``: ``{camera: footage}``; ``cfg``: the config's ``calibrate``
    section (``board``, ``world_view``, ``fix_k3``, ``min_corners``,
    ``video_step``, ``unit``); ``intrinsics``: calibration file whose K/dist
    are kept (extrinsics-only case) or None (full calibration). Returns the
    report dict (see :func:`~mctrack.calibration.board_solve.board_report`).
    """
    board = Board.from_config(cfg.get("board") or {}, source="config calibrate.board")
    obs = detect_board(board, boards, min_corners=int(cfg.get("min_corners", 8)), step=int(cfg.get("video_step", 10)))
    intr = None
    if intrinsics:
        rig = load_calibration(intrinsics, unit=cfg.get("unit"))
        names = calibration_names or {}
        intr = {k: find_camera(rig, k, names.get(k), source=intrinsics) for k in boards}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scipy's usual stack
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(1):  # lsmr's small BLAS calls slow down many-fold with threads on a busy CPU
            sol = calibrate_rig(board, obs, intr, world_view=cfg.get("world_view"), fix_k3=bool(cfg.get("fix_k3", False)))
    else:
        sol = calibrate_rig(board, obs, intr, world_view=cfg.get("world_view"), fix_k3=bool(cfg.get("fix_k3", False)))
    report = board_report(board, obs, sol)
    report["mode"] = "extrinsics" if intrinsics else "full"
    for name, m in report["cameras"].items():
        log.info("camera %s: reprojection error median %.3f px (bundle), %.3f px (triangulated corners), %d views",
                 name, m["bundle_median_px"], m["triangulated_median_px"] or np.nan, m["views"])
    for v, m in report["views"].items():
        log.info("board view %s: %d cameras, triangulated square %.3f mm (%+.3f%%)", v, m["n_cameras"],
                 1000 * m["square_mean_m"], 100 * m["square_rel_error"])
    meta = {"mode": report["mode"], "world_view": int(sol.world_view),
            "square_rel_error_max": report["square_rel_error_max"]}
    meta.update({f"median_px_{k}": v["bundle_median_px"] for k, v in report["cameras"].items()})
    write_anipose_toml(sol.cameras, out_toml, metadata=meta)
    with atomic_path(out_report) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1))
    plot_calibration(report, sol, obs, out_plot, title)
    return report
