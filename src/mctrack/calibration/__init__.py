"""Calibration: camera/rig model, one reader per file format, board calibration, checks.

Modules: :mod:`.camera` (Camera, Rig, metres), :mod:`.anipose` (TOML read/write,
our canonical file), :mod:`.opencv_storage` (OpenCV FileStorage YAML/XML),
:mod:`.qualisys` (``.qca.txt``), :mod:`.json_calib` (JSON intrinsics),
:mod:`.formats` (dispatch: :func:`load_calibration`, :func:`find_camera`),
:mod:`.checks` (calibration vs session before any job), :mod:`.board` and
:mod:`.board_solve` (board detection and rig calibration), :mod:`.report` (QC plot),
:mod:`.refraction` (flat air–water interface: FlatInterface, RefractiveCamera).
"""

from .anipose import read_anipose_toml, write_anipose_toml
from .camera import UNIT_TO_M, Camera, Rig, border_cut
from .formats import READERS, find_camera, load_calibration
from .opencv_storage import read_opencv_storage
from .qualisys import read_qualisys_qca
from .refraction import FlatInterface, RefractiveCamera

__all__ = ["Camera", "Rig", "border_cut", "UNIT_TO_M", "READERS", "load_calibration", "find_camera", "read_anipose_toml",
           "write_anipose_toml", "read_opencv_storage", "read_qualisys_qca", "FlatInterface", "RefractiveCamera"]
