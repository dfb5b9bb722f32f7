"""Field-level parsing shared by the calibration readers: arrays of the right shape, rotations.

Every failure raises :class:`~mctrack.errors.InputError` naming the file, the
camera and the field, e.g. ``calib.toml: camera 'cam2' field 'matrix': expected
3x3 numbers, got shape (3, 2)``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import InputError

#: OpenCV pinhole distortion vector lengths (k1 k2 p1 p2 [k3 [k4 k5 k6 [s1..s4 [tx ty]]]])
PINHOLE_DIST_LENGTHS = (4, 5, 8, 12, 14)
#: tolerance on ``|RᵀR − I|`` and ``|det R − 1|`` for a rotation matrix read from a file
ORTHONORMAL_TOL = 1e-3


def where(camera: str | None, name: str) -> str:
    """The ``field`` part of an InputError: ``camera 'cam1' field 'matrix'``."""
    return f"camera '{camera}' field '{name}'" if camera is not None else f"field '{name}'"


def array(value, shape: tuple[int, ...], path: str | os.PathLike, camera: str | None, name: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (``-1`` = any length ≥ 1).

    A flat value with the right number of elements is reshaped (``rotation``
    written as 9 numbers), a row or column matrix is a vector; anything else raises InputError naming file, camera
    and field with the shape found.
    """
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(path, where(camera, name), f"expected numbers of shape {_fmt(shape)}, got {value!r}",
                         "write a (nested) list of numbers") from None
    want = int(np.prod(shape)) if -1 not in shape else None
    vector = a.ndim == 1 or (a.ndim == 2 and 1 in a.shape)  # [..], [[..]] or a column: OpenCV writes all three
    if len(shape) == 1 and vector and a.size:
        a = a.ravel()
    ok = a.shape == tuple(shape) or (want is not None and a.size == want and a.ndim == 1) \
        or (want is None and a.ndim == len(shape) and all(s in (-1, n) for s, n in zip(shape, a.shape)) and a.size)
    if not ok:
        raise InputError(path, where(camera, name), f"expected shape {_fmt(shape)}, got shape {a.shape}",
                         "check the number of rows and columns")
    if not np.isfinite(a).all():
        raise InputError(path, where(camera, name), "contains NaN or infinity", "recalibrate or fix the value")
    return a.reshape(shape) if want is not None else a


def _fmt(shape) -> str:
    return "x".join("n" if s == -1 else str(s) for s in shape)


def rotation_matrix_to_rvec(R, path, camera: str | None, name: str) -> np.ndarray:
    """(3, 3) rotation matrix → (3,) Rodrigues vector; InputError unless orthonormal with det +1."""
    R = array(R, (3, 3), path, camera, name)
    err = np.abs(R.T @ R - np.eye(3)).max()
    det = np.linalg.det(R)
    if err > ORTHONORMAL_TOL or abs(det - 1) > ORTHONORMAL_TOL:
        raise InputError(path, where(camera, name),
                         f"not a rotation matrix (max |RᵀR − I| = {err:.2g}, det = {det:.4f})",
                         "write an orthonormal world→camera rotation (det +1), or a Rodrigues vector")
    return cv2.Rodrigues(R)[0].ravel()


def check_intrinsics(K: np.ndarray, dist: np.ndarray, fisheye: bool, path, camera: str) -> None:
    """InputError unless ``K`` is upper-triangular with positive focal lengths and ``dist`` has an OpenCV length."""
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] or K[2, 0]:
        raise InputError(path, where(camera, "matrix"), f"not an intrinsic matrix: {K.tolist()}",
                         "K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 px")
    lengths = (4,) if fisheye else PINHOLE_DIST_LENGTHS
    if dist.size not in lengths:
        raise InputError(path, where(camera, "distortions"), f"{dist.size} coefficients",
                         f"OpenCV {'fisheye' if fisheye else 'pinhole'} models take {lengths} coefficients")


def image_size(value, path, camera: str, name: str = "size") -> tuple[int, int]:
    """``[width, height]`` px → ``(int, int)``; InputError unless two positive integers."""
    a = array(value, (2,), path, camera, name)
    if (a <= 0).any() or (a != np.round(a)).any():
        raise InputError(path, where(camera, name), f"{a.tolist()} is not [width, height] in whole px",
                         "write the image size of the calibrated camera as [width, height]")
    return int(a[0]), int(a[1])


def section_at(path, line: int | None, pattern: str) -> str | None:
    """The last ``pattern`` match (group 1) at or before 1-based ``line`` of a text file, e.g. the
    ``[table]`` or ``serial="..."`` enclosing a syntax error; None when unknown."""
    import re

    if not line:
        return None
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()[:line]
    except OSError:
        return None
    for text in reversed(lines):
        m = re.search(pattern, text)
        if m:
            return m.group(1)
    return None
