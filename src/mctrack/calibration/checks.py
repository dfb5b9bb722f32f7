"""Checks of a calibration against a session, run before any job (planning) and again in the jobs.

:func:`session_cameras` resolves every sheet camera's calibration entry and
checks it against the video the camera recorded:

- every camera of the sheet has an entry (:func:`~mctrack.calibration.find_camera`);
- the entry has extrinsics (an intrinsics-only file needs board footage);
- matrices have the right shapes and rotations are orthonormal (the readers
  raise on read, naming file, camera and field);
- **image size**: the calibration's ``size`` must equal the video's decoded
  ``(width, height)``. Scaling rule (opt-in, ``calibrate.rescale: true``): a
  video that is a uniformly resized copy of the calibrated resolution (same
  aspect ratio within half a pixel) uses :meth:`Camera.scaled`; any other
  mismatch is an InputError. A calibration at another resolution otherwise
  projects every ray to the wrong pixel: on the synthetic default it silently
  split the targets of one camera into new global ids (20 → 31).
  Entries without a size (``(0, 0)``, some OpenCV files) are logged and
  take the video's size.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from ..errors import InputError
from .camera import Camera
from .formats import find_camera, load_calibration
from .refraction import without_interface

log = logging.getLogger("mctrack.calibration")


def check_camera_size(cam: Camera, video_size: tuple[int, int], source, camera: str, video: str | None = None,
                      rescale: bool = False) -> Camera:
    """Return ``cam`` for a video decoded at ``video_size = (width, height)`` px, or raise InputError.

    Exact match → ``cam``; ``rescale`` and same aspect ratio → ``cam.scaled(video_size)``;
    unknown calibration size ``(0, 0)`` → ``cam`` with the video's size (logged).
    """
    w, h = int(video_size[0]), int(video_size[1])
    if tuple(cam.size) == (w, h):
        return cam
    if tuple(cam.size) == (0, 0):
        log.warning("%s: camera '%s' has no image size; assuming the video's %dx%d", source, camera, w, h)
        return replace(cam, size=(w, h))
    W, H = cam.size
    if rescale:
        try:
            return cam.scaled((w, h))
        except ValueError:
            pass
    raise InputError(source, f"camera '{camera}' field 'size'",
                     f"calibrated at {W}x{H} px but the video {video or ''} decodes at {w}x{h} px",
                     "calibrate at the video's resolution (or, for a uniformly resized copy of the calibrated "
                     "video, set calibrate.rescale: true)")


def session_cameras(calibration: str | os.PathLike, entries: dict, video_sizes: dict[str, tuple[int, int]] | None,
                    rescale: bool = False, by_name: bool = False, unit: str | None = None,
                    refraction: bool = True) -> dict[str, Camera]:
    """Resolve and check the calibration of every sheet camera → ``{sheet camera: Camera}`` (metres).

    ``entries``: ``{camera: CameraEntry}`` (uses ``calibration_name``,
    ``video``); ``video_sizes``: ``{camera: (width, height)}`` decoded px, or
    None to skip the size check; ``by_name``: ignore ``calibration_name``
    (a file written by the calibrate rule names cameras as the sheet does);
    ``refraction``: False drops the file's ``[interface]`` (config
    ``calibrate.refraction``: plain pinhole cameras, e.g. to measure what
    ignoring refraction costs). Raises InputError naming file and camera for a missing entry, an
    intrinsics-only entry or a size mismatch.
    """
    rig = load_calibration(calibration, unit=unit)
    out = {}
    for name, e in entries.items():
        cam = find_camera(rig, name, None if by_name else getattr(e, "calibration_name", None), source=calibration)
        if not cam.has_extrinsics:
            raise InputError(calibration, f"camera '{name}'", "has intrinsics only (no rotation/translation)",
                             "name board footage in the sheet's 'board' column to calibrate the extrinsics")
        if video_sizes is not None and name in video_sizes:
            cam = check_camera_size(cam, video_sizes[name], calibration, name, getattr(e, "video", None), rescale)
        out[name] = cam if refraction else without_interface(cam)
    return out


def check_session_calibration(sheet: str | os.PathLike, session: str, entries: dict,
                              video_sizes: dict[str, tuple[int, int]], config: dict) -> None:
    """Planning-time calibration checks of one session (called by :func:`mctrack.config.plan_sessions`).

    A session whose sheet rows name ``board`` footage is calibrated by the
    ``calibrate`` rule: every camera needs board footage that exists, the
    config needs a valid ``calibrate.board``, and a ``calibration`` file, if
    given, supplies intrinsics for every camera (at the video's size). A
    session without board footage is checked by :func:`session_cameras`.
    Raises InputError naming the sheet / file, the camera and the field.
    """
    from .board import Board, board_files

    cal_cfg = config.get("calibrate") or {}
    cal = next((e.calibration for e in entries.values() if e.calibration), None)
    boards = {k: getattr(e, "board", None) for k, e in entries.items()}
    if any(boards.values()):
        missing = [k for k, b in boards.items() if not b]
        if missing:
            raise InputError(sheet, f"session '{session}' camera '{missing[0]}' column 'board'", "empty",
                             "give every camera of a session board footage, or none")
        Board.from_config(cal_cfg.get("board") or {}, source="config calibrate.board")
        for k, b in boards.items():
            files = board_files(b)
            if files is None and not os.path.exists(b):
                raise InputError(sheet, f"camera '{k}' column 'board'", f"'{b}' not found", None)
        if cal:
            rig = load_calibration(cal, unit=cal_cfg.get("unit"))
            for k, e in entries.items():
                cam = find_camera(rig, k, e.calibration_name, source=cal)
                check_camera_size(cam, video_sizes[k], cal, k, e.video, bool(cal_cfg.get("rescale", False)))
        return
    if cal:
        session_cameras(cal, {k: e for k, e in entries.items() if e.calibration}, video_sizes,
                        rescale=bool(cal_cfg.get("rescale", False)), unit=cal_cfg.get("unit"))
