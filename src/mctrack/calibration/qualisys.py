"""Qualisys Track Manager calibration export (``.qca.txt``, XML) reader.

Layout (one ``<camera serial=...>`` per camera under ``<cameras>``)::

    <transform x= y= z=  r11= r12= ... r33=/>   position in mm; rotation rows rIJ
    <intrinsic focalLengthU= focalLengthV= centerPointU= centerPointV=   1/64 px sensor units
               radialDistortion1..3= tangentalDistortion1..2=/>       normalised coordinates
    <fov_video left= top= right= bottom=/>                              px, inclusive

Conversion to OpenCV (Pose2Sim's ``calib_qca_fun`` — ``read_qca`` →
``world_to_camera_persp`` → ``rotate_cam(ang_x=π)`` — gives the same K, R,
t, image size and camera centres to machine precision on the Pose2Sim demo;
tests/test_calibration_qualisys.py pins them):

- ``M = [[r11, r12, r13], [r21, r22, r23], [r31, r32, r33]]`` rotates world
  into a camera frame whose y and z axes point opposite to OpenCV's, so
  ``R = diag(1, −1, −1) · M`` and ``t = −R · C`` with ``C = (x, y, z) / 1000`` m;
- ``fx = focalLengthU / 64``, ``cx = centerPointU / 64 − fov_video.left``
  (likewise v / top): K in the pixel grid of the ``fov_video`` window;
- image size = ``(right − left + 1, bottom − top + 1)``. ``video_resolution``
  is not applied (Pose2Sim dropped its ``res / 1080`` factor in 2026 after it
  broke 1440p Miqus Video Plus files, Pose2Sim issues #200/#212); a video of
  another size is caught by :mod:`.checks` and scaled only by its explicit
  ``calibrate.rescale`` rule (which also covers Pose2Sim's ``binning_factor``);
- distortion ``[k1, k2, p1, p2, k3]`` = radialDistortion1, 2,
  tangentalDistortion1, 2, radialDistortion3, as written (coefficients of
  normalised coordinates). Pose2Sim divides them by 64 too; that is not
  followed: on the demo the raw values match the independent checkerboard
  calibration of the same lenses (``Calib_scene.toml``: k1 −0.053 vs −0.046,
  k2 0.151 vs 0.140), the /64 ones (−0.0007, 0.0022) describe a
  distortion-free lens (Pose2Sim issue #31 reports the same).
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
        s = 1.0 / SENSOR_UNITS_PER_PX
        K = np.array([[_num(intr, "focalLengthU", path, name) * s, 0, _num(intr, "centerPointU", path, name) * s - left],
                      [0, _num(intr, "focalLengthV", path, name) * s, _num(intr, "centerPointV", path, name) * s - top],
                      [0, 0, 1]])
        dist = np.array([_num(intr, k, path, name) for k in ("radialDistortion1", "radialDistortion2",
                                                           "tangentalDistortion1", "tangentalDistortion2",
                                                           "radialDistortion3")])
        check_intrinsics(K, dist, False, path, name)
        rig[name] = Camera(name, K, dist, rvec, -R @ C, (round(w), round(h)),
                           meta={"avg_residual": el.get("avg-residual"), "video_resolution": el.get("video_resolution")})
    if not rig:
        raise InputError(path, None, "no active <camera> elements", "export the calibration again from QTM")
    return rig
