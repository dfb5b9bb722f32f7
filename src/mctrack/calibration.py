"""Camera models and calibration files.

A :class:`Camera` is a pinhole camera with OpenCV lens distortion (or the
OpenCV fisheye model) and extrinsics in the world→camera convention used by
OpenCV, anipose and Pose2Sim::

    x_cam = R · X_world + t,     R = Rodrigues(rvec)
    (u, v) = distort(K, dist, x_cam / z_cam)            # px, origin at top-left

World units are those of ``t`` (metres in every file mctrack writes).

Calibration files are read by :func:`load_calibration`, which dispatches on the
file format; readers register in :data:`READERS` (anipose/Pose2Sim TOML today;
OpenCV YAML and Qualisys are later additions to this table).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .errors import InputError, atomic_path


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
    """

    name: str
    K: np.ndarray
    dist: np.ndarray
    rvec: np.ndarray
    tvec: np.ndarray
    size: tuple[int, int]
    fisheye: bool = False
    meta: dict = field(default_factory=dict, compare=False)

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


# --------------------------------------------------------------------------- readers


def read_anipose_toml(path: Path) -> dict[str, Camera]:
    """Read an anipose / Pose2Sim calibration TOML.

    One table per camera with ``name``, ``size`` = [width, height] px,
    ``matrix`` (3×3 K px), ``distortions`` (OpenCV coefficients), ``rotation``
    (Rodrigues, world→camera), ``translation`` (world units) and ``fisheye``.
    Tables without a ``matrix`` key (e.g. ``[metadata]``) are ignored. The
    cameras are keyed by the table name (Pose2Sim writes the same value in
    ``name``). Source: anipose ``aniposelib.cameras.Camera.get_dict``.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, None, f"not valid TOML ({exc})", "export the calibration again") from exc
    cams = {}
    for key, tab in data.items():
        if not isinstance(tab, dict) or "matrix" not in tab:
            continue
        for req in ("size", "matrix", "distortions", "rotation", "translation"):
            if req not in tab:
                raise InputError(path, f"[{key}].{req}", "missing",
                                 "an anipose calibration table needs size, matrix, distortions, rotation, translation")
        cams[key] = Camera(name=key, K=tab["matrix"], dist=tab["distortions"], rvec=tab["rotation"],
                           tvec=tab["translation"], size=tuple(tab["size"]), fisheye=bool(tab.get("fisheye", False)))
    if not cams:
        raise InputError(path, None, "no camera tables found", "each camera needs a table with a 'matrix' key")
    return cams


def write_anipose_toml(cameras: list[Camera] | dict[str, Camera], path: str | os.PathLike) -> None:
    """Write cameras as an anipose / Pose2Sim TOML (inverse of :func:`read_anipose_toml`)."""
    if isinstance(cameras, dict):
        cameras = list(cameras.values())

    def fmt(a):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 2:
            return "[ " + ", ".join(fmt(r) for r in a) + "]"
        return "[ " + ", ".join(repr(float(x)) for x in a) + "]"

    lines = []
    for c in cameras:
        lines += [f"[{c.name}]", f'name = "{c.name}"', f"size = {fmt(c.size)}", f"matrix = {fmt(c.K)}",
                  f"distortions = {fmt(c.dist)}", f"rotation = {fmt(c.rvec)}", f"translation = {fmt(c.tvec)}",
                  f"fisheye = {'true' if c.fisheye else 'false'}", ""]
    lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines))


READERS: dict[str, Callable[[Path], dict[str, Camera]]] = {".toml": read_anipose_toml}


def load_calibration(path: str | os.PathLike) -> dict[str, Camera]:
    """Load every camera of a calibration file, keyed by its name in the file.

    The reader is chosen by file extension from :data:`READERS`. Raises
    :class:`~mctrack.errors.InputError` if the file is missing, of unknown
    format, or malformed.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "calibration file not found", "check the camera sheet's 'calibration' column")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(path, None, f"unknown calibration format '{path.suffix}'",
                         f"use one of {sorted(READERS)} (anipose/Pose2Sim TOML)")
    return reader(path)


def find_camera(cameras: dict[str, Camera], camera: str, calibration_name: str | None = None,
                source: str | os.PathLike | None = None) -> Camera:
    """Pick the calibration entry of sheet camera ``camera``.

    Order: ``calibration_name`` if given (exact), else an exact match of
    ``camera``, else the single entry whose name contains ``camera`` (so sheet
    camera ``cam01`` finds Pose2Sim's ``int_cam01_img``). Raises
    :class:`~mctrack.errors.InputError` when nothing or more than one entry matches.
    """
    if calibration_name:
        if calibration_name not in cameras:
            raise InputError(source, f"camera '{calibration_name}'", "not in calibration file",
                             f"set calibration_name to one of {sorted(cameras)}")
        return cameras[calibration_name]
    if camera in cameras:
        return cameras[camera]
    hits = [k for k in cameras if camera in k]
    if len(hits) == 1:
        return cameras[hits[0]]
    why = "matches several entries" if hits else "has no entry"
    raise InputError(source, f"camera '{camera}'", f"{why} in calibration file ({sorted(cameras)})",
                     "add a calibration_name column to the camera sheet")
