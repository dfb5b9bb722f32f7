"""One HDF5 file per session: everything needed to re-analyse a result, and its reader.

Layout (``T`` session frames, ``K`` global ids, column ``k`` = global id ``k``;
every dataset carries ``units`` / ``description`` / ``fill_value`` attributes)::

    /                        attrs: format ("mctrack-session"), format_version, mctrack_version, session,
                                    fps (Hz), n_frames, created (ISO 8601 UTC), config (resolved config, JSON)
    /tracking                attrs: camera_names, world_units, conventions
        frame_index              (T,)       int64    session frame index (0-based)
        global_id                (T, K)     int32    k where target k is observed at frame t (any camera), else -1
        centroid_3d              (T, K, 3)  float32  world units, calibration frame; NaN where not triangulated
        position_std             (T, K)     float32  world units, 3D standard deviation as written by triangulate; NaN
        confidence               (T, K)     float32  mean detection confidence of the cameras used; NaN
        reprojection_residual    (T, K)     float32  px, mean reprojection error over the cameras used; NaN
        n_cameras                (T, K)     int8     cameras used for the 3D point (0 = not triangulated)
        is_confirmed             (T, K)     bool     at least one camera has a *detected* (not coasted) box
        camera_assignments/{cam} (T, K)     int32    det_index of the detection in that camera's detections, -1
        bboxes/{cam}             (T, K, 4)  float32  xyxy px in that camera (detected or coasted box); NaN
    /cameras/{cam}/detections    table: DETECTION columns (without camera_id), one 1-D dataset per column
    /cameras/{cam}/tracklets     table: TRACKLET2D columns (without camera_id); frame_status as int8 codes
                                 with attrs ``categories`` (JSON list, :data:`mctrack.tables.FRAME_STATUS`)
    /association                 table: ASSOCIATION (tracklet -> global id, ``support`` when present)
    /points3d                    table: POINTS3D (long form, exact float64 positions), sorted by frame
    /tracks3d                    table: TRACK3D smoothed, gap-filled tracks (raw values beside them, ``filled``
                                 flags), when the smooth stage ran
    /handoffs                    table: handoff events (only when the association produced them)
    /rig                         attrs: unit, calibration_file, interface (JSON, when all cameras share one;
                                 each camera's own is in its group's ``meta``)
        {cam}/K (3,3), dist (n,), rvec (3,), R (3,3), tvec (3,), size (2,) [w, h px];
              attrs: fisheye, calibration_name. x_cam = R X_world + t (OpenCV / anipose convention)
    /provenance                  attrs: versions (JSON: mctrack, ultralytics, boxmot, snakemake, python, ...),
                                        model_file, model_sha256, detector_backend
        videos                   table: camera, path, size_bytes, n_frames, fps, width, height, frame_offset

Storage: the dense ``/tracking`` datasets are chunked ``(chunk_frames, gid_chunk)``
(plus trailing dims), gzip + shuffle, resizable in both T and K — so one target's
trajectory (:meth:`Session.trajectory`) decompresses ``gid_chunk / K`` of the
data, and ``K = 0`` (nothing detected) still gives valid zero-size datasets.
Tables are 1-D column datasets chunked by ``table_chunk_rows``. Everything is
buffered and flushed block by block (:class:`SessionWriter`), and
:func:`assemble_session` reads its parquet inputs one chunk file at a time, so
memory does not grow with session length. The file is written to a temporary
path and renamed when complete.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import h5py
import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError, atomic_path
from ..tables import ASSOCIATION, DETECTION, FRAME_STATUS, POINTS3D, TRACK3D, TRACKLET2D, TableSpec

log = logging.getLogger("mctrack.session")

FORMAT = "mctrack-session"
FORMAT_VERSION = 2

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

_BOX = "xyxy, distorted image as decoded, origin at the top-left pixel corner, x right, y down"
#: units and meaning written as attributes of every dataset (tracking fields and table columns)
DOCS: dict[str, tuple[str, str]] = {
    "frame_index": ("frame", "session frame index, 0-based; time_s = frame / fps"),
    "global_id": ("", "global id k where target k is observed at this frame, else -1"),
    "centroid_3d": ("world", "3D position (x, y, z) in the calibration's world frame"),
    "position_std": ("world", "3D standard deviation of the position as written by triangulate"),
    "confidence": ("", "mean detection confidence of the cameras used"),
    "reprojection_residual": ("px", "mean reprojection error over the cameras used"),
    "n_cameras": ("", "cameras used for the 3D point, 0 = not triangulated"),
    "is_confirmed": ("", "at least one camera has a detected (not coasted) box"),
    "camera_assignments": ("", "det_index of the detection in this camera's detections table, -1 = none"),
    "bboxes": ("px", f"box in this camera, {_BOX}"),
    "frame": ("frame", "session frame index, 0-based"),
    "det_index": ("", "index of the detection within its camera and frame, -1 = coasted/none"),
    "track_id": ("", "per-camera track id of the 2D tracker"),
    "x1": ("px", f"box left, {_BOX}"), "y1": ("px", f"box top, {_BOX}"),
    "x2": ("px", f"box right, {_BOX}"), "y2": ("px", f"box bottom, {_BOX}"),
    "cx": ("px", "box centroid x"), "cy": ("px", "box centroid y"),
    "frame_status": ("", "int8 code into attrs['categories']: detected / coasted / ..."),
    "x": ("world", "3D x"), "y": ("world", "3D y"), "z": ("world", "3D z"),
    "reprojection_error": ("px", "mean reprojection error over the cameras used"),
    "support": ("", "strength of the weakest link that put this tracklet into its global id"),
}


# --------------------------------------------------------------------------- writing


def _fill_for(dtype) -> object:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.nan
    if dt.kind in "iu":
        return -1
    if dt.kind == "b":
        return False
    return ""


def _column_attrs(ds: h5py.Dataset, name: str, unit_world: str) -> None:
    unit, desc = DOCS.get(name, ("", ""))
    ds.attrs["units"] = unit_world if unit == "world" else unit
    ds.attrs["description"] = desc


def _table_columns(df: pd.DataFrame, spec: TableSpec | None, drop: Iterable[str] = ()) -> dict[str, str]:
    """Column -> kind ("str", "status" or a numpy dtype string) for a table to store."""
    cols = dict(spec.columns) if spec else {}
    for c in df.columns:  # extra columns (e.g. ``support``) are kept with their own dtype
        if c not in cols:
            dt = df[c].dtype
            if isinstance(dt, pd.CategoricalDtype) and set(dt.categories) <= set(FRAME_STATUS):
                cols[c] = "status"
            elif dt.kind in "biuf":
                cols[c] = str(np.dtype(dt))
            else:
                cols[c] = "str"
    return {c: k for c, k in cols.items() if c not in set(drop) and c in df.columns}


class TableWriter:
    """Append DataFrame rows to a group of 1-D column datasets, buffered (flush every ``chunk_rows``).

    ``columns``: name -> ``"str"`` (UTF-8), ``"status"`` (stored as int8 codes
    into :data:`~mctrack.tables.FRAME_STATUS`, attrs ``categories``) or a numpy
    dtype string. Zero rows gives valid zero-length datasets.
    """

    def __init__(self, group: h5py.Group, columns: Mapping[str, str], chunk_rows: int = 65536,
                 unit_world: str = "m", table: str = ""):
        self.group, self.columns, self.chunk = group, dict(columns), int(chunk_rows)
        group.attrs["columns"] = json.dumps(list(self.columns))
        group.attrs["table"] = table
        for name, kind in self.columns.items():
            if kind == "str":
                dtype, fill = h5py.string_dtype(), None
            elif kind == "status":
                dtype, fill = "int8", -1
            else:
                dtype, fill = kind, _fill_for(kind)
            ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(self.chunk,),
                                      compression="gzip", shuffle=kind != "str", **({} if fill is None else
                                                                                  {"fillvalue": fill}))
            _column_attrs(ds, name, unit_world)
            if kind == "status":
                ds.attrs["categories"] = json.dumps(list(FRAME_STATUS))
            if fill is not None:
                ds.attrs["fill_value"] = fill
        self._buf: list[pd.DataFrame] = []
        self._nbuf = 0
        self.n = 0

    def append(self, df: pd.DataFrame) -> None:
        """Buffer rows; write when ``chunk_rows`` rows are buffered."""
        if len(df):
            self._buf.append(df)
            self._nbuf += len(df)
            if self._nbuf >= self.chunk:
                self.flush()

    def flush(self) -> None:
        """Write the buffered rows."""
        if not self._nbuf:
            return
        df = pd.concat(self._buf, ignore_index=True) if len(self._buf) > 1 else self._buf[0]
        n0, n1 = self.n, self.n + len(df)
        for name, kind in self.columns.items():
            s = df[name]
            if kind == "str":
                arr = s.astype(str).to_numpy(dtype=object)
            elif kind == "status":
                arr = pd.Categorical(s, categories=FRAME_STATUS).codes.astype(np.int8)
            else:
                arr = s.to_numpy(dtype=kind)
            ds = self.group[name]
            ds.resize((n1,))
            ds[n0:n1] = arr
        self.n = n1
        self._buf, self._nbuf = [], 0
        self.group.attrs["n_rows"] = self.n


class SessionWriter:
    """Write a session HDF5: dense ``/tracking`` blocks, tables, rig and provenance.

    Use as a context manager::

        with SessionWriter(path, camera_names, n_targets=K, session="s", fps=30.0) as w:
            w.append(block)                       # dense frames [t0, t0 + n), see tracking_block()
            w.table("association", cols).append(df)
            w.write_rig(cameras, unit="m")

    ``block`` holds ``frame_index (n,)`` and any of :data:`TRACKING_FIELDS`
    (shape ``(n, K, ...)``) and ``{field}/{camera}`` for :data:`CAMERA_FIELDS`;
    missing arrays are written as their fill value. Dense blocks are buffered
    and flushed every ``chunk_frames`` frames; ``gid_chunk`` global ids share
    one HDF5 chunk. The file appears at ``path`` only when the block exits
    without an exception.
    """

    def __init__(self, path: str | os.PathLike, camera_names: list[str], n_targets: int, session: str = "",
                 fps: float | None = None, config: dict | None = None, chunk_frames: int = 1024,
                 gid_chunk: int = 16, table_chunk_rows: int = 65536, world_units: str = "m"):
        self.path = Path(path)
        self.cameras = list(camera_names)
        self.K = int(n_targets)
        self.attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "mctrack_version": __version__,
                      "session": session, "fps": float(fps) if fps else float("nan"),
                      "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      "config": json.dumps(config or {}, default=str)}
        self.chunk = max(int(chunk_frames), 1)
        self.gid_chunk = max(1, min(int(gid_chunk), self.K or 1))
        self.table_chunk = int(table_chunk_rows)
        self.world_units = world_units
        self._buf: list[dict[str, np.ndarray]] = []
        self._nbuf = 0
        self._n = 0
        self._tables: list[TableWriter] = []

    def _specs(self):
        for name, spec in TRACKING_FIELDS.items():
            yield f"tracking/{name}", name, spec
        for fld, spec in CAMERA_FIELDS.items():
            for cam in self.cameras:
                yield f"tracking/{fld}/{cam}", fld, spec

    def __enter__(self) -> "SessionWriter":
        self._atomic = atomic_path(self.path)
        self._h5 = h5py.File(self._atomic.__enter__(), "w")
        self._h5.attrs.update(self.attrs)
        trk = self._h5.create_group("tracking")
        trk.attrs["camera_names"] = np.array(self.cameras, dtype=h5py.string_dtype())
        trk.attrs["world_units"] = self.world_units
        trk.attrs["conventions"] = ("column k of every (T, K) dataset is global id k; frames are 0-based session "
                                    f"frames; boxes {_BOX}; world x_cam = R X + t (OpenCV)")
        ds = trk.create_dataset("frame_index", shape=(0,), maxshape=(None,), dtype="int64",
                                chunks=(self.chunk,), compression="gzip")
        _column_attrs(ds, "frame_index", self.world_units)
        for key, name, (tail, dtype, fill) in self._specs():
            shape = (0, self.K) + tail
            ds = self._h5.create_dataset(key, shape=shape, maxshape=(None, None) + tail, dtype=dtype,
                                         chunks=(self.chunk, self.gid_chunk) + tail, compression="gzip",
                                         shuffle=True, fillvalue=fill)
            _column_attrs(ds, name, self.world_units)
            ds.attrs["fill_value"] = fill
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
        for key, _, (tail, dtype, fill) in self._specs():
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

    def table(self, name: str, columns: Mapping[str, str], table: str = "", **attrs) -> TableWriter:
        """A buffered :class:`TableWriter` for group ``name`` (e.g. ``"cameras/cam1/tracklets"``)."""
        grp = self._h5.require_group(name)
        grp.attrs.update(attrs)
        tw = TableWriter(grp, columns, self.table_chunk, self.world_units, table=table)
        self._tables.append(tw)
        return tw

    def write_table(self, name: str, df: pd.DataFrame, spec: TableSpec | None = None, drop: Iterable[str] = (),
                    **attrs) -> None:
        """Write a whole DataFrame as table ``name`` (columns of ``spec`` first, extra columns kept)."""
        tw = self.table(name, _table_columns(df, spec, drop), table=spec.name if spec else name, **attrs)
        tw.append(df)
        tw.flush()

    def write_rig(self, cameras: Mapping, unit: str = "m", calibration_file: str | None = None,
                  interface: dict | None = None, names: Mapping[str, str] | None = None) -> None:
        """Store the calibrated cameras (``{sheet camera: mctrack.calibration.Camera}``) under ``/rig``."""
        rig = self._h5.require_group("rig")
        rig.attrs["unit"] = unit
        rig.attrs["convention"] = "x_cam = R X_world + t, R = Rodrigues(rvec); (u, v) px = distort(K, dist, x/z)"
        if calibration_file:
            rig.attrs["calibration_file"] = str(calibration_file)
        if interface:
            rig.attrs["interface"] = json.dumps(interface, default=_json_default)
        for cam, c in cameras.items():
            g = rig.create_group(cam)
            for k, v, u in (("K", c.K, "px"), ("dist", c.dist, ""), ("rvec", c.rvec, "rad"), ("R", c.R, ""),
                            ("tvec", c.tvec, unit), ("size", np.asarray(c.size, np.int64), "px (width, height)")):
                g.create_dataset(k, data=np.asarray(v)).attrs["units"] = u
            g.attrs["fisheye"] = bool(getattr(c, "fisheye", False))
            g.attrs["calibration_name"] = (names or {}).get(cam, c.name)
            meta = getattr(c, "meta", None)
            if meta:
                g.attrs["meta"] = json.dumps(meta, default=_json_default)

    def write_provenance(self, prov: Mapping) -> None:
        """Store :func:`collect_provenance`'s dict under ``/provenance``."""
        g = self._h5.require_group("provenance")
        g.attrs["versions"] = json.dumps(prov.get("versions", {}))
        for k in ("model_file", "model_sha256", "detector_backend"):
            g.attrs[k] = str(prov.get(k) or "")
        videos = prov.get("videos")
        if videos is not None:
            self.write_table("provenance/videos", pd.DataFrame(videos))

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.flush()
                for t in self._tables:
                    t.flush()
        finally:
            self._h5.close()
            self._atomic.__exit__(exc_type, exc, tb)
        return False


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def tracking_block(t0: int, t1: int, K: int, cameras: list[str], tracklets: pd.DataFrame,
                   association: pd.DataFrame, points: pd.DataFrame) -> dict[str, np.ndarray]:
    """Build the dense ``/tracking`` arrays of frames ``t0 <= t < t1`` from the stage tables (vectorised scatter).

    ``tracklets`` TRACKLET2D (all cameras), ``association`` ASSOCIATION,
    ``points`` POINTS3D; only their rows inside the frame range are used, so
    callers may pass pre-sliced tables. Returns the ``block`` dict of
    :meth:`SessionWriter.append`. Raises ValueError if a tracklet has no
    global id in ``association``.
    """
    block = _empty_block(t0, t1, K)
    _scatter_points(block, points[(points["frame"] >= t0) & (points["frame"] < t1)], t0)
    tr = tracklets[(tracklets["frame"] >= t0) & (tracklets["frame"] < t1)]
    cam_col = tr["camera_id"].to_numpy()
    for cam in cameras:
        a = association[association["camera_id"].to_numpy() == cam]
        lookup = (pd.Index(a["track_id"].to_numpy()), a["global_id"].to_numpy(np.int64))
        _scatter_camera(block, cam, tr[cam_col == cam], lookup, t0, t1, K)
    return block


