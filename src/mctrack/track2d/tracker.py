"""Per-camera tracking of one chunk: :class:`Tracker2D` (boxmot via the adapter) and :func:`track_chunk`.

See :mod:`mctrack.track2d` for the row semantics."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, atomic_path
from ..tables import DETECTION, FRAME_STATUS, TRACKLET2D, read_table, write_table
from .boxmot_adapter import (
    _RESERVED_PARAMS,
    NEEDS_REID,
    TRACKERS,
    BoxmotTracker,
    allowed_params,
    boxmot_version,
    build_tracker,
)

__all__ = ["TRACKERS", "Tracker2D", "TrackerConfig", "track_chunk"]

# Defaults (documented in TrackerConfig).
DEFAULT_KIND = "botsort"
DEFAULT_N_INIT = 3
DEFAULT_COAST_SECONDS = 1.0
DEFAULT_DET_THRESH = 0.6
DEFAULT_FPS = 30.0
#: fraction of a chunk's detections at or below ``det_thresh`` above which tracking warns
LOW_SCORE_WARN = 0.2

log = logging.getLogger("mctrack.track_2d")

# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackerConfig:
    """Configuration of the per-camera tracker (config section ``track_2d``).

    Attributes
    ----------
    kind : str
        Tracker in :data:`TRACKERS`: ``"botsort"`` (default; BoT-SORT without
        camera-motion compensation: ByteTrack's two-stage association that also
        uses low-score detections, a Kalman filter on box width/height, and
        appearance when ``reid`` is set), ``"bytetrack"`` (ByteTrack),
        ``"ocsort"`` (OC-SORT), ``"deepocsort"`` (Deep OC-SORT), ``"hybridsort"``
        (Hybrid-SORT), ``"boosttrack"`` (BoostTrack), ``"sfsort"`` (SFSORT, no
        motion model) and ``"strongsort"`` (StrongSORT; requires ``reid``).
        Deep OC-SORT, Hybrid-SORT and BoostTrack use appearance in association
        only when ``reid`` is set; all run without camera-motion compensation
        (fixed cameras). See the factories in
        :mod:`mctrack.track2d.boxmot_adapter` for how the fields below map to
        each boxmot constructor. BoT-SORT reports higher HOTA/IDF1 than
        ByteTrack on MOT17/MOT20 (Aharon et al., 2022, table 5) and was the best
        of the three here on TUD-Campus with YOLOv8n detections (see
        ``benchmarks/bench_tracking_accuracy.py``).
    n_init : int
        Probation length: number of matched detections (in total, consecutive or
        not) before a track is confirmed and its rows are emitted. ``>= 1``.
        Default 3 = ``min_hits`` of SORT / OC-SORT and ``n_init`` of DeepSORT.
    max_coast_frames : int or None
        Frames a track stays alive (and emits ``"coasted"`` rows) after its last
        matched detection. ``>= 0``. ``None`` (default) = 1 s of video:
        ``round(fps)`` frames (30 at 30 fps = ByteTrack's ``track_buffer`` and
        OC-SORT's ``max_age``; 60 at 60 fps, 25 at 25 fps), resolved by
        :meth:`from_dict`.
    det_thresh : float
        Detection confidence above which (strictly) a detection takes part in the
        first association stage and may start a new track; in ``[0, 1)``.
        Lower-scoring detections (down to boxmot's ``min_conf``, 0.1) are used by
        the second (BYTE) stage of ByteTrack / BoT-SORT, so the detector should
        keep them (``detect.*.conf`` 0.1). Default 0.6: the high-score threshold
        of the ByteTrack and BoT-SORT papers for YOLO-family person detectors
        (Zhang et al., ECCV 2022, sec. 4.1; Aharon et al., 2022, sec. 4.2);
        boxmot's own defaults are 0.45 (ByteTrack) / 0.5 (BoT-SORT). The best
        value depends on the detector's score calibration: with YOLOv8n on
        TUD-Campus 0.6 beat 0.3-0.5; on the synthetic walkers
        (``benchmarks/walkers.py``, whose scores are not a real detector's)
        0.4-0.5 did. For BoT-SORT it also sets ``new_track_thresh``. The
        workflow fills a null ``det_thresh`` from the detector backend
        (:func:`mctrack.config.tracker_settings`: 0 for background
        subtraction, whose blobs are all detections); :meth:`from_dict` reads
        null as this default.
    reid : str or None
        Path of an OSNet-style ReID model in ONNX format (e.g.
        ``osnet_x0_25_msmt17.onnx``); when set, every detection gets an
        appearance embedding (the tracking job then reads video frames; needs
        ``onnxruntime``) which tracklet refinement uses to link fragments.
        ``None`` (default): motion only. The inference session is never saved
        in the tracker state.
    params : dict
        Extra keyword arguments for the boxmot constructor (e.g. ``iou_threshold``,
        ``delta_t``, ``inertia``, ``match_thresh``, ``min_conf``). Keys the
        wrapper sets itself (``min_hits``, ``max_age``, ``track_buffer``,
        ``det_thresh``/``track_thresh``/``track_high_thresh``, ``frame_rate``,
        ``per_class``, ReID/CMC/OBB options) are rejected.
    """

    kind: str = DEFAULT_KIND
    n_init: int = DEFAULT_N_INIT
    max_coast_frames: int = round(DEFAULT_COAST_SECONDS * DEFAULT_FPS)
    det_thresh: float = DEFAULT_DET_THRESH
    params: dict = field(default_factory=dict)
    reid: str | None = None

    @classmethod
    def from_dict(cls, d: dict | None, fps: float = DEFAULT_FPS) -> TrackerConfig:
        """Build and validate a config from the ``track_2d`` mapping of the workflow config.

        Missing keys take the defaults above; ``max_coast_frames: null`` (or
        absent) becomes ``round(fps)`` frames (1 s), ``det_thresh: null`` the
        default 0.6. The ``refine`` sub-mapping
        (tracklet refinement, :class:`mctrack.track2d.refine.RefineConfig`) is
        ignored here. Raises :class:`~mctrack.errors.InputError` with field
        ``track_2d.<key>`` (or ``track_2d.params.<key>``) for an unknown key, a
        wrong type or an out-of-range value (also ``fps <= 0``), and for
        ``params`` that boxmot rejects.
        """
        d = {} if d is None else d
        if not isinstance(d, dict):
            raise InputError(None, "track_2d", f"expected a mapping, got {type(d).__name__}",
                             "write track_2d as a mapping of key: value")
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k != "refine"}
        for key in d:
            if key not in known:
                raise InputError(None, f"track_2d.{key}", "unknown key", f"use only {sorted(known | {'refine'})}")
        if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
            raise InputError(None, "fps", f"must be a positive number, got {fps!r}", "check the video's frame rate")
        if d.get("max_coast_frames") is None:
            d["max_coast_frames"] = max(1, round(DEFAULT_COAST_SECONDS * float(fps)))
        if "det_thresh" in d and d["det_thresh"] is None:
            del d["det_thresh"]
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        """Return the config as a plain dict (inverse of :meth:`from_dict`)."""
        return asdict(self)

    def validate(self) -> None:
        """Check every field; raise :class:`~mctrack.errors.InputError` naming ``track_2d.<field>``.

        Also builds the boxmot tracker once, so invalid ``params`` values fail
        here rather than at the first chunk.
        """
        self._check_fields()
        if self.params:  # with no extra params the checked fields cannot fail; keep boxmot/torch out of planning
            build_tracker(self)

    def _check_fields(self) -> None:
        """Field checks of :meth:`validate` without building the tracker."""
        if not isinstance(self.kind, str) or self.kind not in TRACKERS:
            raise InputError(None, "track_2d.kind", f"unknown tracker {self.kind!r}",
                             f"use one of {sorted(TRACKERS)}")
        if self.kind in NEEDS_REID and self.reid is None:
            raise InputError(None, "track_2d.reid", f"tracker {self.kind!r} needs appearance embeddings but "
                             "track_2d.reid is not set", "set track_2d.reid to an OSNet ONNX model (e.g. "
                             "../shared/models/osnet_x0_25_msmt17.onnx; the tracking job then reads the video), or "
                             "choose a kind that works without ReID (botsort, bytetrack, ocsort, deepocsort, "
                             "boosttrack, hybridsort, sfsort)")
        for name, lo in (("n_init", 1), ("max_coast_frames", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise InputError(None, f"track_2d.{name}", f"must be an integer >= {lo}, got {v!r}",
                                 f"set track_2d.{name} to an integer >= {lo}")
        v = self.det_thresh
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not (0.0 <= float(v) < 1.0):
            raise InputError(None, "track_2d.det_thresh", f"must be a number in [0, 1), got {v!r}",
                             "set track_2d.det_thresh to a detection confidence such as 0.3")
        if self.reid is not None and (not isinstance(self.reid, str) or not Path(self.reid).is_file()):
            raise InputError(None, "track_2d.reid", f"ReID model {self.reid!r} not found",
                             "set track_2d.reid to an existing .onnx file (e.g. osnet_x0_25_msmt17.onnx) or null")
        if not isinstance(self.params, dict):
            raise InputError(None, "track_2d.params", f"expected a mapping, got {type(self.params).__name__}",
                             "write track_2d.params as a mapping of boxmot constructor arguments")
        allowed = allowed_params(self.kind) if self.params else None
        for key in self.params:
            if key in _RESERVED_PARAMS:
                raise InputError(None, f"track_2d.params.{key}", "is set by mctrack and cannot be overridden",
                                 "use track_2d.n_init / max_coast_frames / det_thresh instead, or remove it")
            if allowed is not None and key not in allowed:
                raise InputError(None, f"track_2d.params.{key}", f"not a parameter of boxmot {self.kind}",
                                 f"use one of {sorted(allowed)}")


_ROW = np.dtype([("track_id", "i8"), ("frame", "i8"), ("box", "f4", (4,)), ("status", "i1"),
                 ("det_index", "i4"), ("confidence", "f4")])

_STATE_VERSION = 1


def _rows_to_frame(blocks: list[np.ndarray], camera_id: str) -> pd.DataFrame:
    """Concatenate row blocks, sort by (frame, track_id) and build a TRACKLET2D DataFrame."""
    arr = np.concatenate(blocks) if blocks else np.empty(0, _ROW)
    arr = arr[np.lexsort((arr["track_id"], arr["frame"]))]
    box = arr["box"].reshape(-1, 4)
    df = pd.DataFrame({
        "camera_id": np.full(len(arr), camera_id, dtype=object),
        "track_id": arr["track_id"],
        "frame": arr["frame"],
        "x1": box[:, 0], "y1": box[:, 1], "x2": box[:, 2], "y2": box[:, 3],
        "cx": (box[:, 0] + box[:, 2]) * np.float32(0.5),
        "cy": (box[:, 1] + box[:, 3]) * np.float32(0.5),
        "frame_status": pd.Categorical.from_codes(arr["status"].astype(np.int8), categories=FRAME_STATUS),
        "det_index": arr["det_index"],
        "confidence": arr["confidence"],
    })
    return TRACKLET2D.coerce(df)


def attach_appearance(rows: pd.DataFrame, detections: pd.DataFrame | str | os.PathLike | None,
                      camera_id: str) -> pd.DataFrame:
    """Copy each detected row's appearance (``chroma_r, chroma_g``) from its detection.

    ``rows``: TRACKLET2D of one camera; ``detections``: its DETECTION table
    (rows joined on ``(frame, det_index)``; other cameras' rows ignored).
    Coasted and interpolated rows, and detections without appearance, get NaN.
    Returns a TRACKLET2D table in the order of ``rows``.
    """
    if detections is None or isinstance(detections, (str, os.PathLike)) or not len(rows):
        return rows
    if not {"chroma_r", "chroma_g"} <= set(detections.columns):
        return rows
    d = detections
    if "camera_id" in d.columns:
        d = d[d["camera_id"].astype(str).to_numpy() == str(camera_id)]
    d = d[["frame", "det_index", "chroma_r", "chroma_g"]].drop_duplicates(["frame", "det_index"])
    key = pd.MultiIndex.from_arrays([d["frame"].to_numpy(np.int64), d["det_index"].to_numpy(np.int64)])
    pos = pd.Index(key).get_indexer(pd.MultiIndex.from_arrays([rows["frame"].to_numpy(np.int64),
                                                              rows["det_index"].to_numpy(np.int64)]))
    ok = (pos >= 0) & (rows["det_index"].to_numpy() >= 0)
    out = rows.copy()
    for c in ("chroma_r", "chroma_g"):
        v = np.full(len(rows), np.nan, np.float32)
        v[ok] = d[c].to_numpy(np.float32)[pos[ok]]
        out[c] = v
    return TRACKLET2D.coerce(out)


def _detection_arrays(dets: pd.DataFrame | None, source=None):
    """Validate DETECTION rows and return (frame, det_index, boxes, conf, cls) numpy arrays.

    Rows with a non-finite or empty box (``x2 <= x1`` or ``y2 <= y1``) are
    dropped (boxmot rejects them); a confidence outside ``[0, 1]`` or a negative
    class id raises :class:`~mctrack.errors.InputError`. Rows are stably sorted
    by ``(frame, det_index)`` so the order given to boxmot does not depend on
    the table's row order.
    """
    if dets is None or len(dets) == 0:
        return (np.empty(0, np.int64), np.empty(0, np.int32), np.empty((0, 4), np.float32),
                np.empty(0, np.float32), np.empty(0, np.int32))
    cols = ["frame", "det_index", "x1", "y1", "x2", "y2", "confidence", "class_id"]
    missing = [c for c in cols if c not in dets.columns]
    if missing:
        raise InputError(source, f"Detection column '{missing[0]}'", "missing",
                         f"pass a DETECTION table with columns {list(DETECTION.columns)}")
    frame = dets["frame"].to_numpy(np.int64)
    det_index = dets["det_index"].to_numpy(np.int32)
    boxes = dets[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    conf = dets["confidence"].to_numpy(np.float32)
    cls = dets["class_id"].to_numpy(np.int32)
    bad = ~np.isfinite(conf) | (conf < 0) | (conf > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(source, "Detection column 'confidence'",
                         f"value {conf[i]!r} at frame {frame[i]} is outside [0, 1]",
                         "write detector scores as probabilities in [0, 1]")
    if (cls < 0).any():
        i = int(np.flatnonzero(cls < 0)[0])
        raise InputError(source, "Detection column 'class_id'", f"negative value {cls[i]} at frame {frame[i]}",
                         "use non-negative class ids")
    keep = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    order = np.lexsort((det_index, frame))
    order = order[keep[order]]
    return frame[order], det_index[order], boxes[order], conf[order], cls[order]


def _embedding_matrix(embeddings: pd.DataFrame | None, frame: np.ndarray, det_index: np.ndarray) -> np.ndarray:
    """Rows of ``embeddings`` (``frame, det_index, e0..``) aligned to detection keys -> ``(n, D) float32``.

    Raises :class:`~mctrack.errors.InputError` when embeddings are missing or
    do not cover every detection.
    """
    if embeddings is None:
        raise InputError(None, "track_2d.reid", "this tracker configuration needs appearance embeddings",
                         "pass embeddings (track_chunk computes them from the video when track_2d.reid is set)")
    cols = [c for c in embeddings.columns if c.startswith("e") and c[1:].isdigit()]
    keys = pd.DataFrame({"frame": frame, "det_index": det_index})
    j = keys.merge(embeddings, on=["frame", "det_index"], how="left", sort=False)
    e = j[cols].to_numpy(np.float32) if cols else np.zeros((len(keys), 0), np.float32)
    if len(keys) and (not cols or np.isnan(e).any()):
        raise InputError(None, "embeddings", "some detections have no appearance embedding",
                         "compute embeddings for every detection of the chunk")
    return e


# ---------------------------------------------------------------------------
# the wrapper
# ---------------------------------------------------------------------------

class Tracker2D:
    """One camera's tracker: a boxmot tracker plus probation bookkeeping (see module doc).

    Parameters
    ----------
    cfg : TrackerConfig
        Configuration (its fields are checked again here; InputError if invalid).
    camera_id : str
        Camera name written to every output row.

    Frames must be fed in increasing order without gaps (every frame, with or
    without detections); the first call may start at any frame. Nothing of
    boxmot leaks out: inputs are DETECTION rows, outputs TRACKLET2D rows.
    """

    def __init__(self, cfg: TrackerConfig, camera_id: str):
        cfg._check_fields()
        self.cfg = cfg
        self.camera_id = str(camera_id)
        self._tracker = BoxmotTracker(cfg)
        self._boxmot_version = boxmot_version()
        self._state_version = _STATE_VERSION
        self.next_frame: int | None = None        # next frame expected (None: fresh tracker)
        self._hits: dict[int, int] = {}            # matched detections so far, tracks in probation
        self._confirmed: set[int] = set()          # alive confirmed track ids
        self._pending: dict[int, list[np.ndarray]] = {}   # held-back rows of tracks in probation
        self._out: list[np.ndarray] = []           # emitted rows not yet returned

    # -- per frame ----------------------------------------------------------
    def _check_frame(self, frame: int) -> None:
        if self.next_frame is not None and frame != self.next_frame:
            raise InputError(None, "frame", f"camera {self.camera_id}: got frame {frame} but the tracker state "
                             f"expects frame {self.next_frame} next",
                             "feed every frame in order; chain chunks [a, b), [b, c) with the state of the "
                             "previous chunk")

    def _step(self, frame: int, det_index: np.ndarray, boxes: np.ndarray, conf: np.ndarray,
              cls: np.ndarray, emb: np.ndarray | None = None) -> None:
        """Advance one frame with already validated detection arrays (n rows each; ``emb (n, D)`` or None)."""
        ids_all, matched, visible, det_row, pred = self._tracker.step(boxes, conf, cls, emb)
        self.next_frame = frame + 1

        alive = set(ids_all.tolist())
        ids, matched, det_row, pred = ids_all[visible], matched[visible], det_row[visible], pred[visible]
        m = len(ids)
        rows = np.empty(m, _ROW)
        rows["track_id"] = ids
        rows["frame"] = frame
        box = pred
        box[matched] = boxes[det_row[matched]]
        rows["box"] = box
        rows["status"] = np.where(matched, 0, 1)
        di = np.full(m, -1, np.int32)
        di[matched] = det_index[det_row[matched]]
        rows["det_index"] = di
        cf = np.full(m, np.nan, np.float32)
        cf[matched] = conf[det_row[matched]]
        rows["confidence"] = cf

        # probation bookkeeping
        n_init = self.cfg.n_init
        is_conf = np.zeros(m, bool)
        for i, tid in enumerate(ids.tolist()):
            if tid in self._confirmed:
                is_conf[i] = True
                continue
            h = self._hits.get(tid, 0) + int(matched[i])
            if h >= n_init:                       # confirmed now: backfill held-back rows
                self._confirmed.add(tid)
                self._hits.pop(tid, None)
                held = self._pending.pop(tid, None)
                if held:
                    self._out.extend(held)
                is_conf[i] = True
            else:
                self._hits[tid] = h
                self._pending.setdefault(tid, []).append(rows[i:i + 1])
        if is_conf.any():
            self._out.append(rows[is_conf])
        # forget tracks boxmot dropped (a dead track in probation emits nothing)
        for d in (self._hits, self._pending):
            for tid in [t for t in d if t not in alive]:
                del d[tid]
        self._confirmed &= alive

    def update(self, frame: int, dets: pd.DataFrame | None) -> None:
        """Advance the tracker by one frame; the rows it emits accumulate until :meth:`flush`.

        Parameters
        ----------
        frame : int
            Session frame index (0-based); must be the frame after the previous call.
        dets : DataFrame or None
            DETECTION rows of this frame only (any camera_id is ignored; ``None``
            or 0 rows = no detections, so alive tracks coast).

        Raises :class:`~mctrack.errors.InputError` for an out-of-order frame,
        rows of another frame, or invalid confidences / class ids.
        """
        frame = int(frame)
        self._check_frame(frame)
        f, di, bx, cf, cl = _detection_arrays(dets)
        if len(f) and (f != frame).any():
            raise InputError(None, "Detection column 'frame'", f"rows of frame {int(f[f != frame][0])} passed "
                             f"to update() of frame {frame}", "pass only the rows of one frame")
        self._step(frame, di, bx, cf, cl)

    def flush(self) -> pd.DataFrame:
        """Return (and forget) every emitted row not yet returned, as a TRACKLET2D table."""
        out, self._out = self._out, []
        return _rows_to_frame(out, self.camera_id)

    def run(self, detections: pd.DataFrame, start: int, stop: int,
            embeddings: pd.DataFrame | None = None) -> pd.DataFrame:
        """Track frames ``start <= f < stop`` in order and return the rows emitted meanwhile.

        Parameters
        ----------
        detections : DataFrame
            DETECTION table; rows outside ``[start, stop)`` are ignored and, if it
            has a ``camera_id`` column, so are rows of other cameras. A frame
            without rows is still processed (tracks coast).
        embeddings : DataFrame, optional
            Appearance embeddings ``frame, det_index, e0..e{D-1}`` of these
            detections (:func:`mctrack.track2d.reid.embed_detections`); used by
            trackers that take them (``reid`` set and a kind other than
            ``bytetrack``, ``ocsort``, ``sfsort``), required there.
        start, stop : int
            Session frame range (0-based, stop exclusive). ``start`` must equal
            the frame after the last one processed when the tracker is not fresh.

        Returns
        -------
        DataFrame
            TRACKLET2D rows emitted by this call, sorted by ``(frame, track_id)``.
            Includes backfilled rows of tracks confirmed in this call, which may
            belong to frames before ``start``. Rows emitted by earlier
            :meth:`update` calls and not yet flushed are not included.

        Logs a warning when more than :data:`LOW_SCORE_WARN` of the range's
        detections score at or below ``det_thresh`` (they cannot start tracks).
        Raises :class:`~mctrack.errors.InputError` on an out-of-order ``start``,
        ``stop < start`` or invalid detections.
        """
        start, stop = int(start), int(stop)
        if stop < start:
            raise InputError(None, "stop", f"stop {stop} < start {start}", "pass a frame range with start <= stop")
        self._check_frame(start)
        if detections is not None and len(detections) and "camera_id" in detections.columns:
            detections = detections[detections["camera_id"].astype(str).to_numpy() == self.camera_id]
        f, di, bx, cf, cl = _detection_arrays(detections)
        lo, hi = np.searchsorted(f, [start, stop])
        f, di, bx, cf, cl = f[lo:hi], di[lo:hi], bx[lo:hi], cf[lo:hi], cl[lo:hi]
        low = int((cf <= self.cfg.det_thresh).sum())
        if len(cf) and low > LOW_SCORE_WARN * len(cf):
            log.warning("camera %s frames [%d, %d): %d of %d detections (%.0f %%) score at or below "
                        "track_2d.det_thresh = %g and cannot start tracks; if they are targets, lower "
                        "track_2d.det_thresh or leave it null to follow the detector", self.camera_id, start, stop,
                        low, len(cf), 100.0 * low / len(cf), self.cfg.det_thresh)
        em = _embedding_matrix(embeddings, f, di) if self._tracker.uses_embeddings else None
        bounds = np.searchsorted(f, np.arange(start, stop + 1))
        mark = len(self._out)
        for k, frame in enumerate(range(start, stop)):
            a, b = bounds[k], bounds[k + 1]
            self._step(frame, di[a:b], bx[a:b], cf[a:b], cl[a:b], None if em is None else em[a:b])
        if stop == start and self.next_frame is None:
            self.next_frame = start
        emitted = self._out[mark:]
        del self._out[mark:]
        return _rows_to_frame(emitted, self.camera_id)

    # -- persistence ----------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the whole wrapper state with cloudpickle, atomically (via :func:`~mctrack.errors.atomic_path`).

        The state holds the boxmot tracker, the probation bookkeeping and held-back
        rows, the next expected frame, and rows emitted by :meth:`update` but not
        yet flushed (:meth:`run` leaves none). cloudpickle also serialises lambdas
        and closures a tracker may hold (plain ``pickle`` happens to work for the
        three kinds with boxmot 25.0.0, but not for every boxmot version);
        reading needs only ``pickle``.
        """
        import cloudpickle

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            cloudpickle.dump(self, fh)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tracker2D:
        """Read a state written by :meth:`save`.

        Raises :class:`~mctrack.errors.InputError` if the file is missing,
        unreadable, not a tracker state, or was written with another boxmot
        version (pickled tracker internals are not portable across versions).
        """
        import pickle

        path = Path(path)
        if not path.exists():
            raise InputError(path, None, "tracker state not found", "run the previous chunk first")
        try:
            with open(path, "rb") as fh:
                obj = pickle.load(fh)
        except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad state file
            raise InputError(path, None, f"unreadable tracker state ({type(e).__name__}: {e})",
                             "delete it and rerun tracking from the first chunk") from None
        if not isinstance(obj, cls) or getattr(obj, "_state_version", None) != _STATE_VERSION:
            raise InputError(path, None, "not a Tracker2D state file of this mctrack version",
                             "delete it and rerun tracking from the first chunk")
        if obj._boxmot_version != boxmot_version():
            raise InputError(path, None, f"written with boxmot {obj._boxmot_version}, "
                             f"installed is {boxmot_version()}", "rerun tracking from the first chunk")
        return obj


def track_chunk(cfg: TrackerConfig, detections: pd.DataFrame | str | os.PathLike, start: int, stop: int,
                camera_id: str, state_in: str | os.PathLike | None, state_out: str | os.PathLike,
                out_path: str | os.PathLike, video: str | os.PathLike | None = None, frame_offset: int = 0,
                embeddings_out: str | os.PathLike | None = None) -> pd.DataFrame:
    """Track one chunk ``[start, stop)`` of one camera and write its outputs.

    Loads ``state_in`` (or builds a fresh :class:`Tracker2D` when ``None``, i.e.
    the first chunk), runs it, writes the TRACKLET2D rows emitted in this chunk
    to ``out_path`` (parquet, via :func:`mctrack.tables.write_table`, with
    attributes ``tracker``, ``camera_id``, ``start``, ``stop``) and the new state
    to ``state_out``. Returns the written table. The union of all chunks'
    tables equals the table of one run over the whole range.

    With ``cfg.reid`` set, every detection of the chunk gets an appearance
    embedding from ``video`` (decoded with ``frame_offset``; see
    :func:`mctrack.track2d.reid.embed_detections`), used online by trackers
    that take embeddings and written to ``embeddings_out`` (parquet ``frame,
    det_index, e0..e{D-1}``) for :mod:`mctrack.track2d.refine`. Without
    ``cfg.reid``, ``embeddings_out`` (if given) gets an empty table.

    ``detections`` is a DETECTION DataFrame or the path of a DETECTION parquet.
    Raises :class:`~mctrack.errors.InputError` when the state belongs to another
    camera or configuration, when chunks are not contiguous, when ReID is on
    without a video, or on bad input.
    """
    if not isinstance(detections, pd.DataFrame):
        detections = read_table(detections, DETECTION)
    if state_in is None:
        tracker = Tracker2D(cfg, camera_id)
    else:
        tracker = Tracker2D.load(state_in)
        if tracker.camera_id != str(camera_id):
            raise InputError(state_in, None, f"state of camera {tracker.camera_id!r}, not {camera_id!r}",
                             "pass the state file of the same camera's previous chunk")
        if tracker.cfg != cfg:
            raise InputError(state_in, "track_2d", "state written with a different tracker configuration",
                             "rerun tracking from the first chunk after changing track_2d")
    emb = None
    if cfg.reid is not None:
        if not video:
            raise InputError(None, "track_2d.reid", f"camera {camera_id!r} has no video to compute appearance from",
                             "give the camera a video in the camera sheet, or set track_2d.reid: null")
        from .reid import ReIDEmbedder, embed_detections

        cam = detections
        if len(cam) and "camera_id" in cam.columns:
            cam = cam[cam["camera_id"].astype(str).to_numpy() == str(camera_id)]
        emb = embed_detections(ReIDEmbedder(cfg.reid), video, cam, start, stop, frame_offset)
    df = attach_appearance(tracker.run(detections, start, stop, emb), detections, camera_id)
    if embeddings_out is not None:
        if emb is None:
            emb = pd.DataFrame({"frame": np.zeros(0, np.int64), "det_index": np.zeros(0, np.int32)})
        with atomic_path(embeddings_out) as tmp:
            emb.to_parquet(tmp, index=False)
    write_table(df, TRACKLET2D, out_path, tracker=cfg.kind, camera_id=str(camera_id), start=str(start),
                stop=str(stop))
    tracker.save(state_out)
    return df
