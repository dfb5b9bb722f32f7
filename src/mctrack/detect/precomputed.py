"""Detection backend ``precomputed``: detections read from MOTChallenge ``det.txt`` files.

For users who bring their own detections (DeepLabCut / SLEAP / idtracker
exports converted to boxes, MOTChallenge public detections, another
detector's output). Each camera's file is named in the camera sheet's
``detections`` column; the camera's ``video`` then becomes optional (a camera
without a video gives ``fps`` and ``n_frames`` in the sheet instead).
Conversion to mctrack conventions is done by :func:`mctrack.io.mot.read_mot`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import tables
from ..io.mot import read_mot
from .base import _check_chunk, _err, _float, _is_int, _merge_defaults

__all__ = ["PrecomputedDetector", "validate_det_file"]


def validate_det_file(path: str | os.PathLike) -> int:
    """Check a MOTChallenge ``det.txt`` completely; return its number of detections.

    Called by :func:`mctrack.config.plan_sessions` for every camera's
    ``detections`` file before any job runs. Raises
    :class:`~mctrack.errors.InputError` naming the file and ``line N`` for a
    header line, a wrong number of fields (6-10), non-numeric values, 0-based
    or non-integer frames, bad boxes or confidences outside ``[0, 1]`` (see
    :func:`mctrack.io.mot.read_mot`).
    """
    return len(read_mot(path, kind="det"))


class PrecomputedDetector:
    """Detections from a MOTChallenge ``det.txt`` per camera (no video, no model).

    ``det.txt`` lines: ``frame, -1, bb_left, bb_top, bb_width, bb_height, conf[,
    class[, ...]]``, frames 1-based with frame 1 = first decoded frame of the
    camera's video (or of the recording, for a camera without video), 1-based
    pixels. Session frame = file frame - 1 - ``frame_offset``.

    Parameters (keys of the config's ``detect.precomputed`` section; defaults in
    :attr:`DEFAULTS`):

    - ``conf`` (float in [0, 1], 0.0): drop detections with a lower confidence
      (0 keeps all: low-score boxes feed the second stage of BYTE-style trackers).
    - ``classes`` (list of int or None, None): keep only these classes
      (``class`` field; ``-1`` or absent reads as 0); None keeps all.

    Output: DETECTION rows, ``det_index`` numbering a frame's detections in file
    order. Raises :class:`~mctrack.errors.InputError` (field ``detect.<key>``)
    on a bad option at construction, and naming the file and line for a bad
    ``det.txt`` in :meth:`detect_chunk`.
    """

    backend = "precomputed"
    DEFAULTS: ClassVar[dict[str, Any]] = {"conf": 0.0, "classes": None}

    def __init__(self, cfg: dict | None = None):
        p = _merge_defaults(cfg, self.backend, self.DEFAULTS)
        p["conf"] = _float(p, "conf", 0.0, 1.0)
        c = p["classes"]
        if c is not None:
            c = [c] if _is_int(c) else c
            if not isinstance(c, (list, tuple)) or not c or not all(_is_int(x) and x >= 0 for x in c):
                raise _err("classes", f"must be a non-empty list of class ids >= 0 or null, got {p['classes']!r}",
                           "e.g. detect.precomputed.classes: [0], or null for all classes")
            p["classes"] = [int(x) for x in c]
        self.params = p
        self._cache: dict[tuple[str, float], pd.DataFrame] = {}

    def _read(self, path: Path) -> pd.DataFrame:
        key = (str(path.resolve()), path.stat().st_mtime)
        if key not in self._cache:
            self._cache = {key: read_mot(path, kind="det")}
        return self._cache[key]

    def detect_chunk(self, video: str | os.PathLike, start: int, stop: int, camera_id: str,
                     frame_offset: int = 0) -> pd.DataFrame:
        """Detections of session frames ``start <= f < stop`` from the ``det.txt`` file ``video``.

        (The argument is named ``video`` for the :class:`~mctrack.detect.Detector`
        protocol; here it is the camera's ``detections`` file.) Returns a
        DETECTION table, boxes ``(N, 4)`` float32 0-based xyxy px. Raises
        :class:`~mctrack.errors.InputError` for a missing or malformed file or a bad chunk.
        """
        _check_chunk(video, start, stop, frame_offset)
        d = self._read(Path(video))
        f = d["frame"].to_numpy(np.int64) - int(frame_offset)
        keep = (f >= start) & (f < stop) & (d["conf"].to_numpy() >= self.params["conf"])
        if self.params["classes"] is not None:
            keep &= np.isin(d["class_id"].to_numpy(), self.params["classes"])
        d = d[keep]
        f = f[keep]
        det_index = d.groupby(f, sort=False).cumcount().to_numpy(np.int32) if len(d) else np.zeros(0, np.int32)
        out = pd.DataFrame({
            "camera_id": np.full(len(d), str(camera_id), dtype=object), "frame": f, "det_index": det_index,
            "x1": d["x1"].to_numpy(), "y1": d["y1"].to_numpy(), "x2": d["x2"].to_numpy(), "y2": d["y2"].to_numpy(),
            "confidence": d["conf"].to_numpy(), "class_id": d["class_id"].to_numpy(),
        })
        return tables.DETECTION.coerce(out)
