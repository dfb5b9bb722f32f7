"""The tables that flow between stages: one column spec each, one parquet file each.

Every stage reads and writes pandas DataFrames whose columns and dtypes are
fixed here, so a stage never sees a third-party object (ultralytics results,
boxmot tracks) and a later stage can rely on exact names and units.

Conventions shared by all tables
--------------------------------
- ``frame``: session frame index, int64, 0-based. Frame ``f`` of every camera of
  a session is the same instant (after the camera sheet's ``frame_offset``).
- Boxes: ``x1, y1, x2, y2`` float32 pixels, xyxy, in the *distorted* image as
  decoded from the video (origin top-left pixel corner, x right, y down).
- ``camera_id``: the camera name from the camera sheet (str).
- World coordinates: metres (or the calibration's unit), right-handed.

Tables
------
``DETECTION``   one row per detection: camera_id, frame, det_index (index of the
                detection within its frame, 0..n-1), box, confidence, class_id.
``TRACKLET2D``  one row per (camera, track, frame): the per-camera tracker
                output. ``frame_status`` is ``"detected"`` (box is the matched
                detection, ``det_index`` >= 0) or ``"coasted"`` (box is the
                tracker's prediction, ``det_index`` = -1, confidence NaN).
``ASSOCIATION`` one row per tracklet (camera_id, track_id): its ``global_id``,
                ``support`` (weakest link of that global id in [0, 1], NaN for a
                tracklet alone; see :mod:`mctrack.associate.solve`) and
                ``parent_track_id`` (the track_2d id it was split from, or its own).
``POINTS3D``    one row per (frame, global_id) with a 3D position (m), its mean
                reprojection error (px), linearised standard deviation along
                world x, y, z (``std_x, std_y, std_z``, m) and their RMS
                ``position_std`` (m), and ``n_cut`` the cameras used whose box
                touched the image border (only its uncut coordinate used; see
                :mod:`mctrack.triangulate`).
``PAIR_EVIDENCE`` one row per pair of tracklets of two cameras that share
                frames: the association's soft evidence (``score``,
                ``mean_evidence`` in [-1, 1], ``support`` in [0, 1], ``n_votes``
                sampled frames agreeing, ``n_negative`` frames contradicted by a
                third camera; see :mod:`mctrack.associate.evidence`).
``RESIDUALS``   one row per (frame, global_id, camera_id) used in a 3D point:
                the observed and reprojected centroid and their distance in px.
``TRACK3D``     one row per (frame, global_id) of a smoothed, gap-filled 3D track,
                raw triangulated values kept next to the smoothed ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError, atomic_path

FRAME_STATUS = ("detected", "coasted", "interpolated", "reprojected")


@dataclass(frozen=True)
class TableSpec:
    """Name, column order and numpy dtypes of one inter-stage table.

    ``columns`` maps column name to a numpy dtype string, or ``"str"`` for
    text columns (stored as pandas object/string) or ``"status"`` for the
    categorical ``frame_status`` column (values in :data:`FRAME_STATUS`).
    """

    name: str
    columns: dict[str, str]
    #: columns added later that older writers may lack: name -> function(df) giving the fill value
    defaults: dict = field(default_factory=dict)

    def empty(self) -> pd.DataFrame:
        """Return a 0-row DataFrame with this spec's columns and dtypes."""
        return self.coerce(pd.DataFrame({c: [] for c in self.columns}))

    def coerce(self, df: pd.DataFrame, source: str | os.PathLike | None = None) -> pd.DataFrame:
        """Return ``df`` restricted to this spec's columns, in order, with its dtypes.

        Raises :class:`~mctrack.errors.InputError` naming ``source`` and the
        first missing column.
        """
        if any(c not in df.columns for c in self.defaults):
            df = df.assign(**{c: f(df) for c, f in self.defaults.items() if c not in df.columns})
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise InputError(source, f"{self.name} column '{missing[0]}'", "missing",
                             f"write the table with columns {list(self.columns)}")
        out = {}
        for col, dt in self.columns.items():
            s = df[col]
            if dt == "str":
                out[col] = s.astype(str).to_numpy(dtype=object)
            elif dt == "status":
                out[col] = pd.Categorical(s, categories=FRAME_STATUS)
            else:
                out[col] = s.to_numpy(dtype=dt)
        return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


DETECTION = TableSpec("Detection", {
    "camera_id": "str", "frame": "int64", "det_index": "int32",
    "x1": "float32", "y1": "float32", "x2": "float32", "y2": "float32",
    "confidence": "float32", "class_id": "int32",
    "chroma_r": "float32", "chroma_g": "float32",
}, defaults={c: (lambda df: np.nan) for c in ("chroma_r", "chroma_g")})

