"""OpenCV ``FileStorage`` calibrations (YAML ``%YAML:1.0`` or XML ``<opencv_storage>``).

Three common layouts are read (world unit metres unless ``unit`` says otherwise):

1. **EasyMocap / Pose2Sim** ``intri.yml`` + ``extri.yml``: a ``names`` list and,
   per name ``n``, ``K_n`` (3×3), ``dist_n`` (1×5), ``R_n`` (3×1 Rodrigues) or
   ``Rot_n`` (3×3), ``T_n`` (3×1), optionally ``H_n``/``W_n`` (image size).
   Given either file, the other is read from the same folder when it exists.
2. **One map per camera**: top-level keys are camera names, each a map with
   ``K``/``camera_matrix``/``cameraMatrix``, ``dist``/``D``/``distortion_coefficients``,
   ``R`` (3×3 or 3×1) / ``rvec``, ``T``/``tvec``, and ``size`` ([w, h]) or
   ``image_width`` + ``image_height``.
3. **One camera** (OpenCV's calibration sample output): ``camera_matrix``,
   ``distortion_coefficients``, ``image_width``, ``image_height`` at top level;
   the camera is named after the file stem.

Entries without extrinsics are marked ``meta['intrinsics_only']`` (usable as
the intrinsics of a board calibration, refused by association/triangulation).
Entries without an image size get ``size = (0, 0)`` (unknown; the session
check then logs that it cannot compare it with the video).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .camera import UNIT_TO_M, Camera, Rig, to_metres
from .fields import array, check_intrinsics, image_size, rotation_matrix_to_rvec, where

K_KEYS = ("K", "camera_matrix", "cameraMatrix", "intrinsic", "matrix")
DIST_KEYS = ("dist", "D", "distortion_coefficients", "distCoeffs", "distortions", "dist_coeffs", "dist_coeffs_opencv")
SIZE_KEYS = ("size", "image_size", "image_size_wh")
R_KEYS = ("R", "rvec", "rotation", "Rot")
T_KEYS = ("T", "tvec", "translation", "t")


def _value(node: "cv2.FileNode"):
    """A FileNode as a Python value: ndarray (matrices, numeric sequences), float, str, dict or None."""
    if node.empty() or node.isNone():
        return None
    if node.isMap():
        m = node.mat()
        if m is not None:
            return np.asarray(m, dtype=np.float64)
        return {k: _value(node.getNode(k)) for k in node.keys()}
    if node.isSeq():
        vals = [_value(node.at(i)) for i in range(node.size())]
        return vals if any(isinstance(v, str) for v in vals) else np.asarray(vals, dtype=np.float64)
    if node.isString():
        return node.string()
    return float(node.real())


def _read(path: Path) -> dict:
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as exc:
        msg = str(exc).strip().splitlines()[-1]
        raise InputError(path, None, f"not a valid OpenCV FileStorage file ({msg})",
                         "write it with cv2.FileStorage (YAML '%YAML:1.0' header or XML <opencv_storage>)") from None
    try:
        root = fs.root()
        return {k: _value(root.getNode(k)) for k in root.keys()}
    finally:
        fs.release()


def _pick(d: dict, keys, suffix: str = ""):
    for k in keys:
        if f"{k}{suffix}" in d and d[f"{k}{suffix}"] is not None:
            return k + suffix, d[f"{k}{suffix}"]
    return None, None


def camera_from_mapping(d: dict, name: str, path: Path, suffix: str = "") -> Camera:
    """One camera from a mapping of named fields (keys in K_KEYS, DIST_KEYS, R_KEYS, T_KEYS, SIZE_KEYS + ``suffix``)."""
    kk, K = _pick(d, K_KEYS, suffix)
    if K is None:
        raise InputError(path, where(name, "K" + suffix), "missing", "each camera needs an intrinsic matrix K")
    K = array(K, (3, 3), path, name, kk)
    dk, dist = _pick(d, DIST_KEYS, suffix)
    dist = np.zeros(5) if dist is None else array(np.ravel(dist), (-1,), path, name, dk)
    check_intrinsics(K, dist, False, path, name)
    rk, R = _pick(d, R_KEYS, suffix)
    if f"Rot{suffix}" in d and d[f"Rot{suffix}"] is not None:  # EasyMocap writes both; prefer the matrix
        rk, R = f"Rot{suffix}", d[f"Rot{suffix}"]
    tk, T = _pick(d, T_KEYS, suffix)
    meta = {}
    if R is None or T is None:
        rvec, tvec, meta = np.zeros(3), np.zeros(3), {"intrinsics_only": True}
    else:
        R = np.asarray(R, dtype=np.float64)
        rvec = rotation_matrix_to_rvec(R, path, name, rk) if R.size == 9 else array(R, (3,), path, name, rk)
        tvec = array(T, (3,), path, name, tk)
    sk, sz = _pick(d, SIZE_KEYS, suffix)
    if sz is not None:
        size = image_size(sz, path, name, sk)
    else:
        wk = next((f"{k}{suffix}" for k in ("W", "image_width", "width") if f"{k}{suffix}" in d), None)
        hk = next((f"{k}{suffix}" for k in ("H", "image_height", "height") if f"{k}{suffix}" in d), None)
        size = image_size([d[wk], d[hk]], path, name, f"{wk}/{hk}") if wk and hk else (0, 0)
    return Camera(name, K, dist, rvec, tvec, size, meta=meta)


def read_opencv_storage(path: str | os.PathLike, unit: str | None = None) -> Rig:
    """Read an OpenCV FileStorage calibration (layouts in the module docstring) into a :class:`Rig` (m).

    Raises InputError naming file, camera and field for unreadable files,
    missing matrices, wrong shapes and non-orthonormal rotations.
    """
    path = Path(path)
    unit = unit or "m"
    d = _read(path)
    rig = Rig(source=path, source_unit=unit)
    if "names" in d:  # EasyMocap
        names = d["names"]
        if not isinstance(names, list) or not names:
            raise InputError(path, "field 'names'", "expected a list of camera names", None)
        names = [str(n) if not isinstance(n, float) else str(int(n)) for n in names]
        for other in ("intri", "extri"):
            sib = path.with_name(other + path.suffix)
            if sib != path and sib.exists() and other not in path.stem:
                d = {**_read(sib), **d}
        for n in names:
            rig[n] = camera_from_mapping(d, n, path, f"_{n}")
    elif any(k in d for k in K_KEYS):  # one camera
        rig[path.stem] = camera_from_mapping(d, path.stem, path)
    else:
        for n, sub in d.items():
            if isinstance(sub, dict) and any(k in sub for k in K_KEYS):
                rig[n] = camera_from_mapping(sub, n, path)
    if not rig:
        raise InputError(path, None, "no camera found (no 'names' list, no K / camera_matrix)",
                         "see mctrack.calibration.opencv_storage for the supported layouts")
    if unit not in UNIT_TO_M:
        raise InputError(path, None, f"unknown unit {unit!r}", f"use one of {sorted(UNIT_TO_M)}")
    return Rig({k: to_metres(c, unit) for k, c in rig.items()}, source=path, source_unit=unit)
