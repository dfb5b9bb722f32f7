"""Exports of a session file to the formats labs already use.

- **MOTChallenge** (:func:`export_mot`): one ``{camera}.txt`` per camera,
  ``frame, id, bb_left, bb_top, bb_width, bb_height, conf`` with 1-based frames
  and 1-based pixel coordinates, written by :func:`mctrack.io.mot.write_mot`
  (the one MOT reader/writer pair; boxes to 1/1000 px), ids = per-camera track
  ids or global ids. Rows follow the evaluation's ``include_coasted`` rule, so
  scoring the file with :mod:`mctrack.evaluate` gives the session's metrics.
- **3D trajectories** (:func:`export_tracks_3d`): long form CSV or Parquet,
  ``frame, time_s, global_id, x, y, z, position_std, n_cameras,
  reprojection_error, confidence`` (world units, px), never a NaN-quality point.
- **movement** (:func:`export_movement`): a netCDF poses dataset (one keypoint
  ``centroid``; ``position (time, space, keypoint, individual)``,
  ``confidence (time, keypoint, individual)``; attrs ``fps``, ``time_unit``,
  ``source_software``, ``source_file``, ``ds_type = "poses"``) that
  ``xarray.open_dataset`` / movement open and compute kinematics on.

An empty session (no global ids) gives empty files of the same formats.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, atomic_path
from .mot import write_mot
from .session import Session, read_session

EXPORT_FORMATS = ("mot", "csv", "parquet", "movement")
MOT_IDS = ("track", "global")
TRACKS_3D_COLUMNS = ["frame", "time_s", "global_id", "x", "y", "z", "position_std", "n_cameras",
                     "reprojection_error", "confidence"]


def _session(s: Session | str | os.PathLike) -> Session:
    return s if isinstance(s, Session) else read_session(s)


def export_mot(session: Session | str | os.PathLike, out_dir: str | os.PathLike, ids: str = "track",
               include_coasted: str | None = None) -> dict[str, Path]:
    """Write one MOTChallenge ``{camera}.txt`` per camera into ``out_dir``; return ``{camera: path}``.

    ``ids``: ``"track"`` (per-camera track ids) or ``"global"`` (global ids,
    the same number for one target in every camera). ``include_coasted``:
    ``"none" | "bridged" | "all"`` as in :func:`mctrack.evaluate.evaluate_2d`;
    default = the session config's ``evaluate.include_coasted`` (else
    ``"bridged"``). A camera without tracklets gets an empty file. Raises
    InputError for an unknown ``ids``.
    """
    from ..evaluate import INCLUDE_COASTED, select_tracklet_rows

    s = _session(session)
    if ids not in MOT_IDS:
        raise InputError(None, "ids", f"unknown value {ids!r}", f"use one of {list(MOT_IDS)}")
    if include_coasted is None:
        include_coasted = (s.config.get("evaluate") or {}).get("include_coasted", "bridged")
    if include_coasted not in INCLUDE_COASTED:
        raise InputError(None, "include_coasted", f"unknown value {include_coasted!r}",
                         f"use one of {list(INCLUDE_COASTED)}")
    tr = select_tracklet_rows(s.tracklets, include_coasted)
    if ids == "global":
        tr = tr.merge(s.association[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"],
                      how="left")
        id_col = "global_id"
    else:
        id_col = "track_id"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    cam_col = tr["camera_id"].to_numpy()
    for cam in s.camera_names:
        paths[cam] = out_dir / f"{cam}.txt"
        write_mot(tr[cam_col == cam], paths[cam], id_column=id_col, conf_column="confidence")
    return paths


def tracks_3d_table(session: Session | str | os.PathLike) -> pd.DataFrame:
    """The long-form 3D table exported by :func:`export_tracks_3d` (extra POINTS3D columns appended)."""
    t = _session(session).tracks_3d()
    return t[TRACKS_3D_COLUMNS + [c for c in t.columns if c not in TRACKS_3D_COLUMNS]]


def export_tracks_3d(session: Session | str | os.PathLike, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write the 3D trajectories (long form) as CSV or Parquet (``fmt`` or ``path``'s suffix).

    Parquet files carry ``units`` / ``world_units`` / ``fps`` key-value metadata.
    """
    s = _session(session)
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    t = tracks_3d_table(s)
    with atomic_path(path) as tmp:
        if fmt == "csv":
            t.to_csv(tmp, index=False, float_format="%.9g")
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(t, preserve_index=False)
            unit = str(s.rig_attrs.get("unit", "m"))
            meta = {b"mctrack_table": b"tracks_3d", b"fps": str(s.fps).encode(), b"world_units": unit.encode(),
                    b"units": f"x,y,z,position_std: {unit}; reprojection_error: px; time_s: s".encode(),
                    b"session": s.session.encode()}
            pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), tmp)
        else:
            raise InputError(path, "format", f"unknown 3D export format {fmt!r}", "use csv or parquet")
    return path


