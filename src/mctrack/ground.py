"""Ground-plane geometry: image → floor homographies and ground positions of tracklet rows (issue 8, item 2).

Conventions
-----------
Ground frame
    The world plane ``z = 0`` in metres (the calibration's world frame when the
    homography comes from a full calibration; the frame of the ``x, y``
    columns of the point-pair CSV otherwise). A ground position is ``(x, y)``
    in that frame; as a 3D point it is ``(x, y, 0)``.
Pixels
    ``u, v`` in the distorted image as decoded from the video, origin at the
    top-left pixel corner (the convention of :mod:`mctrack.tables`).
Homography
    ``H`` (3×3, float64) maps homogeneous pixels to homogeneous ground
    points: ``[x w, y w, w]ᵀ = H [u, v, 1]ᵀ``. ``H`` is scaled so that
    ``w > 0`` for image points below the horizon (in front of the camera);
    points with ``w <= 0`` have no ground position (NaN).
Foot point
    ``bottom_center``: the middle of a box's bottom edge ``((x1 + x2)/2, y2)``
    — where an upright person or animal touches the floor; ``center``: the
    box centre (for targets seen from straight above).

Homography CSV (camera sheet column ``homography``)
    Header ``u,v,x,y``; one row per landmark: ``u, v`` its pixel position,
    ``x, y`` its floor position in m; at least 4 rows not all on one line.
    Fitted with ``cv2.findHomography`` (RANSAC, threshold
    ``ransac_threshold`` m in ground units on the forward mapping).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .calibration import Camera
from .errors import InputError

__all__ = ["GroundMap", "fit_homography", "read_homography_csv", "homography_from_camera", "foot_points",
           "ground_positions", "ground_std", "FOOT_POINTS"]

log = logging.getLogger("mctrack.ground")

FOOT_POINTS = ("bottom_center", "center")


@dataclass(frozen=True)
class GroundMap:
    """Image → ground mapping of one camera.

    ``H`` (3, 3) float64: pixel → ground homography (see the module
    docstring); when ``camera`` is given, pixels are first undistorted to
    normalised image coordinates with the camera's lens model and ``H`` acts
    on those (``H = [r1 r2 t]⁻¹``). ``rms_error`` (m): RMS ground distance of
    the fitted point pairs (0 for a calibration-derived map), ``source``: the
    file it came from, ``size`` the image ``(width, height)`` px if known (a
    box touching the bottom edge then has no foot point: the feet are out of
    view).
    """

    H: np.ndarray
    camera: Camera | None = None
    rms_error: float = 0.0
    source: str = ""
    size: tuple[int, int] | None = None

    def to_ground(self, uv: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` px to ``(N, 2) float64`` ground m; NaN where the pixel is at/above the horizon."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        out = np.full((len(uv), 2), np.nan)
        ok = np.isfinite(uv).all(axis=1)
        if not ok.any():
            return out
        p = self.camera.normalize(uv[ok]) if self.camera is not None else uv[ok]
        h = np.c_[p, np.ones(len(p))] @ self.H.T
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = h[:, :2] / h[:, 2:3]
        xy[h[:, 2] <= 1e-12] = np.nan
        out[ok] = xy
        return out

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` ground m back to ``(N, 2)`` px (inverse of :meth:`to_ground`)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        h = np.c_[xy, np.ones(len(xy))] @ np.linalg.inv(self.H).T
        p = h[:, :2] / h[:, 2:3]
        if self.camera is None:
            return p
        X = np.c_[xy, np.zeros(len(xy))]
        return self.camera.project(X)


def _oriented(H: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Scale ``H`` so that ``w > 0`` at the mean of ``uv`` (the fitted landmarks are below the horizon)."""
    w = np.r_[uv.mean(axis=0), 1.0] @ H[2]
    return H / np.linalg.norm(H) * (1.0 if w > 0 else -1.0)