TRACKLET2D = TableSpec("Tracklet2D", {
    "camera_id": "str", "track_id": "int64", "frame": "int64",
    "x1": "float32", "y1": "float32", "x2": "float32", "y2": "float32",
    "cx": "float32", "cy": "float32",
    "frame_status": "status", "det_index": "int32", "confidence": "float32",
    "chroma_r": "float32", "chroma_g": "float32",
}, defaults={c: (lambda df: np.nan) for c in ("chroma_r", "chroma_g")})

ASSOCIATION = TableSpec("Association", {
    "camera_id": "str", "track_id": "int64", "global_id": "int64",
    "n_frames": "int64", "n_linked_cameras": "int32",
    "support": "float32", "parent_track_id": "int64",
}, defaults={"support": lambda df: np.nan, "parent_track_id": lambda df: df["track_id"]})

POINTS3D = TableSpec("Points3D", {
    "frame": "int64", "global_id": "int64",
    "x": "float64", "y": "float64", "z": "float64",
    "reprojection_error": "float32", "n_cameras": "int32",
    "position_std": "float32", "confidence": "float32",
    "std_x": "float32", "std_y": "float32", "std_z": "float32",
    "n_cut": "int32",
}, defaults={**{c: (lambda df: np.nan) for c in ("std_x", "std_y", "std_z")},  # tables written before per-axis std
             "n_cut": lambda df: 0})  # tables written before border-cut boxes were counted

PAIR_EVIDENCE = TableSpec("PairEvidence", {
    "camera_a": "str", "track_a": "int64", "camera_b": "str", "track_b": "int64",
    "n_shared": "int64", "n_votes": "int64", "median_distance": "float64", "linked": "bool",
    "score": "float64", "mean_evidence": "float64", "support": "float64", "n_negative": "int64",
}, defaults={"score": lambda df: np.nan, "mean_evidence": lambda df: np.nan, "support": lambda df: np.nan,
             "n_negative": lambda df: 0})

RESIDUALS = TableSpec("Residuals", {
    "frame": "int64", "global_id": "int64", "camera_id": "str",
    "u_obs": "float32", "v_obs": "float32", "u_proj": "float32", "v_proj": "float32",
    "residual_px": "float32",
})


#: rows per parquet row group: readers can stream a long table (pyarrow reads a whole row group at a time)
ROW_GROUP_ROWS = 65536


def write_table(df: pd.DataFrame, spec: TableSpec, path: str | os.PathLike, **attrs: str) -> None:
    """Write ``df`` (coerced to ``spec``) to parquet at ``path`` atomically.

    ``attrs`` are stored as string key/value metadata in the parquet file
    (for example the tracker kind that made a tracklet table). Row groups hold
    at most :data:`ROW_GROUP_ROWS` rows, so a session-long table (3D points)
    can be read block by block in bounded memory.
    """
    table = spec.coerce(df)
    table.attrs = {"mctrack_table": spec.name, **{k: str(v) for k, v in attrs.items()}}
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False, row_group_size=ROW_GROUP_ROWS)


def read_table(path: str | os.PathLike, spec: TableSpec) -> pd.DataFrame:
    """Read a parquet table written by :func:`write_table` and check its columns.

    Raises :class:`~mctrack.errors.InputError` if the file is missing or a
    column is absent.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, f"{spec.name} table not found", "run the stage that writes it")
    return spec.coerce(pd.read_parquet(path), source=path)


def read_tables(paths: list[str | os.PathLike], spec: TableSpec) -> pd.DataFrame:
    """Read and concatenate several tables of one spec (e.g. all chunks of a camera)."""
    frames = [read_table(p, spec) for p in paths]
    if not frames:
        return spec.empty()
    return spec.coerce(pd.concat(frames, ignore_index=True))


def boxes(df: pd.DataFrame) -> np.ndarray:
    """Return the ``(N, 4) float32`` xyxy px boxes of a DETECTION or TRACKLET2D table."""
    return df[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float32)

#: One row per (frame, global_id) of a smoothed, gap-filled 3D track (:mod:`mctrack.smooth`):
#: ``x, y, z`` smoothed position (m), ``std_x, std_y, std_z`` its posterior standard deviation
#: (m), ``x_raw, y_raw, z_raw`` the triangulated point (m, NaN on filled frames), ``filled``
#: True where no point was triangulated and the position is the smoother's interpolation,
#: ``n_cameras`` cameras of the raw point (0 where filled).
TRACK3D = TableSpec("Track3D", {
    "frame": "int64", "global_id": "int64",
    "x": "float64", "y": "float64", "z": "float64",
    "std_x": "float32", "std_y": "float32", "std_z": "float32",
    "x_raw": "float64", "y_raw": "float64", "z_raw": "float64",
    "filled": "bool", "n_cameras": "int32",
})
