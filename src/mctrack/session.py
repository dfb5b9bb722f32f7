"""One HDF5 file per session: writer (buffer-and-flush) and reader.

Layout (``T`` session frames, ``K`` global ids, column ``k`` = global id ``k``)::

    /                       attrs: mctrack_version, session, fps, n_frames, created (ISO 8601 UTC), config (JSON)
    /tracking               attrs: camera_names (list of str), world_units ("m")
        frame_index             (T,)       int64    session frame index
        global_id               (T, K)     int32    k where target k is observed at frame t (any camera), else -1
        centroid_3d             (T, K, 3)  float32  m, world frame of the calibration; NaN where not triangulated
        position_std            (T, K)     float32  m, linearised 3D standard deviation (RMS over axes); NaN
        confidence              (T, K)     float32  mean detection confidence of the cameras used; NaN
        reprojection_residual   (T, K)     float32  px, mean reprojection error over the cameras used; NaN
        n_cameras               (T, K)     int8     cameras used for the 3D point (0 = not triangulated)
        is_confirmed            (T, K)     bool     at least one camera has a *detected* (not coasted) box
        camera_assignments/{camera}  (T, K)    int32    det_index of the detection in that camera's DETECTION table, -1
        bboxes/{camera}              (T, K, 4) float32  xyxy px in that camera (detected or coasted box); NaN

Every dataset is chunked along T (``chunk_frames`` rows), gzip-compressed and
resizable along T (``maxshape=(None, ...)``), so a writer can append blocks of
frames without holding a whole session in memory. The file is written to a
temporary path and renamed when complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from . import __version__
from .errors import InputError, atomic_path

#: dataset name -> (trailing shape after (T, K), dtype, fill value)
TRACKING_FIELDS: dict[str, tuple[tuple[int, ...], str, object]] = {
    "global_id": ((), "int32", -1),
    "centroid_3d": ((3,), "float32", np.nan),
    "position_std": ((), "float32", np.nan),
    "confidence": ((), "float32", np.nan),
    "reprojection_residual": ((), "float32", np.nan),
    "n_cameras": ((), "int8", 0),
    "is_confirmed": ((), "bool", False),
}
CAMERA_FIELDS: dict[str, tuple[tuple[int, ...], str, object]] = {
    "camera_assignments": ((), "int32", -1),
    "bboxes": ((4,), "float32", np.nan),
}


class SessionWriter:
    """Append frames to a session HDF5 in blocks; flush every ``chunk_frames`` frames.

    Use as a context manager::

        with SessionWriter(path, camera_names, n_targets=K) as w:
            w.append(block)      # dict of arrays for frames [t0, t0 + n)
    ``block`` holds ``frame_index (n,)`` and any of :data:`TRACKING_FIELDS`
    (shape ``(n, K, ...)``) and ``{field}/{camera}`` for :data:`CAMERA_FIELDS`;
    missing arrays are written as their fill value. The file appears at
    ``path`` only when the block exits without an exception.
    """

    def __init__(self, path: str | os.PathLike, camera_names: list[str], n_targets: int, session: str = "",
                 fps: float | None = None, config: dict | None = None, chunk_frames: int = 1024):
        self.path = Path(path)
        self.cameras = list(camera_names)
        self.K = int(n_targets)
        self.attrs = {"mctrack_version": __version__, "session": session, "fps": float(fps or np.nan),
                      "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      "config": json.dumps(config or {}, default=str)}
        self.chunk = int(chunk_frames)
        self._buf: list[dict[str, np.ndarray]] = []
        self._nbuf = 0
        self._n = 0

    def _specs(self):
        for name, spec in TRACKING_FIELDS.items():
            yield f"tracking/{name}", spec
        for field, spec in CAMERA_FIELDS.items():
            for cam in self.cameras:
                yield f"tracking/{field}/{cam}", spec

    def __enter__(self) -> "SessionWriter":
        self._atomic = atomic_path(self.path)
        self._h5 = h5py.File(self._atomic.__enter__(), "w")
        self._h5.attrs.update(self.attrs)
        trk = self._h5.create_group("tracking")
        trk.attrs["camera_names"] = np.array(self.cameras, dtype=h5py.string_dtype())
        trk.attrs["world_units"] = "m"
        trk.create_dataset("frame_index", shape=(0,), maxshape=(None,), dtype="int64",
                           chunks=(self.chunk,), compression="gzip")
        for key, (tail, dtype, fill) in self._specs():
            shape = (0, self.K) + tail
            chunks = (self.chunk, max(self.K, 1)) + tail
            self._h5.create_dataset(key, shape=shape, maxshape=(None,) + shape[1:], dtype=dtype, chunks=chunks,
                                    compression="gzip", shuffle=True, fillvalue=fill)
        return self

    def append(self, block: dict[str, np.ndarray]) -> None:
        """Buffer a block of frames; flush when ``chunk_frames`` frames are buffered."""
        n = len(block["frame_index"])
        self._buf.append(block)
        self._nbuf += n
        if self._nbuf >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Write buffered frames to the file (resizing every dataset along T)."""
        if not self._nbuf:
            return
        n0, n1 = self._n, self._n + self._nbuf
        ds = self._h5["tracking/frame_index"]
        ds.resize((n1,))
        ds[n0:n1] = np.concatenate([b["frame_index"] for b in self._buf])
        for key, (tail, dtype, fill) in self._specs():
            short = key.removeprefix("tracking/")
            parts = []
            for b in self._buf:
                m = len(b["frame_index"])
                arr = b.get(short)
                if arr is None:
                    arr = np.full((m, self.K) + tail, fill, dtype=dtype)
                elif arr.shape != (m, self.K) + tail:
                    raise ValueError(f"{short}: shape {arr.shape}, expected {(m, self.K) + tail}")
                parts.append(arr.astype(dtype, copy=False))
            d = self._h5[key]
            d.resize((n1,) + d.shape[1:])
            d[n0:n1] = np.concatenate(parts)
        self._n = n1
        self._buf, self._nbuf = [], 0

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._h5.close()
            self._atomic.__exit__(exc_type, exc, tb)
        return False


