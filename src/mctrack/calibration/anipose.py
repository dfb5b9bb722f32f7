"""anipose / Pose2Sim calibration TOML: reader and writer (mctrack's canonical calibration file).

One table per camera (source: anipose ``aniposelib.cameras.Camera.get_dict``;
Pose2Sim writes the same layout)::

    [cam1]
    name = "cam1"
    size = [1280, 1024]                  # [width, height] px
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]   # px
    distortions = [k1, k2, p1, p2, k3]   # OpenCV (fisheye: k1..k4)
    rotation = [rx, ry, rz]              # Rodrigues, world→camera
    translation = [tx, ty, tz]           # world units, world→camera
    fisheye = false

    [metadata]
    unit = "m"                           # mctrack addition; anipose files have none

    [interface]                          # mctrack addition, optional: flat refractive interface
    normal = [0.0, 0.0, 1.0]             # unit normal toward the cameras (default +z)
    point = [0.0, 0.0, 0.5]              # a point on the plane, world units (or: height = 0.5)
    n1 = 1.0                             # cameras' side (air)
    n2 = 1.333                           # far side (water)

With an ``[interface]`` table every camera is read as a
:class:`~mctrack.calibration.refraction.RefractiveCamera` and the rig's
``interface`` attribute is set (see :mod:`.refraction`). A camera table may
carry its own ``interface`` sub-table (same fields; TOML ``[cam2.interface]``),
which replaces the file-level one for that camera: a tank filmed from above
through the water surface and from the side through its glass wall
(a thin wall bends rays as a plane between air and water). The rig's
``interface`` is then the one all cameras share, or None.

Tables without ``matrix`` (``[metadata]``, ``[interface]``) are not cameras. The world unit is
``metadata.unit`` if present, else the ``unit`` argument (default metres):
anipose itself writes board units (often mm) without saying so.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np

from ..errors import InputError, atomic_path
from .camera import UNIT_TO_M, Camera, Rig, to_metres
from .fields import array, check_intrinsics, image_size, section_at
from .refraction import FlatInterface, shared_interface, with_interface

REQUIRED = ("size", "matrix", "distortions", "rotation", "translation")


def read_anipose_toml(path: str | os.PathLike, unit: str | None = None) -> Rig:
    """Read an anipose / Pose2Sim calibration TOML into a :class:`Rig` (metres).

    ``unit``: world unit of the file when it has no ``[metadata] unit``
    (``"m"``, ``"cm"``, ``"mm"``; default ``"m"``). A table's ``name`` is kept
    in ``Camera.meta['name']``; cameras are keyed by the table name.

    Raises InputError naming file, camera (table) and field for invalid TOML,
    a missing key, a wrong shape, or a non-intrinsic matrix.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        import re

        m = re.search(r"line (\d+)", str(exc))
        cam = section_at(path, int(m.group(1)) if m else None, r"^\s*\[([^\]]+)\]")
        raise InputError(path, f"camera '{cam}'" if cam else None, f"not valid TOML ({exc})",
                         "fix the syntax or export the calibration again") from exc
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    file_unit = meta.get("unit") or unit or "m"
    if file_unit not in UNIT_TO_M:
        raise InputError(path, "field 'metadata.unit'", f"unknown unit {file_unit!r}", f"use one of {sorted(UNIT_TO_M)}")
    cams = Rig(source=path, source_unit=file_unit)
    own: dict[str, FlatInterface] = {}
    for key, tab in data.items():
        if not isinstance(tab, dict) or key in ("metadata", "interface"):
            continue
        if "matrix" not in tab and not any(k in tab for k in REQUIRED):
            continue
        for req in REQUIRED:
            if req not in tab:
                raise InputError(path, f"camera '{key}' field '{req}'", "missing",
                                 "an anipose calibration table needs size, matrix, distortions, rotation, translation")
        fisheye = bool(tab.get("fisheye", False))
        K = array(tab["matrix"], (3, 3), path, key, "matrix")
        dist = array(tab["distortions"], (-1,), path, key, "distortions")
        check_intrinsics(K, dist, fisheye, path, key)
        cam = Camera(name=key, K=K, dist=dist, rvec=array(tab["rotation"], (3,), path, key, "rotation"),
                     tvec=array(tab["translation"], (3,), path, key, "translation"),
                     size=image_size(tab["size"], path, key), fisheye=fisheye,
                     meta={"name": tab.get("name", key)})
        cams[key] = to_metres(cam, file_unit)
        if "interface" in tab:
            own[key] = FlatInterface.from_dict(tab["interface"], path, file_unit, where=f"{key}.interface")
    if not cams:
        raise InputError(path, None, "no camera tables found", "each camera needs a table with a 'matrix' key")
    shared = FlatInterface.from_dict(data["interface"], path, file_unit) if "interface" in data else None
    for key, cam in list(cams.items()):
        iface = own.get(key, shared)
        if iface is None:
            continue
        if cam.has_extrinsics and iface.signed_distance(cam.center)[0] <= 0:
            where = f"{key}.interface" if key in own else "interface"
            raise InputError(path, f"field '{where}.normal'",
                             f"camera '{key}' is not on the normal's side of the interface",
                             "the normal must point from the water toward the camera (e.g. [0, 0, 1] with "
                             "z up), and the plane must lie between the camera and the targets")
        cams.update(with_interface({key: cam}, iface))
    cams.interface = shared_interface(cams)  # one interface for the whole rig, else None
    return cams


def anipose_dict(cameras: list[Camera] | dict[str, Camera], metadata: dict | None = None) -> dict:
    """The TOML document (a dict) of :func:`write_anipose_toml`; translations in metres.

    An ``[interface]`` table is written when every camera carries the same
    one (:class:`~mctrack.calibration.refraction.RefractiveCamera`), otherwise
    an ``interface`` sub-table in each camera table that has one.
    """
    if isinstance(cameras, dict):
        cameras = list(cameras.values())
    shared = shared_interface(cameras)
    doc = {}
    for c in cameras:
        doc[c.name] = {
            "name": c.name,
            "size": [int(c.size[0]), int(c.size[1])],
            "matrix": np.asarray(c.K, dtype=float).tolist(),
            "distortions": np.asarray(c.dist, dtype=float).tolist(),
            "rotation": np.asarray(c.rvec, dtype=float).tolist(),
            "translation": np.asarray(c.tvec, dtype=float).tolist(),
            "fisheye": bool(c.fisheye),
        }
        if shared is None and getattr(c, "interface", None) is not None:
            doc[c.name]["interface"] = c.interface.to_dict()
    doc["metadata"] = {"adjusted": False, "error": 0.0, **(metadata or {}), "unit": "m"}
    if shared is not None:
        doc["interface"] = shared.to_dict()
    return doc


def write_anipose_toml(cameras: list[Camera] | dict[str, Camera], path: str | os.PathLike,
                       metadata: dict | None = None) -> None:
    """Write cameras (metres) as an anipose / Pose2Sim TOML, atomically; inverse of :func:`read_anipose_toml`.

    ``metadata``: extra scalar keys of the ``[metadata]`` table (e.g. per-camera
    reprojection errors); ``unit = "m"`` is always written. Serialised with
    ``tomli_w`` (floats round-trip exactly).
    """
    import tomli_w

    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(tomli_w.dumps(anipose_dict(cameras, metadata)).encode())