def fit_homography(uv: np.ndarray, xy: np.ndarray, ransac_threshold: float = 0.1,
                   source: str = "") -> GroundMap:
    """Fit the pixel → ground homography of ≥ 4 point pairs with RANSAC.

    Parameters
    ----------
    uv : (N, 2) float
        Landmark pixels (px).
    xy : (N, 2) float
        Their ground positions (m).
    ransac_threshold : float
        RANSAC inlier threshold in m on the ground (``cv2.findHomography``'s
        ``ransacReprojThreshold``; the homography maps pixels to metres, so its
        reprojection error is measured on the ground).

    Returns a :class:`GroundMap` whose ``rms_error`` is the RMS ground
    distance (m) of the inlier pairs. Raises :class:`~mctrack.errors.InputError`
    (naming ``source``) for fewer than 4 pairs, degenerate (collinear) points,
    or fewer than 4 inliers.
    """
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(uv) < 4 or len(uv) != len(xy):
        raise InputError(source or None, "homography point pairs", f"need >= 4 pairs u,v,x,y, got {len(uv)}",
                         "measure at least 4 floor landmarks (not all on one line) in the image and on the floor")
    H, mask = cv2.findHomography(uv, xy, cv2.RANSAC, float(ransac_threshold))
    if H is None or mask is None or int(mask.sum()) < 4 or abs(np.linalg.det(H)) < 1e-15:
        raise InputError(source or None, "homography point pairs", "no homography fits these pairs (collinear or "
                         "inconsistent points)", "use >= 4 landmarks spread over the floor, not all on one line")
    H = _oriented(H, uv[mask.ravel() > 0])
    gm = GroundMap(H=H, source=str(source))
    inl = mask.ravel() > 0
    err = np.linalg.norm(gm.to_ground(uv[inl]) - xy[inl], axis=1)
    gm = GroundMap(H=H, rms_error=float(np.sqrt(np.mean(err ** 2))), source=str(source))
    log.info("homography %s: %d/%d inlier pairs, RMS ground error %.3f m", source or "(pairs)", int(inl.sum()),
             len(uv), gm.rms_error)
    return gm


