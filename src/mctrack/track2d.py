"""Per-camera 2D tracking: DETECTION rows in, TRACKLET2D rows out, chunk by chunk.

The tracking algorithm itself comes from `boxmot <https://github.com/mikel-brostrom/boxmot>`_
(OC-SORT by default, ByteTrack and BoT-SORT without appearance embeddings or
camera-motion compensation as alternatives). :class:`Tracker2D` wraps one boxmot
tracker for one camera and adds what the workflow needs and boxmot does not give:

- **Every row, not only the confirmed matches of this frame.** ``boxmot``'s
  ``update()`` returns only tracks matched in the current frame that passed its
  own ``min_hits`` rule (which has a "first frames of the video" exception). The
  wrapper ignores that output and reads the tracker's internal track lists after
  every update (see :func:`_read_tracker_state`), so it also sees tentative tracks
  and coasted (alive but unmatched) tracks.
- **Probation in the wrapper** (``n_init``): a track is *confirmed* when it has
  been matched to ``n_init`` detections in total, consecutive or not (boxmot's
  own lifetime rules decide whether it survives the gaps in between: OC-SORT
  keeps a tentative track through up to ``max_coast_frames`` misses, while
  ByteTrack / BoT-SORT delete a new track that misses the frame after its birth,
  except for tracks born in the tracker's first frame). Until then its rows are
  held back; at confirmation all of them are emitted (backfill), even rows of
  frames that belong to an earlier chunk. A track that dies during probation
  emits nothing. boxmot's ``min_hits`` is set to 1 and plays no role.
- **Carried state**: the whole wrapper (boxmot tracker, probation bookkeeping,
  held-back rows, next expected frame) is saved with cloudpickle between chunks,
  so running ``[0, T)`` at once gives exactly the rows of ``[0, a)``, ``[a, b)``,
  ``[b, T)`` chained through saved state (after concatenating and sorting).

TRACKLET2D row semantics (see :mod:`mctrack.tables`)
----------------------------------------------------
- ``track_id``: boxmot's track id (an instance-owned counter that starts at 0),
  stable across chunks because the state is carried. Ids of tracks that died in
  probation are never emitted, so emitted ids need not be consecutive.
- ``frame_status="detected"``: the track was matched to a detection in this frame.
  The box (px, xyxy) is the *matched detection's* box (not the Kalman estimate),
  ``det_index`` is that detection's ``det_index`` from the DETECTION table and
  ``confidence`` its confidence.
- ``frame_status="coasted"``: the track is alive but unmatched in this frame, at
  most ``max_coast_frames`` frames after its last match. The box is the tracker's
  predicted (Kalman) box, ``det_index = -1`` and ``confidence = NaN``. Coasted
  rows are emitted only for confirmed tracks; coasted frames inside the probation
  period (between two matched detections, for trackers that allow that) are
  backfilled with the other held-back rows at confirmation.
- ``cx, cy``: box centre in px. At most one row per ``(track_id, frame)``; tables
  are sorted by ``(frame, track_id)``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, atomic_path
from .tables import DETECTION, FRAME_STATUS, TRACKLET2D, read_table, write_table

__all__ = ["TRACKERS", "Tracker2D", "TrackerConfig", "track_chunk"]

# Defaults (documented in TrackerConfig).
DEFAULT_KIND = "ocsort"
DEFAULT_N_INIT = 3
DEFAULT_MAX_COAST_FRAMES = 30
DEFAULT_DET_THRESH = 0.3

# ---------------------------------------------------------------------------
# boxmot factories
# ---------------------------------------------------------------------------

# Constructor arguments the wrapper sets itself (from n_init, max_coast_frames,
# det_thresh) or that would break the wrapper's contract (per-class track lists,
# appearance/ReID, camera-motion compensation, OBB boxes, timestamps).
_RESERVED_PARAMS = frozenset({
    "det_thresh", "track_thresh", "track_high_thresh", "max_age", "min_hits",
    "track_buffer", "frame_rate", "per_class", "is_obb", "variable_dt",
    "use_embeddings", "use_cmc", "cmc_method", "reid_model", "reid_weights",
    "device", "half", "reid_preprocess", "kf_time_unit",
})


def _ocsort(cfg: TrackerConfig):
    """OC-SORT (Cao et al., CVPR 2023) via ``boxmot.OcSort``.

    ``det_thresh`` -> ``det_thresh`` (first-stage / new-track confidence),
    ``max_coast_frames`` -> ``max_age`` (a track is dropped when more than
    ``max_age`` frames passed since its last match), ``min_hits=1`` (boxmot's
    output is not used; probation is done by :class:`Tracker2D`).
    Other boxmot defaults: ``iou_threshold=0.3``, ``delta_t=3``, ``inertia=0.2``,
    ``min_conf=0.1``, ``use_byte=False``.
    """
    from boxmot import OcSort

    kw: dict[str, Any] = {"det_thresh": cfg.det_thresh, "max_age": cfg.max_coast_frames, "min_hits": 1}
    kw.update(cfg.params)
    return OcSort(**kw)


def _bytetrack(cfg: TrackerConfig):
    """ByteTrack (Zhang et al., ECCV 2022) via ``boxmot.ByteTrack``.

    ``det_thresh`` -> ``track_thresh`` (first-stage and new-track confidence),
    ``max_coast_frames`` -> ``track_buffer`` with ``frame_rate=30`` so that
    boxmot's ``max_time_lost = int(frame_rate / 30 * track_buffer)`` equals
    ``max_coast_frames`` exactly (``max_age`` is set to the same value).
    Other boxmot defaults: ``match_thresh=0.8``, ``min_conf=0.1``.
    """
    from boxmot import ByteTrack

    kw: dict[str, Any] = {"track_thresh": cfg.det_thresh, "track_buffer": cfg.max_coast_frames, "frame_rate": 30,
                          "max_age": cfg.max_coast_frames, "min_hits": 1}
    kw.update(cfg.params)
    return ByteTrack(**kw)


def _botsort(cfg: TrackerConfig):
    """BoT-SORT (Aharon et al., 2022) via ``boxmot.BotSort``, motion only.

    ``use_embeddings=False`` and ``use_cmc=False``: no ReID weights and no image
    are needed. ``det_thresh`` -> ``track_high_thresh`` and ``new_track_thresh``
    (the latter can be overridden in ``params``), ``max_coast_frames`` ->
    ``track_buffer`` with ``frame_rate=30`` (so ``max_time_lost`` equals it).
    Other boxmot defaults: ``match_thresh=0.8``, ``track_low_thresh=0.1``,
    ``proximity_thresh=0.5``.
    """
    from boxmot import BotSort

    kw: dict[str, Any] = {"track_high_thresh": cfg.det_thresh, "new_track_thresh": cfg.det_thresh,
                          "track_buffer": cfg.max_coast_frames, "frame_rate": 30, "max_age": cfg.max_coast_frames,
                          "min_hits": 1, "use_embeddings": False, "use_cmc": False}
    kw.update(cfg.params)
    return BotSort(**kw)


#: Registry of tracker kinds: ``kind -> factory(cfg) -> boxmot tracker``.
#: A factory must return a tracker whose internal state :func:`_read_tracker_state`
#: understands (SORT family with ``active_tracks[i].time_since_update``, or
#: ByteTrack family with ``active_tracks`` + ``lost_stracks``).
TRACKERS: dict[str, Callable[[TrackerConfig], Any]] = {
    "ocsort": _ocsort,
    "bytetrack": _bytetrack,
    "botsort": _botsort,
}

_BOXMOT_CLASS_NAMES = {"ocsort": "OcSort", "bytetrack": "ByteTrack", "botsort": "BotSort"}


def _allowed_params(kind: str) -> set[str] | None:
    """Constructor keywords of the boxmot class for ``kind`` (None if unknown)."""
    name = _BOXMOT_CLASS_NAMES.get(kind)
    if name is None:
        return None
    import boxmot
    from boxmot.trackers.base import BaseTracker

    names: set[str] = set()
    for fn in (getattr(boxmot, name).__init__, BaseTracker.__init__):
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    return names - _RESERVED_PARAMS


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackerConfig:
    """Configuration of the per-camera tracker (config section ``track_2d``).

    Attributes
    ----------
    kind : str
        Tracker in :data:`TRACKERS`: ``"ocsort"`` (default; OC-SORT, robust to
        non-linear motion and occlusion with a plain IoU motion model),
        ``"bytetrack"`` or ``"botsort"`` (no embeddings, no camera-motion
        compensation).
    n_init : int
        Probation length: number of matched detections (in total, consecutive or
        not) before a track is confirmed and its rows are emitted. ``>= 1``.
        Default 3 = ``min_hits`` of SORT / OC-SORT and ``n_init`` of DeepSORT.
    max_coast_frames : int
        Frames a track stays alive (and emits ``"coasted"`` rows) after its last
        matched detection. ``>= 0``. Default 30 = OC-SORT / boxmot ``max_age`` and
        ByteTrack ``track_buffer`` at 30 fps.
    det_thresh : float
        Detection confidence above which (strictly) a detection takes part in the
        first association stage and may start a new track; in ``[0, 1)``.
        Default 0.3 = boxmot's ``OcSort`` / ``BaseTracker`` constructor default
        (the OC-SORT paper used 0.6 with YOLOX detections on MOT17). Lower-scoring
        detections are used only by trackers with a second (BYTE) stage
        (``min_conf`` < conf < threshold).
    params : dict
        Extra keyword arguments for the boxmot constructor (e.g. ``iou_threshold``,
        ``delta_t``, ``inertia``, ``match_thresh``, ``min_conf``). Keys the
        wrapper sets itself (``min_hits``, ``max_age``, ``track_buffer``,
        ``det_thresh``/``track_thresh``/``track_high_thresh``, ``frame_rate``,
        ``per_class``, ReID/CMC/OBB options) are rejected.
    """

    kind: str = DEFAULT_KIND
    n_init: int = DEFAULT_N_INIT
    max_coast_frames: int = DEFAULT_MAX_COAST_FRAMES
    det_thresh: float = DEFAULT_DET_THRESH
    params: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict | None) -> TrackerConfig:
        """Build and validate a config from the ``track_2d`` mapping of the workflow config.

        Missing keys take the defaults above. Raises
        :class:`~mctrack.errors.InputError` with field ``track_2d.<key>`` (or
        ``track_2d.params.<key>``) for an unknown key, a wrong type or an
        out-of-range value, and for ``params`` that boxmot rejects.
        """
        d = {} if d is None else d
        if not isinstance(d, dict):
            raise InputError(None, "track_2d", f"expected a mapping, got {type(d).__name__}",
                             "write track_2d as a mapping of key: value")
        known = {f for f in cls.__dataclass_fields__}
        for key in d:
            if key not in known:
                raise InputError(None, f"track_2d.{key}", "unknown key", f"use only {sorted(known)}")
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
            _build_tracker(self)

    def _check_fields(self) -> None:
        """Field checks of :meth:`validate` without building the tracker."""
        if not isinstance(self.kind, str) or self.kind not in TRACKERS:
            raise InputError(None, "track_2d.kind", f"unknown tracker {self.kind!r}",
                             f"use one of {sorted(TRACKERS)}")
        for name, lo in (("n_init", 1), ("max_coast_frames", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise InputError(None, f"track_2d.{name}", f"must be an integer >= {lo}, got {v!r}",
                                 f"set track_2d.{name} to an integer >= {lo}")
        v = self.det_thresh
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not (0.0 <= float(v) < 1.0):
            raise InputError(None, "track_2d.det_thresh", f"must be a number in [0, 1), got {v!r}",
                             "set track_2d.det_thresh to a detection confidence such as 0.3")
        if not isinstance(self.params, dict):
            raise InputError(None, "track_2d.params", f"expected a mapping, got {type(self.params).__name__}",
                             "write track_2d.params as a mapping of boxmot constructor arguments")
        allowed = _allowed_params(self.kind) if self.params else None
        for key in self.params:
            if key in _RESERVED_PARAMS:
                raise InputError(None, f"track_2d.params.{key}", "is set by mctrack and cannot be overridden",
                                 "use track_2d.n_init / max_coast_frames / det_thresh instead, or remove it")
            if allowed is not None and key not in allowed:
                raise InputError(None, f"track_2d.params.{key}", f"not a parameter of boxmot {self.kind}",
                                 f"use one of {sorted(allowed)}")


@contextlib.contextmanager
def _quiet_boxmot():
    """Silence boxmot's INFO line printed by every tracker constructor (restored afterwards)."""
    log = logging.getLogger("boxmot")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def _build_tracker(cfg: TrackerConfig):
    """Construct the boxmot tracker of ``cfg``; boxmot errors become InputError(track_2d.params)."""
    try:
        with _quiet_boxmot():
            trk = TRACKERS[cfg.kind](cfg)
    except (TypeError, ValueError) as e:
        raise InputError(None, "track_2d.params", f"rejected by boxmot {cfg.kind}: {e}",
                         "fix or remove the offending parameter") from None
    req = trk.requirements
    if req.frame or req.embeddings or req.masks:
        raise InputError(None, "track_2d.params", f"this {cfg.kind} configuration needs video frames, masks "
                         "or appearance embeddings", "use an IoU-style asso_func (iou, giou, diou, ciou)")
    return trk


