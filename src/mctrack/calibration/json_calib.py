"""JSON calibrations: one object per camera (e.g. FishPy's ``intrinsics.json``).

``{"cam1": {"camera_matrix": 3×3, "dist_coeffs_opencv": [k1, k2, p1, p2, k3],
"image_size_wh": [w, h]}, ...}``; the field names accepted are those of
:func:`mctrack.calibration.opencv_storage.camera_from_mapping` (``K``,
``matrix``, ``dist``, ``distortions``, ``size``, ``R``/``rvec``, ``T``/``tvec``...).
Cameras without extrinsics are intrinsics-only (``meta['intrinsics_only']``):
the input of a board calibration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError
from .camera import UNIT_TO_M, Rig, to_metres
from .opencv_storage import K_KEYS, camera_from_mapping


def read_json_calibration(path: str | os.PathLike, unit: str | None = None) -> Rig:
    """Read a JSON calibration (module docstring) into a :class:`Rig` (metres).

    Raises InputError naming file, camera and field on invalid JSON, missing
    matrices or wrong shapes.
    """
    path = Path(path)
    unit = unit or "m"
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"not valid JSON ({exc})", "fix the syntax") from None
    if unit not in UNIT_TO_M:
        raise InputError(path, None, f"unknown unit {unit!r}", f"use one of {sorted(UNIT_TO_M)}")
    rig = Rig(source=path, source_unit=unit)
    for name, sub in (data.items() if isinstance(data, dict) else []):
        if isinstance(sub, dict) and any(k in sub for k in K_KEYS):
            rig[name] = to_metres(camera_from_mapping(sub, name, path), unit)
    if not rig:
        raise InputError(path, None, "no camera objects with a camera matrix",
                         'write {"cam1": {"camera_matrix": [[...]], "dist_coeffs": [...], "size": [w, h]}}')
    return rig