def read_homography_csv(path: str | os.PathLike, ransac_threshold: float = 0.1) -> GroundMap:
    """Read a point-pair CSV (header ``u,v,x,y``) and fit its homography (:func:`fit_homography`).

    Raises :class:`~mctrack.errors.InputError` naming the file and the first
    bad row (1-based data row, header = row 0) and column: missing file,
    missing column, non-numeric or non-finite value, fewer than 4 rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "homography CSV not found", "check the camera sheet's homography column")
    try:
        df = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"not a CSV file ({exc})", "write a header u,v,x,y and one row per landmark") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    for col in ("u", "v", "x", "y"):
        if col not in df.columns:
            raise InputError(path, f"column '{col}'", "missing", "the header must be u,v,x,y")
    vals = np.full((len(df), 4), np.nan)
    for j, col in enumerate(("u", "v", "x", "y")):
        num = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(path, f"row {i + 1}, column '{col}'", f"not a finite number: {df[col].iloc[i]!r}",
                             "write pixel u,v and ground x,y (m) as numbers")
        vals[:, j] = num
    return fit_homography(vals[:, :2], vals[:, 2:], ransac_threshold, source=str(path))


def homography_from_camera(camera: Camera) -> GroundMap:
    """The ground map of a fully calibrated camera and the world plane ``z = 0``.

    A floor point ``(x, y, 0)`` projects to normalised coordinates
    ``~ [r1 r2 t] [x, y, 1]ᵀ`` (``r1, r2`` the first two columns of ``R``,
    world→camera ``x_cam = R X + t``; Hartley & Zisserman, *Multiple View
    Geometry*, 2nd ed., §8.1.1), so ``H = [r1 r2 t]⁻¹`` on undistorted
    normalised coordinates (the returned map undistorts with the camera's
    lens model first). Raises :class:`~mctrack.errors.InputError` when the
    camera centre lies on the ground plane (``[r1 r2 t]`` singular).
    """
    R, t = camera.R, np.asarray(camera.tvec, dtype=np.float64).ravel()
    M = np.c_[R[:, 0], R[:, 1], t]
    if abs(np.linalg.det(M)) < 1e-12:
        raise InputError(None, f"camera '{camera.name}'", "camera centre on the ground plane z = 0",
                         "check the calibration's world frame (z must be up from the floor)")
    H = np.linalg.inv(M)
    # orientation: w = 1 / depth must be positive in front of the camera; depth λ of a floor point satisfies
    # λ [x_n, 1] = M [x, y, 1], and [x, y, 1] = H [x_n, 1] / w, so w = 1/λ > 0 with H = M⁻¹ as it is.
    return GroundMap(H=H, camera=camera, source=f"calibration ({camera.name})",
                     size=tuple(int(v) for v in camera.size) if camera.size else None)


def foot_points(tracklets: pd.DataFrame, mode: str = "bottom_center") -> np.ndarray:
    """Foot pixels ``(N, 2) float64`` px of TRACKLET2D/DETECTION rows (see the module docstring for ``mode``)."""
    if mode not in FOOT_POINTS:
        raise InputError(None, "ground.foot_point", f"unknown foot point {mode!r}", f"use one of {FOOT_POINTS}")
    x1, y1, x2, y2 = (tracklets[c].to_numpy(np.float64) for c in ("x1", "y1", "x2", "y2"))
    if mode == "bottom_center":
        return np.c_[(x1 + x2) / 2, y2]
    return np.c_[(x1 + x2) / 2, (y1 + y2) / 2]


def ground_positions(tracklets: pd.DataFrame, maps: dict[str, GroundMap],
                     foot_point: str = "bottom_center", foot_offset: float = 0.0) -> np.ndarray:
    """Ground position ``(N, 2) float64`` m of every tracklet row (NaN for cameras without a map or above the horizon).

    ``tracklets``: TRACKLET2D rows of any cameras; ``maps``: camera name →
    :class:`GroundMap`. ``foot_offset`` (m): the bottom of a box is the
    *nearest* point of the target's footprint, not its centre; the position
    is moved this far away from the camera (along the floor direction in
    which the image row decreases: ``g(u, v - 1) - g(u, v)``, normalised) —
    e.g. the footprint radius (0.25 m for the synthetic 0.5 m cylinders,
    ~0.1–0.15 m for people). Rows whose box bottom is within 2 px of the
    image's bottom edge (when the map knows the image ``size``) get NaN with
    ``bottom_center``: the feet are below the image, the box bottom is the
    image border, not the floor contact. Vectorised per camera.
    """
    uv = foot_points(tracklets, foot_point)
    y2 = tracklets["y2"].to_numpy(np.float64)
    out = np.full((len(tracklets), 2), np.nan)
    cams = tracklets["camera_id"].astype(str).to_numpy()
    for name, gm in maps.items():
        sel = cams == name
        if sel.any():
            g = gm.to_ground(uv[sel])
            if gm.size is not None and foot_point == "bottom_center":
                g[y2[sel] >= gm.size[1] - 2] = np.nan
            if foot_offset:
                away = gm.to_ground(uv[sel] - [0.0, 1.0]) - g
                with np.errstate(invalid="ignore", divide="ignore"):
                    g = g + foot_offset * away / np.linalg.norm(away, axis=1, keepdims=True)
            out[sel] = g
    return out


def ground_std(tracklets: pd.DataFrame, maps: dict[str, GroundMap], foot_point: str = "bottom_center",
               pixel_sigma: float = 2.0) -> np.ndarray:
    """Ground-position standard deviation ``(N,) float64`` m of every tracklet row from foot-point pixel noise.

    First-order propagation of an isotropic ``pixel_sigma`` px error of the
    foot point through the homography (finite differences of
    :meth:`GroundMap.to_ground` along ``u`` and ``v``): ``s = sqrt((|∂g/∂u|² +
    |∂g/∂v|²) / 2) · pixel_sigma`` per ground axis. Grows with the distance
    from the camera (a pixel covers more floor far away). NaN where the
    position is NaN.
    """
    uv = foot_points(tracklets, foot_point)
    out = np.full(len(tracklets), np.nan)
    cams = tracklets["camera_id"].astype(str).to_numpy()
    for name, gm in maps.items():
        sel = cams == name
        if sel.any():
            g0 = gm.to_ground(uv[sel])
            du = gm.to_ground(uv[sel] + [1.0, 0.0]) - g0
            dv = gm.to_ground(uv[sel] + [0.0, 1.0]) - g0
            out[sel] = np.sqrt((np.sum(du ** 2, axis=1) + np.sum(dv ** 2, axis=1)) / 2) * pixel_sigma
    return out