def _empty_block(t0: int, t1: int, K: int) -> dict[str, np.ndarray]:
    block = {"frame_index": np.arange(t0, t1, dtype=np.int64)}
    for name, (tail, dtype, fill) in TRACKING_FIELDS.items():
        block[name] = np.full((t1 - t0, K) + tail, fill, dtype=dtype)
    return block


# --------------------------------------------------------------------------- streaming inputs

_BATCH_ROWS = 65536


def _frame_sorted(pf) -> bool:
    """True when a parquet file's ``frame`` column never decreases (reads that column only, batch by batch)."""
    last = -np.inf
    for b in pf.iter_batches(batch_size=_BATCH_ROWS, columns=["frame"]):
        f = b.column(0).to_numpy()
        if len(f) and (f[0] < last or (np.diff(f) < 0).any()):
            return False
        last = f[-1] if len(f) else last
    return True


def _sorted_batches(path: str | os.PathLike, spec: TableSpec | None,
                    bucket_frames: int = 1024) -> Iterator[pd.DataFrame]:
    """Rows of one parquet file in frame order, in bounded memory.

    A file sorted by ``frame`` is read ``_BATCH_ROWS`` rows at a time. A large
    file in another order (the association's tracklets are sorted by camera and
    track) is first split on disk into buckets of ``bucket_frames`` frames
    (at most 256 buckets), which are then read and sorted one at a time. A
    small file is read whole and sorted.
    """
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n = pf.metadata.num_rows
    if n == 0:
        return
    if n <= _BATCH_ROWS or not (ordered := _frame_sorted(pf)):
        if n <= _BATCH_ROWS:
            df = pd.read_parquet(path)
            df = spec.coerce(df, source=path) if spec else df
            yield df.sort_values("frame", kind="stable").reset_index(drop=True)
            return
    if ordered:
        for b in pf.iter_batches(batch_size=_BATCH_ROWS):
            df = b.to_pandas()
            yield spec.coerce(df, source=path) if spec else df
        return
    lo, hi, _ = _file_stats(path)
    width = max(int(bucket_frames), -(-int(hi - lo + 1) // 256))
    with tempfile.TemporaryDirectory(prefix="mctrack-buckets-") as tmp:
        writers: dict[int, pq.ParquetWriter] = {}
        try:
            for b in pf.iter_batches(batch_size=_BATCH_ROWS):
                key = (b.column("frame").to_numpy() - int(lo)) // width
                for k in np.unique(key):
                    if k not in writers:
                        writers[k] = pq.ParquetWriter(Path(tmp) / f"{k:06d}.parquet", b.schema)
                    writers[k].write_table(pa.Table.from_batches([b.filter(pa.array(key == k))]))
        finally:
            for w in writers.values():
                w.close()
        log.info("%s is not sorted by frame: read through %d frame buckets", path, len(writers))
        for k in sorted(writers):
            df = pd.read_parquet(Path(tmp) / f"{k:06d}.parquet")
            df = spec.coerce(df, source=path) if spec else df
            yield df.sort_values("frame", kind="stable").reset_index(drop=True)


def _file_stats(path) -> tuple[int, int, set]:
    """(min frame, max frame, camera ids) of a parquet file from its footer statistics (no data read)."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    names = md.schema.names
    lo, hi, cams = np.inf, -np.inf, set()
    for r in range(md.num_row_groups):
        rg = md.row_group(r)
        if rg.num_rows == 0:
            continue
        for name, col in ((n, rg.column(i)) for i, n in enumerate(names)):
            st = col.statistics
            if st is None or not st.has_min_max:
                if name in ("frame", "camera_id"):
                    return -np.inf, np.inf, {None}
                continue
            if name == "frame":
                lo, hi = min(lo, st.min), max(hi, st.max)
            elif name == "camera_id":
                cams |= {st.min, st.max}
    return lo, hi, cams


class FrameStream:
    """Rows of a table in frame order, handed out frame range by frame range (memory ∝ one input file).

    ``batches`` is an iterator of DataFrames, each sorted by ``frame`` and none
    starting before the previous one ended. :meth:`take` returns the rows with
    ``frame < t1`` not returned yet. Raises ValueError when a batch starts
    before an earlier one ended (inputs not in frame order).
    """

    def __init__(self, batches: Iterable[pd.DataFrame], empty: pd.DataFrame):
        self._it = iter(batches)
        self._buf: list[pd.DataFrame] = []
        self._max = -np.inf
        self._done = False
        self._empty = empty

    def take(self, t1: int) -> pd.DataFrame:
        while not self._done and self._max < t1:
            b = next(self._it, None)
            if b is None:
                self._done = True
                break
            if not len(b):
                continue
            f = b["frame"].to_numpy()
            if f[0] < self._max:
                raise ValueError(f"rows not in frame order (frame {f[0]} after {self._max})")
            self._buf.append(b)
            self._max = f[-1]
        if not self._buf:
            return self._empty
        df = pd.concat(self._buf, ignore_index=True) if len(self._buf) > 1 else self._buf[0]
        cut = int(np.searchsorted(df["frame"].to_numpy(), t1, side="left"))
        self._buf = [df.iloc[cut:].reset_index(drop=True)] if cut < len(df) else []
        return df.iloc[:cut]


class CameraStreams:
    """``take(t1) -> {camera: rows with frame < t1 not returned yet}`` over a table's sources.

    Single-camera files (the workflow's per-camera chunk files) stream per
    camera, one file at a time; multi-camera files (the association's
    session-wide tracklet table) stream together in frame order and are split
    by camera. Memory is bounded by one chunk file / one batch, not by session length.
    """

    def __init__(self, cameras: list[str], per_camera: dict[str, FrameStream], shared: FrameStream | None,
                 empty: pd.DataFrame):
        self.cameras, self.per_camera, self.shared, self.empty = list(cameras), per_camera, shared, empty

    def take(self, t1: int) -> dict[str, pd.DataFrame]:
        out = {c: self.per_camera[c].take(t1) if c in self.per_camera else self.empty for c in self.cameras}
        if self.shared is not None:
            rows = self.shared.take(t1)
            cam = rows["camera_id"].to_numpy()
            for c in out:
                part = rows[cam == c]
                if len(part):
                    both = pd.concat([out[c], part], ignore_index=True) if len(out[c]) else part
                    out[c] = both.sort_values("frame", kind="stable").reset_index(drop=True)
        return out


def _camera_streams(source, cameras: list[str], spec: TableSpec) -> CameraStreams:
    """:class:`CameraStreams` of ``spec`` rows from a DataFrame or a list of parquet files.

    Files are attributed to cameras and ordered by their footer statistics;
    overlapping single-camera files of one camera are read together and sorted.
    """
    empty = spec.empty()
    if isinstance(source, pd.DataFrame):
        df = spec.coerce(source)
        return CameraStreams(cameras, {}, FrameStream([df.sort_values("frame", kind="stable")
                                                       .reset_index(drop=True)], empty), empty)
    per_cam: dict[str, list] = {c: [] for c in cameras}
    mixed = []
    for p in source:
        lo, hi, cams = _file_stats(p)
        if not np.isfinite(lo) and not np.isfinite(hi) and None not in cams:
            continue  # empty file
        if len(cams) == 1 and next(iter(cams)) in per_cam:
            per_cam[next(iter(cams))].append((lo, hi, p))
        else:
            mixed.append((lo, hi, p))
    streams = {}
    for cam in cameras:
        files = sorted(per_cam[cam], key=lambda x: (x[0], x[1]))
        if any(files[i + 1][0] <= files[i][1] for i in range(len(files) - 1)):
            d = pd.concat([spec.coerce(pd.read_parquet(p), source=p) for _, _, p in files], ignore_index=True)
            streams[cam] = FrameStream([d.sort_values("frame", kind="stable").reset_index(drop=True)], empty)
        else:
            streams[cam] = FrameStream((b for _, _, p in files for b in _sorted_batches(p, spec)), empty)
    shared = None
    if mixed:
        mixed.sort(key=lambda x: (x[0], x[1]))
        if any(mixed[i + 1][0] <= mixed[i][1] for i in range(len(mixed) - 1)):
            log.info("%d %s files with several cameras overlap in frames: read together", len(mixed), spec.name)
            d = pd.concat([spec.coerce(pd.read_parquet(p), source=p) for _, _, p in mixed], ignore_index=True)
            shared = FrameStream([d.sort_values("frame", kind="stable").reset_index(drop=True)], empty)
        else:
            shared = FrameStream((b for _, _, p in mixed for b in _sorted_batches(p, spec)), empty)
    return CameraStreams(cameras, streams, shared, empty)


def _point_stream(source) -> tuple[FrameStream, pd.DataFrame]:
    """A :class:`FrameStream` of POINTS3D rows and a 0-row frame with all their columns (extra ones kept)."""
    empty = POINTS3D.empty()
    if source is None:
        return FrameStream([], empty), empty
    if isinstance(source, pd.DataFrame):
        df = source.sort_values("frame", kind="stable").reset_index(drop=True)
        return FrameStream([df], df.iloc[:0]), df.iloc[:0]
    import pyarrow.parquet as pq

    empty = pq.read_schema(source).empty_table().to_pandas()
    return FrameStream(_sorted_batches(source, None), empty), empty


# --------------------------------------------------------------------------- provenance


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, or of a folder (e.g. an OpenVINO model): its files' relative paths and bytes."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def package_versions(names: Iterable[str] = ("mctrack", "ultralytics", "boxmot", "snakemake", "numpy", "pandas",
                                             "h5py", "opencv-python", "openvino", "torch")) -> dict[str, str]:
    """Installed versions (importlib.metadata; nothing is imported); absent packages are left out."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    out["mctrack"] = __version__
    return out


def collect_provenance(videos: Mapping[str, tuple[str | os.PathLike, int]], model: str | os.PathLike | None = None,
                       detector_backend: str = "") -> dict:
    """Versions, the detector model's name and SHA-256, and each video's size and frame count.

    ``videos``: ``{camera: (path, frame_offset)}``; a missing video (e.g.
    precomputed detections) gets NaN size and frame count. Video headers are
    read with :func:`mctrack.video.video_info` (no decoding).
    """
    from ..video import video_info

    rows = []
    for cam, (path, offset) in videos.items():
        p = Path(path) if path else None
        row = {"camera": cam, "path": str(path or ""), "size_bytes": -1, "n_frames": -1, "fps": float("nan"),
               "width": -1, "height": -1, "frame_offset": int(offset or 0)}
        if p is not None and p.is_file():
            info = video_info(p)
            row.update(size_bytes=p.stat().st_size, n_frames=info.n_frames, fps=info.fps, width=info.width,
                       height=info.height)
        rows.append(row)
    prov = {"versions": package_versions(), "videos": pd.DataFrame(rows, columns=[
        "camera", "path", "size_bytes", "n_frames", "fps", "width", "height", "frame_offset"]),
        "detector_backend": detector_backend}
    if model and Path(model).exists():
        prov["model_file"] = Path(model).name
        prov["model_sha256"] = file_sha256(model)
    return prov


# --------------------------------------------------------------------------- assembling


def assemble_session(path: str | os.PathLike, n_frames: int, cameras: list[str], tracklets, association: pd.DataFrame,
                     points=None, detections=None, session: str = "", fps: float | None = None,
                     config: dict | None = None, chunk_frames: int = 1024, rig: Mapping | None = None,
                     rig_attrs: Mapping | None = None, provenance: Mapping | None = None,
                     handoffs: pd.DataFrame | None = None, gid_chunk: int = 16, tracks3d=None) -> None:
    """Assemble the session HDF5 from the stage tables, ``chunk_frames`` frames at a time.

    ``tracklets`` / ``detections``: a TRACKLET2D / DETECTION DataFrame or a
    list of parquet files (per-camera chunk files are streamed one at a time:
    memory does not grow with session length). ``points``: POINTS3D DataFrame
    or a parquet path (streamed when sorted by frame). ``rig``: ``{camera:
    Camera}``; ``tracks3d``: TRACK3D (smoothed tracks) DataFrame or parquet
    path, stored as ``/tracks3d`` batch by batch; ``rig_attrs``: ``unit``, ``calibration_file``, ``interface``,
    ``names`` (camera -> entry in the file). ``K`` = number of global ids in
    ``association`` (max + 1; a target is never dropped). Raises ValueError if a
    tracklet has no global id or a 3D point names a global id outside
    ``association``; nothing is written then.
    """
    association = association.reset_index(drop=True)
    K = int(association["global_id"].max()) + 1 if len(association) else 0
    rig_attrs = dict(rig_attrs or {})
    unit = rig_attrs.get("unit", "m")
    tr_streams = _camera_streams(tracklets, cameras, TRACKLET2D)
    det_streams = _camera_streams(detections if detections is not None else DETECTION.empty(), cameras, DETECTION)
    pts, pts_empty = _point_stream(points)
    by_cam = {c: association[association["camera_id"] == c] for c in cameras}
    lookup = {c: (pd.Index(a["track_id"].to_numpy()), a["global_id"].to_numpy(np.int64)) for c, a in by_cam.items()}
    with SessionWriter(path, cameras, K, session=session, fps=fps, config=config, chunk_frames=chunk_frames,
                       gid_chunk=gid_chunk, world_units=unit) as w:
        tr_cols = _table_columns(TRACKLET2D.empty(), TRACKLET2D, drop=["camera_id"])
        det_cols = _table_columns(DETECTION.empty(), DETECTION, drop=["camera_id"])
        tw = {c: w.table(f"cameras/{c}/tracklets", tr_cols, table=TRACKLET2D.name) for c in cameras}
        dw = {c: w.table(f"cameras/{c}/detections", det_cols, table=DETECTION.name) for c in cameras}
        pw = w.table("points3d", _table_columns(pts_empty, POINTS3D), table=POINTS3D.name)
        for t0 in range(0, max(n_frames, 0), chunk_frames):
            t1 = min(t0 + chunk_frames, n_frames)
            block = _empty_block(t0, t1, K)
            dets, trs = det_streams.take(t1), tr_streams.take(t1)
            for cam in cameras:
                dw[cam].append(dets[cam].drop(columns="camera_id"))
                tw[cam].append(trs[cam].drop(columns="camera_id"))
                _scatter_camera(block, cam, trs[cam], lookup[cam], t0, t1, K)
            p = pts.take(t1)
            if len(p) and (p["global_id"].to_numpy() >= K).any():
                raise ValueError("3D points reference a global id missing from the association table")
            pw.append(p)
            _scatter_points(block, p, t0)
            w.append(block)
        end = np.iinfo(np.int64).max  # rows past n_frames (should not exist) are stored too, never dropped silently
        dets, trs = det_streams.take(end), tr_streams.take(end)
        for c in cameras:
            tw[c].append(trs[c].drop(columns="camera_id"))
            dw[c].append(dets[c].drop(columns="camera_id"))
        pw.append(pts.take(np.iinfo(np.int64).max))
        w.write_table("association", association, ASSOCIATION)
        if tracks3d is not None:
            tw3 = w.table("tracks3d", _table_columns(TRACK3D.empty(), TRACK3D), table=TRACK3D.name)
            for b in ([tracks3d.sort_values("frame", kind="stable")] if isinstance(tracks3d, pd.DataFrame)
                      else _sorted_batches(tracks3d, TRACK3D)):
                tw3.append(TRACK3D.coerce(b))
        if handoffs is not None:
            w.write_table("handoffs", handoffs)
        if rig:
            w.write_rig(rig, unit=unit, calibration_file=rig_attrs.get("calibration_file"),
                        interface=rig_attrs.get("interface"), names=rig_attrs.get("names"))
        if provenance:
            w.write_provenance(provenance)
        w._h5.attrs["n_frames"] = int(max(n_frames, 0))


def _scatter_camera(block: dict, cam: str, tr: pd.DataFrame, lookup, t0: int, t1: int, K: int) -> None:
    index, gids = lookup
    n = t1 - t0
    ca = np.full((n, K), -1, np.int32)
    bb = np.full((n, K, 4), np.nan, np.float32)
    if len(tr):
        pos = index.get_indexer(tr["track_id"].to_numpy())
        if (pos < 0).any():
            bad = tr["track_id"].to_numpy()[pos < 0][0]
            raise ValueError(f"tracklets without a global id: camera {cam} track {bad} is not in the association "
                             "table")
        gi = gids[pos]
        ti = tr["frame"].to_numpy() - t0
        block["global_id"][ti, gi] = gi
        det = (tr["frame_status"].astype(str) == "detected").to_numpy()
        block["is_confirmed"][ti[det], gi[det]] = True
        ca[ti, gi] = tr["det_index"].to_numpy()
        bb[ti, gi] = tr[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    block[f"camera_assignments/{cam}"] = ca
    block[f"bboxes/{cam}"] = bb


def _scatter_points(block: dict, p: pd.DataFrame, t0: int) -> None:
    if not len(p):
        return
    ti, gi = p["frame"].to_numpy() - t0, p["global_id"].to_numpy()
    block["centroid_3d"][ti, gi] = p[["x", "y", "z"]].to_numpy(np.float32)
    block["position_std"][ti, gi] = p["position_std"].to_numpy()
    block["confidence"][ti, gi] = p["confidence"].to_numpy()
    block["reprojection_residual"][ti, gi] = p["reprojection_error"].to_numpy()
    block["n_cameras"][ti, gi] = p["n_cameras"].to_numpy()


def write_session(path: str | os.PathLike, n_frames: int, cameras: list[str], tracklets: pd.DataFrame,
                  association: pd.DataFrame, points: pd.DataFrame, session: str = "", fps: float | None = None,
                  config: dict | None = None, chunk_frames: int = 1024, **kwargs) -> None:
    """Assemble the session HDF5 from in-memory stage tables (see :func:`assemble_session` for ``kwargs``)."""
    assemble_session(path, n_frames, cameras, tracklets, association, points, session=session, fps=fps,
                     config=config, chunk_frames=chunk_frames, **kwargs)


# --------------------------------------------------------------------------- reading


def _read_table(g: h5py.Group, spec: TableSpec | None = None, **const) -> pd.DataFrame:
    """A table group back as a DataFrame (``const`` columns prepended, e.g. ``camera_id``)."""
    cols = json.loads(g.attrs["columns"]) if "columns" in g.attrs else list(g)
    n = int(g[cols[0]].shape[0]) if cols else 0
    data = {k: np.full(n, v, dtype=object) for k, v in const.items()}
    for c in cols:
        ds = g[c]
        if "categories" in ds.attrs:
            cats = json.loads(ds.attrs["categories"])
            data[c] = pd.Categorical.from_codes(ds[:].astype(np.int64), categories=cats)
        elif h5py.check_string_dtype(ds.dtype) is not None:
            data[c] = ds.asstr()[:].astype(object)
        else:
            data[c] = ds[:]
    df = pd.DataFrame(data, index=pd.RangeIndex(n))
    if spec is not None:
        order = list(spec.columns) + [c for c in df.columns if c not in spec.columns]
        df = pd.concat([spec.coerce(df), df[[c for c in order if c not in spec.columns]]], axis=1)
    return df


@dataclass
class Session:
    """A session file opened by :func:`read_session`; tables and arrays are read on first access.

    DataFrames: :attr:`detections` (DETECTION), :attr:`tracklets` (TRACKLET2D),
    :attr:`association` (ASSOCIATION, plus ``support`` when written),
    :attr:`points3d` (POINTS3D, exact), :attr:`tracks3d_smoothed` (TRACK3D or None),
    :attr:`handoffs` (or None),
    :meth:`tracks_3d` (long form with ``time_s``), :attr:`videos`.
    numpy: :attr:`tracking` (the dense ``/tracking`` block: ``frame_index (T,)``,
    each :data:`TRACKING_FIELDS` array ``(T, K[, 3])``, ``camera_assignments`` /
    ``bboxes`` dicts keyed by camera), :meth:`trajectory` (one global id, read
    without decompressing the others). Also :attr:`rig` (``{camera: Camera}``),
    :attr:`config`, :attr:`versions`. ``session[key]`` gives
    ``tracking[key]``, ``"attrs"`` or ``"camera_names"`` (the pre-0.2 dict API).
    """

    path: Path
    attrs: dict
    camera_names: list[str]
    n_global_ids: int
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def session(self) -> str:
        return str(self.attrs.get("session", ""))

    @property
    def fps(self) -> float:
        """Frames per second (Hz); NaN when unknown."""
        return float(self.attrs.get("fps", np.nan))

    @property
    def n_frames(self) -> int:
        return int(self.attrs.get("n_frames", len(self.tracking["frame_index"])))

    @property
    def config(self) -> dict:
        """The resolved workflow config the session was made with."""
        return json.loads(self.attrs.get("config", "{}"))

    def _open(self) -> h5py.File:
        return h5py.File(self.path, "r")

    def _per_camera(self, kind: str, spec: TableSpec) -> pd.DataFrame:
        with self._open() as f:
            parts = [_read_table(f[f"cameras/{c}/{kind}"], None, camera_id=c)
                     for c in self.camera_names if f"cameras/{c}/{kind}" in f]
        if not parts:
            return spec.empty()
        df = pd.concat(parts, ignore_index=True)
        extra = [c for c in df.columns if c not in spec.columns]
        return pd.concat([spec.coerce(df), df[extra]], axis=1) if extra else spec.coerce(df)

    @cached_property
    def detections(self) -> pd.DataFrame:
        """All cameras' DETECTION rows (camera order, then frame)."""
        return self._per_camera("detections", DETECTION)

    @cached_property
    def tracklets(self) -> pd.DataFrame:
        """All cameras' TRACKLET2D rows with ``frame_status`` (camera order, then frame)."""
        return self._per_camera("tracklets", TRACKLET2D)

    @cached_property
    def association(self) -> pd.DataFrame:
        """ASSOCIATION: one row per tracklet ``(camera_id, track_id)`` → ``global_id`` (+ ``support``)."""
        with self._open() as f:
            return _read_table(f["association"], ASSOCIATION) if "association" in f else ASSOCIATION.empty()

    @cached_property
    def points3d(self) -> pd.DataFrame:
        """POINTS3D rows as triangulated (float64 positions, world units), sorted by frame."""
        with self._open() as f:
            if "points3d" in f:
                return _read_table(f["points3d"], POINTS3D)
        return _points_from_dense(self.tracking)

    @cached_property
    def tracks3d_smoothed(self) -> pd.DataFrame | None:
        """TRACK3D: smoothed, gap-filled tracks (``x_raw..`` raw, ``filled`` flags), or None when not smoothed."""
        with self._open() as f:
            return _read_table(f["tracks3d"], TRACK3D) if "tracks3d" in f else None

    @cached_property
    def handoffs(self) -> pd.DataFrame | None:
        """Handoff events table, or None when the session has none."""
        with self._open() as f:
            return _read_table(f["handoffs"]) if "handoffs" in f else None

    @cached_property
    def videos(self) -> pd.DataFrame:
        """Per camera: video path, size (bytes), frame count, fps, width, height, frame_offset."""
        with self._open() as f:
            return _read_table(f["provenance/videos"]) if "provenance/videos" in f else pd.DataFrame()

    @cached_property
    def versions(self) -> dict:
        """Package versions, model file and SHA-256 recorded when the session was assembled."""
        with self._open() as f:
            if "provenance" not in f:
                return {}
            a = f["provenance"].attrs
            out = json.loads(a.get("versions", "{}"))
            out.update({k: str(a[k]) for k in ("model_file", "model_sha256", "detector_backend") if k in a})
            return out

    @cached_property
    def rig(self) -> dict:
        """``{camera: mctrack.calibration.Camera}`` as used (empty when uncalibrated); a camera whose
        ``meta`` holds an ``interface`` is a refraction-aware ``RefractiveCamera``."""
        from ..calibration import Camera, FlatInterface, RefractiveCamera

        out = {}
        with self._open() as f:
            for cam, g in (f["rig"].items() if "rig" in f else []):
                out[cam] = Camera(name=str(g.attrs.get("calibration_name", cam)), K=g["K"][:], dist=g["dist"][:],
                                  rvec=g["rvec"][:], tvec=g["tvec"][:], size=tuple(g["size"][:]),
                                  fisheye=bool(g.attrs.get("fisheye", False)),
                                  meta=json.loads(g.attrs["meta"]) if "meta" in g.attrs else {})
                if out[cam].meta.get("interface"):
                    out[cam] = RefractiveCamera.of(out[cam], FlatInterface(**out[cam].meta["interface"]))
        return out

    @cached_property
    def rig_attrs(self) -> dict:
        """``unit``, ``calibration_file`` and ``interface`` (dict) of the rig."""
        with self._open() as f:
            if "rig" not in f:
                return {}
            a = dict(f["rig"].attrs)
        if "interface" in a:
            a["interface"] = json.loads(a["interface"])
        return a

    @cached_property
    def tracking(self) -> dict:
        """The dense ``/tracking`` block as numpy arrays (see module docstring)."""
        with self._open() as f:
            trk = f["tracking"]
            out = {"frame_index": trk["frame_index"][:]}
            for name in TRACKING_FIELDS:
                out[name] = trk[name][:]
            for fld in CAMERA_FIELDS:
                out[fld] = {cam: trk[fld][cam][:] for cam in self.camera_names}
        return out

    def trajectory(self, global_id: int) -> pd.DataFrame:
        """One global id's triangulated frames from the dense block, reading only its HDF5 chunks.

        Columns ``frame, time_s, x, y, z, position_std, n_cameras,
        reprojection_error, confidence``; frames without a finite point are left out.
        """
        k = int(global_id)
        if not 0 <= k < self.n_global_ids:
            raise KeyError(f"global id {k} not in 0..{self.n_global_ids - 1}")
        with self._open() as f:
            trk = f["tracking"]
            xyz = trk["centroid_3d"][:, k, :]
            cols = {n: trk[n][:, k] for n in ("position_std", "n_cameras", "reprojection_residual", "confidence")}
            frame = trk["frame_index"][:]
        ok = np.isfinite(xyz).all(1) & np.isfinite(cols["position_std"]) & np.isfinite(cols["reprojection_residual"])
        return pd.DataFrame({"frame": frame[ok], "time_s": frame[ok] / self.fps, "x": xyz[ok, 0], "y": xyz[ok, 1],
                             "z": xyz[ok, 2], "position_std": cols["position_std"][ok],
                             "n_cameras": cols["n_cameras"][ok],
                             "reprojection_error": cols["reprojection_residual"][ok],
                             "confidence": cols["confidence"][ok]})

    def tracks_3d(self) -> pd.DataFrame:
        """3D trajectories in long form, never a point with NaN quality.

        One row per triangulated ``(frame, global_id)`` whose position,
        ``position_std`` and ``reprojection_error`` are finite: ``frame,
        time_s, global_id, x, y, z`` (world units), ``position_std``,
        ``n_cameras``, ``reprojection_error`` (px), ``confidence`` and any extra
        POINTS3D columns. ``time_s = frame / fps``.
        """
        p = self.points3d
        q = p[["x", "y", "z", "position_std", "reprojection_error"]].to_numpy(np.float64)
        p = p[np.isfinite(q).all(1) & (p["n_cameras"].to_numpy() > 0)].sort_values(["frame", "global_id"])
        p = p.reset_index(drop=True)
        p.insert(1, "time_s", p["frame"].to_numpy() / self.fps)
        return p

    def __getitem__(self, key: str):
        if key == "attrs":
            return self.attrs
        if key == "camera_names":
            return self.camera_names
        return self.tracking[key]


def _points_from_dense(trk: dict) -> pd.DataFrame:
    t, k = np.nonzero(trk["n_cameras"] > 0)
    xyz = trk["centroid_3d"][t, k]
    return POINTS3D.coerce(pd.DataFrame({
        "frame": trk["frame_index"][t], "global_id": k, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "reprojection_error": trk["reprojection_residual"][t, k], "n_cameras": trk["n_cameras"][t, k],
        "position_std": trk["position_std"][t, k], "confidence": trk["confidence"][t, k]}))


def read_session(path: str | os.PathLike) -> Session:
    """Open a session HDF5 written by :func:`assemble_session` (tables and arrays load lazily).

    Example::

        s = mctrack.read_session("results/synthetic/synthetic.h5")
        s.tracks_3d()          # DataFrame: frame, time_s, global_id, x, y, z, position_std, ...

    Raises :class:`~mctrack.errors.InputError` if the file is missing, not
    HDF5, or has no ``/tracking`` group.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "session file not found", "run `snakemake` to assemble it")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, None, f"not an HDF5 file ({exc})", "pass the results/{session}/{session}.h5 file") \
            from None
    with f:
        if "tracking" not in f:
            raise InputError(path, "/tracking", "group missing", "this is not an mctrack session file")
        trk = f["tracking"]
        cams = [str(c) for c in trk.attrs["camera_names"]]
        K = int(trk["global_id"].shape[1])
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    return Session(path, attrs, cams, K)


def tracks_3d(session: Session | str | os.PathLike) -> pd.DataFrame:
    """Long-form 3D trajectories of a session (see :meth:`Session.tracks_3d`)."""
    if not isinstance(session, Session):
        session = read_session(session)
    return session.tracks_3d()
