"""Qualisys Track Manager calibration export (``.qca.txt``, XML) reader.

Layout (one ``<camera serial=...>`` per camera under ``<cameras>``)::

    <transform x= y= z=  r11= r12= ... r33=/>   position in mm; rotation rows rIJ
    <intrinsic focalLengthU= focalLengthV= centerPointU= centerPointV=   1/64 px sensor units
               radialDistortion1..3= tangentalDistortion1..2=/>       normalised coordinates
    <fov_video left= top= right= bottom=/>                              px, inclusive

Conversion to OpenCV (the same as Pose2Sim's ``calib_qca_fun``: ``read_qca``
→ ``world_to_camera_persp`` → ``rotate_cam(ang_x=π)``; checked on the
Pose2Sim demo, whose rotations then agree with ``Calib_scene.toml`` to 1–3°):

- ``M = [[r11, r12, r13], [r21, r22, r23], [r31, r32, r33]]`` rotates world
  into a camera frame whose y and z axes point opposite to OpenCV's, so
  ``R = diag(1, −1, −1) · M`` and ``t = −R · C`` with ``C = (x, y, z) / 1000`` m;
- ``fx = focalLengthU / 64``, ``cx = centerPointU / 64 − fov_video.left``
  (likewise v / top), multiplied by ``res / 1080`` when the camera has a
  ``video_resolution="<res>p"`` attribute;
- distortion ``[k1, k2, p1, p2, k3]`` = radialDistortion1, 2, tangentalDistortion1, 2, radialDistortion3;
- image size = ``(right − left + 1, bottom − top + 1)`` (× the same factor).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import InputError
from .camera import Camera, Rig
from .fields import check_intrinsics, rotation_matrix_to_rvec, section_at, where

SENSOR_UNITS_PER_PX = 64.0


def _num(el: ET.Element, key: str, path, camera: str) -> float:
    if el is None:
        raise InputError(path, where(camera, key), "missing element", "export the calibration again from QTM")
    v = el.get(key)
    if v is None:
        raise InputError(path, where(camera, f"{el.tag}.{key}"), "missing attribute", "export the calibration again")
    try:
        return float(v)
    except ValueError:
        raise InputError(path, where(camera, f"{el.tag}.{key}"), f"{v!r} is not a number", None) from None


def read_qualisys_qca(path: str | os.PathLike) -> Rig:
    """Read a Qualisys ``.qca.txt`` calibration into a :class:`Rig` (metres, OpenCV world→camera).

    Cameras are keyed by their ``serial`` attribute. Inactive cameras
    (``active="0"``) are skipped. Raises InputError naming file, camera and
    attribute for malformed XML, a missing attribute, a non-rotation matrix or
    an unsupported ``viewrotation``.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        cam = section_at(path, exc.position[0], r'serial="([^"]+)"')
        raise InputError(path, f"camera '{cam}'" if cam else None, f"not valid XML ({exc})",
                         "export the calibration again from QTM") from None
    rig = Rig(source=path, source_unit="mm")
    for i, el in enumerate(root.iter("camera")):
        name = el.get("serial") or f"camera{i + 1}"
        if el.get("active", "1") == "0":
            continue
        if el.get("viewrotation", "0") not in ("0", ""):
            raise InputError(path, where(name, "viewrotation"), f"{el.get('viewrotation')} is not supported",
                             "export with viewrotation 0")
        tr, intr, fov = el.find("transform"), el.find("intrinsic"), el.find("fov_video")
        M = np.array([[_num(tr, f"r{a}{b}", path, name) for b in (1, 2, 3)] for a in (1, 2, 3)])
        C = np.array([_num(tr, k, path, name) for k in "xyz"]) / 1000.0
        R = np.diag([1.0, -1.0, -1.0]) @ M
        rvec = rotation_matrix_to_rvec(R, path, name, "transform")
        left, top = _num(fov, "left", path, name), _num(fov, "top", path, name)
        w = _num(fov, "right", path, name) - left + 1
        h = _num(fov, "bottom", path, name) - top + 1
        res = el.get("video_resolution")
        f = float(res.rstrip("p")) / 1080.0 if res and res.rstrip("p").isdigit() else 1.0
        s = 1.0 / SENSOR_UNITS_PER_PX
        K = np.array([[_num(intr, "focalLengthU", path, name) * s * f, 0, (_num(intr, "centerPointU", path, name) * s - left) * f],
                      [0, _num(intr, "focalLengthV", path, name) * s * f, (_num(intr, "centerPointV", path, name) * s - top) * f],
                      [0, 0, 1]])
        dist = np.array([_num(intr, k, path, name) for k in ("radialDistortion1", "radialDistortion2",
                                                           "tangentalDistortion1", "tangentalDistortion2",
                                                           "radialDistortion3")])
        check_intrinsics(K, dist, False, path, name)
        rig[name] = Camera(name, K, dist, rvec, -R @ C, (round(w * f), round(h * f)),
                           meta={"avg_residual": el.get("avg-residual")})
    if not rig:
        raise InputError(path, None, "no active <camera> elements", "export the calibration again from QTM")
    return rig