# ---------------------------------------------------------------------------
# reading boxmot's internal state
# ---------------------------------------------------------------------------

def _read_tracker_state(trk) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tracks of a boxmot tracker right after ``update()`` of one frame.

    Returns ``(ids int64 (n,), matched bool (n,), visible bool (n,), det_row int64 (n,),
    pred float32 (n, 4))`` for every track boxmot still holds: ``visible`` marks
    the tracks that get a row this frame (matched, or coasting within
    ``max_coast_frames``), ``det_row`` is the row of the matched detection in the
    ``(N, 6)`` array given to ``update()`` (-1 when unmatched) and ``pred`` the
    predicted xyxy px box of unmatched tracks (undefined for matched ones).

    Access per tracker family (boxmot 25):

    - ByteTrack / BoT-SORT (have ``lost_stracks``): ``active_tracks`` holds only
      tracks matched in this frame (unmatched tracked tracks are moved to
      ``lost_stracks``, unmatched unconfirmed ones are removed); a track is
      matched iff ``track.frame_id == tracker.frame_count``; ``track.det_ind`` is
      the detection row. ``lost_stracks`` are the coasted tracks; their predicted
      box is ``track.xyxy`` (Kalman mean after this frame's ``multi_predict``).
      boxmot marks a lost track *removed* once ``frame_count - frame_id >
      max_time_lost`` but, because it subtracts the removed list before adding
      this frame's removals, keeps it in ``lost_stracks`` for one more frame
      (where it can even be re-activated). Such a track gets no row
      (``visible=False``) but stays alive for the probation bookkeeping.
    - OC-SORT (SORT family): ``active_tracks``; matched iff
      ``time_since_update == 0`` with row ``det_ind``; otherwise the predicted
      box is ``get_state()`` (prior after ``predict()``; ``update(None)`` keeps
      it). boxmot pops a track once ``time_since_update > max_age``.
    """
    if hasattr(trk, "lost_stracks"):
        fc = trk.frame_count
        n_act = len(trk.active_tracks)
        tracks = list(trk.active_tracks) + list(trk.lost_stracks)
        n = len(tracks)
        ids = np.fromiter((t.id for t in tracks), np.int64, n)
        matched = np.fromiter((i < n_act and t.frame_id == fc for i, t in enumerate(tracks)), bool, n)
        last = np.fromiter((t.frame_id for t in tracks), np.int64, n)
        removed = np.fromiter((t.state == t.removed_state for t in tracks), bool, n)
        visible = matched | (~removed & (fc - last <= trk.max_time_lost))
        det_row = np.full(n, -1, np.int64)
        pred = np.zeros((n, 4), np.float32)
        for i, t in enumerate(tracks):
            if matched[i]:
                det_row[i] = round(float(t.det_ind))
            elif visible[i]:
                pred[i] = np.asarray(t.xyxy, dtype=np.float64)[:4]
        return ids, matched, visible, det_row, pred
    tracks = list(trk.active_tracks)
    n = len(tracks)
    ids = np.fromiter((t.id for t in tracks), np.int64, n)
    matched = np.fromiter((t.time_since_update == 0 for t in tracks), bool, n)
    det_row = np.full(n, -1, np.int64)
    pred = np.zeros((n, 4), np.float32)
    for i, t in enumerate(tracks):
        if matched[i]:
            det_row[i] = int(t.det_ind)
        else:
            pred[i] = np.asarray(t.get_state(), dtype=np.float64).reshape(-1)[:4]
    return ids, matched, np.ones(n, bool), det_row, pred


# One emitted row, before it becomes a DataFrame row. status: 0 detected, 1 coasted.
_ROW = np.dtype([("track_id", "i8"), ("frame", "i8"), ("box", "f4", (4,)), ("status", "i1"),
                 ("det_index", "i4"), ("confidence", "f4")])

_STATE_VERSION = 1


def _boxmot_version() -> str:
    import boxmot

    return str(boxmot.__version__)


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
        self._tracker = _build_tracker(cfg)
        self._boxmot_version = _boxmot_version()
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
              cls: np.ndarray) -> None:
        """Advance one frame with already validated detection arrays (n rows each)."""
        n = len(conf)
        dets = np.empty((n, 6), np.float32)
        dets[:, :4] = boxes
        dets[:, 4] = conf
        dets[:, 5] = cls
        self._tracker.update(dets, None)
        self.next_frame = frame + 1

        ids_all, matched, visible, det_row, pred = _read_tracker_state(self._tracker)
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

    def run(self, detections: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
        """Track frames ``start <= f < stop`` in order and return the rows emitted meanwhile.

        Parameters
        ----------
        detections : DataFrame
            DETECTION table; rows outside ``[start, stop)`` are ignored and, if it
            has a ``camera_id`` column, so are rows of other cameras. A frame
            without rows is still processed (tracks coast).
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
        bounds = np.searchsorted(f, np.arange(start, stop + 1))
        mark = len(self._out)
        for k, frame in enumerate(range(start, stop)):
            a, b = bounds[k], bounds[k + 1]
            self._step(frame, di[a:b], bx[a:b], cf[a:b], cl[a:b])
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
        if obj._boxmot_version != _boxmot_version():
            raise InputError(path, None, f"written with boxmot {obj._boxmot_version}, "
                             f"installed is {_boxmot_version()}", "rerun tracking from the first chunk")
        return obj


def track_chunk(cfg: TrackerConfig, detections: pd.DataFrame | str | os.PathLike, start: int, stop: int,
                camera_id: str, state_in: str | os.PathLike | None, state_out: str | os.PathLike,
                out_path: str | os.PathLike) -> pd.DataFrame:
    """Track one chunk ``[start, stop)`` of one camera and write its outputs.

    Loads ``state_in`` (or builds a fresh :class:`Tracker2D` when ``None``, i.e.
    the first chunk), runs it, writes the TRACKLET2D rows emitted in this chunk
    to ``out_path`` (parquet, via :func:`mctrack.tables.write_table`, with
    attributes ``tracker``, ``camera_id``, ``start``, ``stop``) and the new state
    to ``state_out``. Returns the written table. The union of all chunks'
    tables equals the table of one run over the whole range.

    ``detections`` is a DETECTION DataFrame or the path of a DETECTION parquet.
    Raises :class:`~mctrack.errors.InputError` when the state belongs to another
    camera or configuration, when chunks are not contiguous, or on bad input.
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
    df = tracker.run(detections, start, stop)
    write_table(df, TRACKLET2D, out_path, tracker=cfg.kind, camera_id=str(camera_id), start=str(start),
                stop=str(stop))
    tracker.save(state_out)
    return df