def _movement_dims() -> tuple[str, str]:
    """(keypoint dim, individual dim) as the installed movement names them; singular (movement >= 0.17) if absent."""
    try:
        from movement.io import load_poses
    except ImportError:
        return "keypoint", "individual"
    ds = load_poses.from_numpy(np.zeros((1, 3, 1, 1)), np.ones((1, 1, 1)), ["a"], ["k"], fps=1.0)
    kp = "keypoints" if "keypoints" in ds.dims else "keypoint"
    ind = "individuals" if "individuals" in ds.dims else "individual"
    return kp, ind


def movement_dataset(session: Session | str | os.PathLike):
    """The session's 3D tracks as a movement poses ``xarray.Dataset`` (one keypoint ``centroid``).

    ``position (time, space, keypoint, individual)`` float64 world units with
    ``space = x, y, z``; ``confidence (time, keypoint, individual)`` = mean
    detection confidence of the cameras used; NaN where the target is not
    triangulated or its quality is NaN. ``time`` in s (``frame / fps``), or
    frames when fps is unknown. Individuals are ``id_<global id>`` (coordinate
    ``global_id`` beside it). Dimension names follow the installed movement
    (``keypoints`` / ``individuals`` before 0.17), singular when movement is absent.
    """
    import xarray as xr

    s = _session(session)
    trk = s.tracking
    T, K = trk["global_id"].shape
    xyz = trk["centroid_3d"].astype(np.float64)
    ok = (trk["n_cameras"] > 0) & np.isfinite(trk["position_std"]) & np.isfinite(trk["reprojection_residual"]) \
        & np.isfinite(xyz).all(-1)
    xyz[~ok] = np.nan
    conf = np.where(ok, trk["confidence"], np.nan).astype(np.float64)
    fps = s.fps
    has_fps = bool(np.isfinite(fps) and fps > 0)
    time = trk["frame_index"] / fps if has_fps else trk["frame_index"].astype(np.float64)
    kp, ind = _movement_dims()
    names = [f"id_{k}" for k in range(K)]
    ds = xr.Dataset(
        {"position": (("time", "space", kp, ind), xyz.transpose(0, 2, 1)[:, :, None, :]),
         "confidence": (("time", kp, ind), conf[:, None, :])},
        coords={"time": time, "space": ["x", "y", "z"], kp: ["centroid"], ind: names,
                "global_id": (ind, np.arange(K, dtype=np.int64))})
    unit = str(s.rig_attrs.get("unit", "m"))
    ds["position"].attrs.update(units=unit, description="3D centroid, calibration world frame")
    ds["confidence"].attrs.update(description="mean detection confidence of the cameras used")
    ds.attrs.update(ds_type="poses", source_software="mctrack", source_file=str(s.path), session=s.session,
                    time_unit="seconds" if has_fps else "frames", world_units=unit)
    if has_fps:
        ds.attrs["fps"] = float(fps)
    return ds


def export_movement(session: Session | str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write :func:`movement_dataset` as netCDF-4 (h5netcdf or netCDF4 engine, whichever is installed)."""
    ds = movement_dataset(session)
    path = Path(path)
    try:
        import h5netcdf  # noqa: F401

        engine = "h5netcdf"
    except ImportError:
        engine = None
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=engine)
    return path


def export_session(session: Session | str | os.PathLike, out_dir: str | os.PathLike,
                   formats: tuple[str, ...] = EXPORT_FORMATS, mot_ids: str = "track",
                   include_coasted: str | None = None) -> dict[str, Path | dict]:
    """Run every export of ``formats`` into ``out_dir`` (names ``{session}_3d.csv`` etc.); return their paths."""
    s = _session(session)
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise InputError(None, "format", f"unknown export format {bad[0]!r}", f"use one of {list(EXPORT_FORMATS)}")
    out_dir = Path(out_dir)
    name = s.session or Path(s.path).stem
    out: dict[str, Path | dict] = {}
    if "mot" in formats:
        out["mot"] = export_mot(s, out_dir / "mot", ids=mot_ids, include_coasted=include_coasted)
    for fmt in ("csv", "parquet"):
        if fmt in formats:
            out[fmt] = export_tracks_3d(s, out_dir / f"{name}_3d.{fmt}", fmt)
    if "movement" in formats:
        out["movement"] = export_movement(s, out_dir / f"{name}_movement.nc")
    return out
