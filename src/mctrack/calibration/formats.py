"""Calibration file dispatch: :func:`load_calibration` picks the reader, :func:`find_camera` the entry.

Format by name, then by content: ``*.qca.txt`` → Qualisys; ``.toml`` →
anipose/Pose2Sim; ``.yml``/``.yaml``/``.xml`` → OpenCV FileStorage; ``.json`` →
JSON. Other names are sniffed: ``<?xml`` + ``<calibration`` → Qualisys,
``%YAML`` / ``<opencv_storage>`` → OpenCV, ``{`` → JSON, else TOML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import InputError
from .anipose import read_anipose_toml
from .camera import Camera, Rig
from .json_calib import read_json_calibration
from .opencv_storage import read_opencv_storage
from .qualisys import read_qualisys_qca

READERS: dict[str, Callable[..., Rig]] = {
    "toml": read_anipose_toml,
    "opencv": read_opencv_storage,
    "qualisys": read_qualisys_qca,
    "json": read_json_calibration,
}
SUFFIXES = {".toml": "toml", ".yml": "opencv", ".yaml": "opencv", ".xml": "opencv", ".json": "json"}


def calibration_format(path: str | os.PathLike) -> str:
    """The reader key of :data:`READERS` for ``path`` (by name, else by its first bytes)."""
    path = Path(path)
    if path.name.lower().endswith(".qca.txt"):
        return "qualisys"
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    head = path.read_bytes()[:512].decode("utf-8", "replace").lstrip()
    if head.startswith("<?xml") or head.startswith("<"):
        return "opencv" if "<opencv_storage" in head else "qualisys"
    if head.startswith("%YAML"):
        return "opencv"
    if head.startswith("{"):
        return "json"
    return "toml"


def load_calibration(path: str | os.PathLike, unit: str | None = None) -> Rig:
    """Load every camera of a calibration file as a :class:`Rig` (metres), keyed by name in the file.

    ``unit``: world unit of files that do not state it (anipose TOML without
    ``[metadata] unit``, OpenCV, JSON); default metres. Qualisys files are mm.
    Raises :class:`~mctrack.errors.InputError` if the file is missing or malformed.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "calibration file not found", "check the camera sheet's 'calibration' column")
    fmt = calibration_format(path)
    rig = READERS[fmt](path) if fmt == "qualisys" else READERS[fmt](path, unit=unit)
    for cam in rig.values():
        cam.meta.setdefault("source", str(path))
    return rig


def find_camera(cameras: dict[str, Camera], camera: str, calibration_name: str | None = None,
                source: str | os.PathLike | None = None) -> Camera:
    """Pick the calibration entry of sheet camera ``camera``.

    Order: ``calibration_name`` if given (exact), else an exact match of
    ``camera``, else the single entry whose name contains ``camera`` (so sheet
    camera ``cam01`` finds Pose2Sim's ``int_cam01_img``). Raises
    :class:`~mctrack.errors.InputError` naming the file and camera when
    nothing or more than one entry matches.
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
