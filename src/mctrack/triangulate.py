"""Multi-view triangulation of associated tracklet centroids.

For every ``(frame, global_id)`` seen by at least two calibrated cameras the
3D point is the linear (DLT) least-squares solution in undistorted normalised
image coordinates (Hartley & Zisserman, *Multiple View Geometry*, 2nd ed.,
§12.2), solved for all points at once with a batched SVD. Cameras whose
reprojection error exceeds ``max_reprojection_error`` px are dropped one at a
time (worst first) while at least two cameras remain, and the point is solved
again. Each point gets:

- ``reprojection_error``: mean over the cameras used of the distance in px
  between the observed centroid and the projected 3D point (with distortion);
- ``position_std``: linearised 3D standard deviation (m, RMS over x, y, z),
  ``sqrt(trace(σ² (JᵀJ)⁻¹))`` with ``J`` the stacked px-projection Jacobians
  (H&Z §5.2.3, first-order error propagation) and
  ``σ = max(rms residual · sqrt(2n / (2n − 3)), centroid_sigma)`` px — the
  residual-based estimate of the centroid noise, floored at the configured
  centroid noise;
- ``confidence``: mean detection confidence of the cameras used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .calibration import Camera
from .tables import POINTS3D, RESIDUALS


@dataclass(frozen=True)
class TriangulationConfig:
    """Settings of :func:`triangulate`.

    ``max_reprojection_error``: px; a camera above it is dropped while ≥ 2
    remain (default 15 px, about 1.5 % of a 1088 px wide view; Pose2Sim's
    default ``reproj_error_threshold_triangulation`` is 15 px).
    ``centroid_sigma``: px, assumed noise of one centroid, floor of the
    uncertainty estimate (default 2 px).
    ``use_coasted``: also triangulate coasted (predicted) boxes (default False).
    ``batch_size``: points solved per batched SVD (memory bound).
    """

    max_reprojection_error: float = 15.0
    centroid_sigma: float = 2.0
    use_coasted: bool = False
    batch_size: int = 65536

    @classmethod
    def from_dict(cls, d: dict | None) -> "TriangulationConfig":
        """Build from the config's ``triangulate`` section (already schema-validated)."""
        d = dict(d or {})
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def observations(tracklets: pd.DataFrame, association: pd.DataFrame, use_coasted: bool = False) -> pd.DataFrame:
    """Join tracklet rows with their global ids.

    Returns one row per ``(frame, global_id, camera_id)`` with ``cx, cy`` (px)
    and ``confidence``; coasted rows are dropped unless ``use_coasted``. Should
    two rows of one camera share a frame and global id (association forbids
    it), the higher-confidence one is kept.
    """
    obs = tracklets if use_coasted else tracklets[tracklets["frame_status"] == "detected"]
    obs = obs.merge(association[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"], how="inner")
    obs = obs.sort_values(["frame", "global_id", "camera_id", "confidence"], ascending=[True, True, True, False])
    obs = obs.drop_duplicates(["frame", "global_id", "camera_id"], keep="first")
    return obs[["frame", "global_id", "camera_id", "cx", "cy", "confidence"]].reset_index(drop=True)


def _solve_dlt(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Solve ``(G, C, 2, 4)`` DLT rows weighted by ``(G, C)`` 0/1 masks → ``(G, 3)``."""
    G, C = w.shape
    M = (A * w[:, :, None, None]).reshape(G, 2 * C, 4)
    _, _, vt = np.linalg.svd(M, full_matrices=False)
    Xh = vt[:, -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return Xh[:, :3] / Xh[:, 3:4]


def triangulate_points(uv: np.ndarray, mask: np.ndarray, cameras: list[Camera],
                       max_reprojection_error: float = 15.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate ``G`` points from up to ``C`` cameras at once.

    Parameters
    ----------
    uv : (G, C, 2) float64
        Observed px (distorted image); ignored where ``mask`` is False.
    mask : (G, C) bool
        Which cameras observe each point; rows with fewer than 2 give NaN.
    cameras : list of C :class:`~mctrack.calibration.Camera`
    max_reprojection_error : float
        px; worst camera dropped (and point re-solved) while above it and ≥ 3 used.

    Returns
    -------
    X : (G, 3) float64 world points (NaN where < 2 cameras)
    used : (G, C) bool cameras kept
    proj : (G, C, 2) float64 reprojection of X in each camera (px, NaN where behind)
    """
    G, C = mask.shape
    A = np.zeros((G, C, 2, 4))
    for c, cam in enumerate(cameras):
        sel = mask[:, c]
        if not sel.any():
            continue
        xy = cam.normalize(uv[sel, c])
        Rt = np.hstack([cam.R, cam.tvec[:, None]])
        rows = np.stack([xy[:, :1] * Rt[2] - Rt[0], xy[:, 1:2] * Rt[2] - Rt[1]], axis=1)  # (n, 2, 4)
        rows /= np.linalg.norm(rows, axis=2, keepdims=True)
        A[sel, c] = rows
    used = mask.copy()
    proj = np.full((G, C, 2), np.nan)
    X = np.full((G, 3), np.nan)
    todo = np.flatnonzero(used.sum(1) >= 2)
    while todo.size:
        X[todo] = _solve_dlt(A[todo], used[todo].astype(np.float64))
        for c, cam in enumerate(cameras):
            sel = todo[used[todo, c]]
            proj[sel, c] = cam.project(X[sel])
        err = np.linalg.norm(proj[todo] - uv[todo], axis=2)
        err = np.where(used[todo], err, -np.inf)
        err = np.where(np.isnan(err), np.inf, err)  # behind a camera counts as worst
        worst = np.argmax(err, axis=1)
        bad = (err[np.arange(todo.size), worst] > max_reprojection_error) & (used[todo].sum(1) >= 3)
        todo = todo[bad]
        used[todo, worst[bad]] = False
    X[used.sum(1) < 2] = np.nan
    return X, used, proj


def position_std(X: np.ndarray, used: np.ndarray, cameras: list[Camera], sigma_px: np.ndarray) -> np.ndarray:
    """Linearised 3D standard deviation (m, RMS over axes) of triangulated points.

    ``X (G, 3)``, ``used (G, C)``, ``sigma_px (G,)`` px noise per point. Uses
    the pinhole Jacobian ``∂(u, v)/∂X = [[fx, 0, -fx·x/z], [0, fy, -fy·y/z]]·R / z``
    (distortion ignored: a first-order effect on the Jacobian only).
    """
    G, C = used.shape
    JtJ = np.zeros((G, 3, 3))
    for c, cam in enumerate(cameras):
        sel = used[:, c] & np.isfinite(X).all(1)
        if not sel.any():
            continue
        Xc = cam.world_to_camera(X[sel])
        x, y, z = Xc[:, 0], Xc[:, 1], Xc[:, 2]
        fx, fy = cam.K[0, 0], cam.K[1, 1]
        J = np.zeros((sel.sum(), 2, 3))
        J[:, 0, 0] = fx / z
        J[:, 0, 2] = -fx * x / z**2
        J[:, 1, 1] = fy / z
        J[:, 1, 2] = -fy * y / z**2
        J = J @ cam.R
        JtJ[sel] += np.einsum("nki,nkj->nij", J, J)
    out = np.full(G, np.nan)
    ok = used.sum(1) >= 2
    if ok.any():
        cov = np.linalg.pinv(JtJ[ok])
        out[ok] = sigma_px[ok] * np.sqrt(np.clip(np.trace(cov, axis1=1, axis2=2), 0, None))
    return out


def triangulate(tracklets: pd.DataFrame, association: pd.DataFrame, cameras: dict[str, Camera],
                cfg: TriangulationConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Triangulate every ``(frame, global_id)`` seen by ≥ 2 cameras.

    Parameters
    ----------
    tracklets : TRACKLET2D table of all cameras of the session.
    association : ASSOCIATION table mapping ``(camera_id, track_id)`` → ``global_id``.
    cameras : calibrated cameras keyed by sheet ``camera_id``; tracklets of
        cameras not in it are ignored.
    cfg : :class:`TriangulationConfig`.

    Returns
    -------
    points : POINTS3D table (one row per triangulated point, world units).
    residuals : RESIDUALS table (one row per camera used by a point).
    """
    cfg = cfg or TriangulationConfig()
    names = sorted(cameras)
    obs = observations(tracklets, association, cfg.use_coasted)
    obs = obs[obs["camera_id"].isin(names)]
    cam_idx = pd.Categorical(obs["camera_id"], categories=names).codes
    keys = obs[["frame", "global_id"]].to_numpy()
    uniq, g = np.unique(keys, axis=0, return_inverse=True) if len(keys) else (np.zeros((0, 2), np.int64), np.zeros(0, int))
    g = g.ravel()
    n_per = np.bincount(g, minlength=len(uniq))
    keep_groups = np.flatnonzero(n_per >= 2)
    remap = np.full(len(uniq), -1)
    remap[keep_groups] = np.arange(keep_groups.size)
    sel = remap[g] >= 0
    g, cam_idx = remap[g[sel]], cam_idx[sel]
    cx = obs["cx"].to_numpy(np.float64)[sel]
    cy = obs["cy"].to_numpy(np.float64)[sel]
    conf = obs["confidence"].to_numpy(np.float64)[sel]
    uniq = uniq[keep_groups]
    G, C = len(uniq), len(names)
    cams = [cameras[n] for n in names]

    pts_parts, res_parts = [], []
    for b0 in range(0, G, cfg.batch_size):
        b1 = min(b0 + cfg.batch_size, G)
        inb = (g >= b0) & (g < b1)
        gb, cb = g[inb] - b0, cam_idx[inb]
        uv = np.full((b1 - b0, C, 2), np.nan)
        mask = np.zeros((b1 - b0, C), bool)
        cf = np.full((b1 - b0, C), np.nan)
        uv[gb, cb, 0], uv[gb, cb, 1] = cx[inb], cy[inb]
        mask[gb, cb] = True
        cf[gb, cb] = conf[inb]
        X, used, proj = triangulate_points(uv, mask, cams, cfg.max_reprojection_error)
        err = np.linalg.norm(proj - uv, axis=2)
        n_used = used.sum(1)
        err_used = np.where(used, err, np.nan)
        with np.errstate(invalid="ignore"):
            mean_err = np.nanmean(err_used, axis=1)
            rms = np.sqrt(np.nanmean(err_used**2, axis=1))
            dof_scale = np.sqrt(2 * n_used / np.maximum(2 * n_used - 3, 1))
            sigma = np.maximum(rms * dof_scale, cfg.centroid_sigma)
            conf_mean = np.nanmean(np.where(used, cf, np.nan), axis=1)
        std = position_std(X, used, cams, sigma)
        ok = np.isfinite(X).all(1)
        key = uniq[b0:b1]
        pts_parts.append(pd.DataFrame({
            "frame": key[ok, 0], "global_id": key[ok, 1], "x": X[ok, 0], "y": X[ok, 1], "z": X[ok, 2],
            "reprojection_error": mean_err[ok], "n_cameras": n_used[ok], "position_std": std[ok],
            "confidence": conf_mean[ok]}))
        gi, ci = np.nonzero(used & ok[:, None])
        res_parts.append(pd.DataFrame({
            "frame": key[gi, 0], "global_id": key[gi, 1], "camera_id": np.asarray(names, dtype=object)[ci],
            "u_obs": uv[gi, ci, 0], "v_obs": uv[gi, ci, 1], "u_proj": proj[gi, ci, 0], "v_proj": proj[gi, ci, 1],
            "residual_px": err[gi, ci]}))
    points = POINTS3D.coerce(pd.concat(pts_parts, ignore_index=True)) if pts_parts else POINTS3D.empty()
    residuals = RESIDUALS.coerce(pd.concat(res_parts, ignore_index=True)) if res_parts else RESIDUALS.empty()
    return points, residuals
