"""Camera and rig model: OpenCV pinhole / fisheye cameras, world→camera extrinsics, metres.

A :class:`Camera` is a pinhole camera with OpenCV lens distortion (or the
OpenCV fisheye model) and extrinsics in the world→camera convention used by
OpenCV, anipose and Pose2Sim::

    x_cam = R · X_world + t,     R = Rodrigues(rvec)
    (u, v) = distort(K, dist, x_cam / z_cam)            # px, origin at top-left pixel's corner − 0.5

A :class:`Rig` is a dict of named cameras whose world unit is **always metres**:
every reader converts once, on read (``t`` in mm × 0.001), and records the
unit the file was written in as :attr:`Rig.source_unit`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

#: metres per unit for the world units a calibration file may be written in
UNIT_TO_M = {"m": 1.0, "cm": 0.01, "mm": 0.001}


@dataclass(frozen=True)
class Camera:
    """One calibrated camera.

    Attributes
    ----------
    name : str
        Camera name as in the calibration file.
    K : (3, 3) float64
        Intrinsic matrix in px.
    dist : (n,) float64
        OpenCV distortion coefficients ``[k1, k2, p1, p2[, k3, ...]]`` (pinhole)
        or ``[k1, k2, k3, k4]`` (fisheye).
    rvec : (3,) float64
        Rodrigues rotation, world→camera.
    tvec : (3,) float64
        Translation world→camera, world units (m).
    size : (int, int)
        Image ``(width, height)`` in px.
    fisheye : bool
        Use the OpenCV fisheye model instead of the pinhole+radial-tangential one.
    meta : dict
        Free-form facts from the file (not compared); ``intrinsics_only=True``
        marks an entry whose ``rvec``/``tvec`` are placeholders.

    Shapes are coerced on construction; a wrong number of elements raises
    ValueError (readers turn it into an InputError naming file, camera and field).
    """

    name: str
    K: np.ndarray
    dist: np.ndarray
    rvec: np.ndarray
    tvec: np.ndarray
    size: tuple[int, int]
    fisheye: bool = False
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def has_extrinsics(self) -> bool:
        """False for an intrinsics-only entry (``meta['intrinsics_only']``), e.g. before board calibration."""
        return not self.meta.get("intrinsics_only", False)

    def scaled(self, size: tuple[int, int]) -> "Camera":
        """The same camera for images resized to ``size = (width, height)`` px.

        Rule (documented scaling of a calibration to a resized video): both
        axes must scale by the same factor ``s = width / self.width`` (aspect
        ratio kept to within half a pixel); then ``fx, fy`` scale by ``s`` and
        the principal point by ``c' = (c + 0.5) · s − 0.5`` (OpenCV pixel
        centres). Distortion coefficients act on normalised coordinates and
        are unchanged. Raises ValueError when the aspect ratio differs.
        """
        W, H = self.size
        w, h = int(size[0]), int(size[1])
        s = w / W
        if abs(H * s - h) > 0.5:
            raise ValueError(f"{W}x{H} -> {w}x{h} changes the aspect ratio")
        K = self.K.copy()
        K[0, 0] *= s
        K[1, 1] *= s
        K[0, 1] *= s
        K[:2, 2] = (K[:2, 2] + 0.5) * s - 0.5
        return replace(self, K=K, size=(w, h))

    def __post_init__(self):
        object.__setattr__(self, "K", np.asarray(self.K, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "dist", np.asarray(self.dist, dtype=np.float64).ravel())
        object.__setattr__(self, "rvec", np.asarray(self.rvec, dtype=np.float64).reshape(3))
        object.__setattr__(self, "tvec", np.asarray(self.tvec, dtype=np.float64).reshape(3))
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    @property
    def R(self) -> np.ndarray:
        """(3, 3) float64 world→camera rotation matrix."""
        return cv2.Rodrigues(self.rvec)[0]

    @property
    def center(self) -> np.ndarray:
        """(3,) float64 camera centre in world coordinates: ``C = -Rᵀ t``."""
        return -self.R.T @ self.tvec

    @property
    def P(self) -> np.ndarray:
        """(3, 4) float64 projection matrix ``K [R | t]`` (ignores distortion)."""
        return self.K @ np.hstack([self.R, self.tvec[:, None]])

    def world_to_camera(self, X: np.ndarray) -> np.ndarray:
        """Transform ``(N, 3)`` world points to ``(N, 3)`` camera coordinates."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, 3)
        return X @ self.R.T + self.tvec

    def project(self, X: np.ndarray) -> np.ndarray:
        """Project ``(N, 3)`` world points to ``(N, 2) float64`` distorted px.

        Points behind the camera (z_cam <= 0) are returned as NaN.
        """
        X = np.asarray(X, dtype=np.float64).reshape(-1, 3)
        if len(X) == 0:
            return np.zeros((0, 2))
        if self.fisheye:
            uv = cv2.fisheye.projectPoints(X[:, None, :], self.rvec, self.tvec, self.K, self.dist)[0]
        else:
            uv = cv2.projectPoints(X, self.rvec, self.tvec, self.K, self.dist)[0]
        uv = uv.reshape(-1, 2)
        uv[self.world_to_camera(X)[:, 2] <= 0] = np.nan
        return uv

    def normalize(self, uv: np.ndarray) -> np.ndarray:
        """Undistort ``(N, 2)`` px to ``(N, 2) float64`` normalised image coordinates.

        The result is ``(x/z, y/z)`` in the camera frame (i.e. ``K⁻¹`` applied
        after removing distortion, OpenCV's iterative ``undistortPoints``).
        """
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2)
        if len(uv) == 0:
            return np.zeros((0, 2))
        if self.fisheye:
            xy = cv2.fisheye.undistortPoints(uv, self.K, self.dist)
        else:
            xy = cv2.undistortPoints(uv, self.K, self.dist)
        return xy.reshape(-1, 2)

    def rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Back-project ``(N, 2)`` px to world rays.

        Returns ``origin (3,)`` (the camera centre) and ``directions (N, 3)``
        unit vectors in world coordinates.
        """
        xy = self.normalize(uv)
        d_cam = np.column_stack([xy, np.ones(len(xy))])
        d = d_cam @ self.R  # Rᵀ · d_cam for each row
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return self.center, d


class Rig(dict):
    """Named cameras (``dict[str, Camera]``) of one calibration, world unit metres.

    Attributes
    ----------
    source : str or None
        The file the rig was read from.
    source_unit : str
        World unit of that file (``"m"``, ``"cm"`` or ``"mm"``); translations
        were multiplied by :data:`UNIT_TO_M` once, on read.
    interface : FlatInterface or None
        The flat refractive interface the cameras look through (the file's
        ``[interface]`` table; then every camera is a
        :class:`~mctrack.calibration.refraction.RefractiveCamera`), else None.
    """

    def __init__(self, cameras=(), source: str | os.PathLike | None = None, source_unit: str = "m",
                 interface=None):
        super().__init__(cameras)
        self.source = None if source is None else str(source)
        self.source_unit = source_unit
        self.interface = interface

    @property
    def centers(self) -> dict[str, np.ndarray]:
        """Camera centres ``{name: (3,) float64}`` in metres."""
        return {k: c.center for k, c in self.items()}


def to_metres(cam: Camera, unit: str) -> Camera:
    """Return ``cam`` with its translation converted from ``unit`` to metres."""
    return replace(cam, tvec=cam.tvec * UNIT_TO_M[unit])


def border_cut(x1, y1, x2, y2, size, near: float, far: float) -> np.ndarray:
    """``(N, 2) bool``: whether each box is cut by the image border along ``u`` (column 0) / ``v`` (column 1).

    Boxes ``x1, y1, x2, y2 (N,)`` px; ``size (N, 2)`` the ``(W, H)`` px of each
    box's image (``inf`` where unknown: never cut). Cut along ``u`` where
    ``x1 ≤ near`` or ``x2 ≥ W − far`` (``v`` alike with ``y1, y2, H``). A
    detector clips boxes to the image, so a target leaving it has an edge at
    the border; its box centre is then biased along that axis only. Used by
    :func:`mctrack.triangulate.triangulate` (``near`` = ``border_margin``,
    ``far`` = 1 + ``border_margin``) and the floor-scene row tests of
    :mod:`mctrack.associate.ground`.
    """
    size = np.asarray(size, np.float64).reshape(-1, 2)
    return np.column_stack([(np.asarray(x1) <= near) | (np.asarray(x2) >= size[:, 0] - far),
                            (np.asarray(y1) <= near) | (np.asarray(y2) >= size[:, 1] - far)])
