"""Shared pieces of the detection backends: the :class:`Detector` protocol, config checks, table assembly."""

from __future__ import annotations

import math
import os
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .. import tables
from ..errors import InputError

# --------------------------------------------------------------------------- protocol


@runtime_checkable
class Detector(Protocol):
    """What every detection backend provides.

    ``backend`` is the backend's name (a key of :data:`BACKENDS`) and
    ``params`` the validated configuration with defaults filled in.
    """

    backend: str
    params: dict[str, Any]

    def detect_chunk(self, video: str | os.PathLike, start: int, stop: int, camera_id: str,
                     frame_offset: int = 0) -> pd.DataFrame:
        """Detect objects in session frames ``start <= f < stop`` of ``video``.

        ``video`` is the camera's video file (for the ``precomputed`` backend:
        its MOTChallenge ``det.txt``); ``frame_offset`` the camera
        sheet's offset (``session frame = video frame - frame_offset``).
        Returns a DETECTION table (:data:`mctrack.tables.DETECTION`, coerced):
        one row per detection, ``frame`` = session frame, boxes xyxy float32 px.
        Raises :class:`~mctrack.errors.InputError` if the video is missing or
        unreadable, or ``start``/``stop`` are not integers with ``start <= stop``.
        """
        ...


# --------------------------------------------------------------------------- validation helpers


def _err(key: str, problem: str, fix: str | None = None) -> InputError:
    return InputError(None, f"detect.{key}", problem, fix)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            and math.isfinite(float(v)))


def _int(cfg: dict, key: str, lo: int | None = None, hi: int | None = None) -> int:
    v = cfg[key]
    rng = f" in [{lo}, {hi}]" if hi is not None else (f" >= {lo}" if lo is not None else "")
    if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _err(key, f"must be an integer{rng}, got {v!r}", f"set detect.{key} to an integer{rng}")
    return int(v)


def _float(cfg: dict, key: str, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False) -> float:
    v = cfg[key]
    bad = not _is_num(v)
    if not bad:
        f = float(v)
        bad = (lo is not None and (f <= lo if lo_open else f < lo)) or (hi is not None and f > hi)
    if bad:
        if lo is not None and hi is not None:
            rng = f" in {'(' if lo_open else '['}{lo}, {hi}]"
        elif lo is not None:
            rng = f" {'>' if lo_open else '>='} {lo}"
        else:
            rng = ""
        raise _err(key, f"must be a number{rng}, got {v!r}", f"set detect.{key} to a number{rng}")
    return float(v)


def _merge_defaults(cfg: dict | None, backend: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Check ``cfg``'s keys against ``defaults`` and return defaults updated by ``cfg``."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise InputError(None, "detect", f"must be a mapping of options, got {type(cfg).__name__}",
                         "write the config's detect section as key: value pairs")
    allowed = {"backend", *defaults}
    for key in cfg:
        if key not in allowed:
            from . import BACKENDS

            others = [name for name, cls in BACKENDS.items() if name != backend and key in cls.DEFAULTS]
            hint = f" (it is an option of backend {others[0]!r})" if others else ""
            raise _err(str(key), f"unknown option for backend {backend!r}{hint}",
                       f"remove it; options of {backend!r} are {sorted(allowed)}")
    out = dict(defaults)
    out.update({k: v for k, v in cfg.items() if k != "backend"})
    return out


def _check_chunk(video: str | os.PathLike, start: Any, stop: Any, frame_offset: Any) -> None:
    for name, v in (("start", start), ("stop", stop), ("frame_offset", frame_offset)):
        if not _is_int(v):
            raise InputError(video, name, f"must be an integer, got {v!r}", "pass integer session frames")
    if stop < start:
        raise InputError(video, "start/stop", f"stop ({stop}) < start ({start})",
                         "pass a chunk with start <= stop")


def _table(camera_id: str, frames: list[np.ndarray], boxes: list[np.ndarray], confs: list[np.ndarray],
           classes: list[np.ndarray], chromas: list[np.ndarray] | None = None) -> pd.DataFrame:
    """Assemble per-frame numpy arrays into a coerced DETECTION table.

    Each list has one entry per frame: ``frames[i]`` ``(n_i,) int64``, ``boxes[i]``
    ``(n_i, 4) float32`` xyxy px, ``confs[i]`` ``(n_i,) float32``, ``classes[i]``
    ``(n_i,) int32``, ``chromas[i]`` ``(n_i, 2) float32`` appearance
    (``chroma_r, chroma_g``; None: NaN).
    """
    if not frames:
        return tables.DETECTION.empty()
    f = np.concatenate(frames).astype(np.int64)
    b = np.concatenate(boxes).astype(np.float32).reshape(-1, 4)
    counts = [len(x) for x in frames]
    det_index = np.concatenate([np.arange(n, dtype=np.int32) for n in counts]) if counts else np.zeros(0, np.int32)
    df = pd.DataFrame({
        "camera_id": np.full(len(f), str(camera_id), dtype=object),
        "frame": f, "det_index": det_index,
        "x1": b[:, 0], "y1": b[:, 1], "x2": b[:, 2], "y2": b[:, 3],
        "confidence": np.concatenate(confs).astype(np.float32),
        "class_id": np.concatenate(classes).astype(np.int32),
    })
    if chromas is not None:
        h = np.concatenate(chromas).astype(np.float32).reshape(-1, 2)
        df["chroma_r"], df["chroma_g"] = h[:, 0], h[:, 1]
    return tables.DETECTION.coerce(df)