def tracking_block(t0: int, t1: int, K: int, cameras: list[str], tracklets: pd.DataFrame,
                   association: pd.DataFrame, points: pd.DataFrame) -> dict[str, np.ndarray]:
    """Build the HDF5 arrays of frames ``t0 <= t < t1`` from the stage tables (vectorised scatter).

    ``tracklets`` TRACKLET2D (all cameras), ``association`` ASSOCIATION,
    ``points`` POINTS3D; only their rows inside the frame range are used, so
    callers may pass pre-sliced tables. Returns the ``block`` dict of
    :meth:`SessionWriter.append`.
    """
    n = t1 - t0
    out: dict[str, np.ndarray] = {"frame_index": np.arange(t0, t1, dtype=np.int64)}
    for name, (tail, dtype, fill) in TRACKING_FIELDS.items():
        out[name] = np.full((n, K) + tail, fill, dtype=dtype)
    p = points[(points["frame"] >= t0) & (points["frame"] < t1)]
    ti, gi = p["frame"].to_numpy() - t0, p["global_id"].to_numpy()
    out["centroid_3d"][ti, gi] = p[["x", "y", "z"]].to_numpy(np.float32)
    out["position_std"][ti, gi] = p["position_std"].to_numpy()
    out["confidence"][ti, gi] = p["confidence"].to_numpy()
    out["reprojection_residual"][ti, gi] = p["reprojection_error"].to_numpy()
    out["n_cameras"][ti, gi] = p["n_cameras"].to_numpy()

    tr = tracklets[(tracklets["frame"] >= t0) & (tracklets["frame"] < t1)]
    tr = tr.merge(association[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"], how="left")
    if tr["global_id"].isna().any():
        raise ValueError("tracklets without a global id: the association table does not cover every tracklet")
    ti, gi = tr["frame"].to_numpy() - t0, tr["global_id"].to_numpy(dtype=np.int64)
    out["global_id"][ti, gi] = gi
    det = (tr["frame_status"] == "detected").to_numpy()
    out["is_confirmed"][ti[det], gi[det]] = True
    for cam in cameras:
        sel = (tr["camera_id"] == cam).to_numpy()
        ca = np.full((n, K), -1, np.int32)
        bb = np.full((n, K, 4), np.nan, np.float32)
        ca[ti[sel], gi[sel]] = tr["det_index"].to_numpy()[sel]
        bb[ti[sel], gi[sel]] = tr[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)[sel]
        out[f"camera_assignments/{cam}"] = ca
        out[f"bboxes/{cam}"] = bb
    return out


def write_session(path: str | os.PathLike, n_frames: int, cameras: list[str], tracklets: pd.DataFrame,
                  association: pd.DataFrame, points: pd.DataFrame, session: str = "", fps: float | None = None,
                  config: dict | None = None, chunk_frames: int = 1024) -> None:
    """Assemble the session HDF5 from the stage tables, ``chunk_frames`` frames at a time.

    ``K`` = number of global ids in ``association`` (all of them: a target is
    never dropped). Raises ValueError if a tracklet has no global id or a 3D
    point names a global id outside ``association``.
    """
    K = int(association["global_id"].max()) + 1 if len(association) else 0
    if len(points) and points["global_id"].max() >= K:
        raise ValueError("3D points reference a global id missing from the association table")
    tracklets = tracklets.sort_values("frame", kind="stable")
    points = points.sort_values("frame", kind="stable")
    tf, pf = tracklets["frame"].to_numpy(), points["frame"].to_numpy()
    with SessionWriter(path, cameras, K, session=session, fps=fps, config=config, chunk_frames=chunk_frames) as w:
        for t0 in range(0, n_frames, chunk_frames):
            t1 = min(t0 + chunk_frames, n_frames)
            a, b = np.searchsorted(tf, [t0, t1])
            c, d = np.searchsorted(pf, [t0, t1])
            w.append(tracking_block(t0, t1, K, cameras, tracklets.iloc[a:b], association, points.iloc[c:d]))


def read_session(path: str | os.PathLike) -> dict:
    """Read a session HDF5 into numpy arrays.

    Returns a dict with the root attributes under ``"attrs"``,
    ``"camera_names"`` (list of str), ``"frame_index"`` and every
    :data:`TRACKING_FIELDS` array, and ``"camera_assignments"`` / ``"bboxes"``
    as dicts keyed by camera name. Raises InputError if the file is missing or
    has no ``/tracking`` group.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "session file not found", "run `snakemake` to assemble it")
    with h5py.File(path, "r") as f:
        if "tracking" not in f:
            raise InputError(path, "/tracking", "group missing", "this is not an mctrack session file")
        trk = f["tracking"]
        out = {"attrs": dict(f.attrs), "camera_names": [str(c) for c in trk.attrs["camera_names"]],
               "frame_index": trk["frame_index"][:]}
        for name in TRACKING_FIELDS:
            out[name] = trk[name][:]
        for field in CAMERA_FIELDS:
            out[field] = {cam: trk[field][cam][:] for cam in out["camera_names"]}
    return out


def tracks_3d(session: dict) -> pd.DataFrame:
    """Long-form 3D trajectories from :func:`read_session`'s dict.

    One row per triangulated ``(frame, global_id)``: ``frame, global_id, x, y,
    z`` (m), ``position_std`` (m), ``reprojection_residual`` (px),
    ``n_cameras``, ``confidence``.
    """
    t, k = np.nonzero(session["n_cameras"] > 0)
    xyz = session["centroid_3d"][t, k]
    return pd.DataFrame({"frame": session["frame_index"][t], "global_id": k, "x": xyz[:, 0], "y": xyz[:, 1],
                         "z": xyz[:, 2], "position_std": session["position_std"][t, k],
                         "reprojection_residual": session["reprojection_residual"][t, k],
                         "n_cameras": session["n_cameras"][t, k], "confidence": session["confidence"][t, k]})
