"""The boxmot adapter: the only module that imports boxmot; boxmot objects never leave it.

:class:`BoxmotTracker` owns one boxmot tracker and exposes, after every frame,
plain numpy arrays describing every track boxmot holds (see
:func:`_read_tracker_state`). Factories map the fields of
:class:`mctrack.track2d.TrackerConfig` to boxmot constructor arguments.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from .tracker import TrackerConfig

__all__ = ["TRACKERS", "BoxmotTracker", "allowed_params", "boxmot_version", "build_tracker"]

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
    """BoT-SORT (Aharon et al., 2022) via ``boxmot.BotSort``.

    ``use_cmc=False`` (static cameras; no image needed). ``use_embeddings`` is
    True only when ``cfg.reid`` is set: the embeddings are then computed by
    :mod:`mctrack.track2d.reid` and passed with every frame's detections, so
    boxmot never loads a ReID model (no weights, nothing heavy in the pickled
    state). ``det_thresh`` -> ``track_high_thresh`` and ``new_track_thresh``
    (the latter can be overridden in ``params``), ``max_coast_frames`` ->
    ``track_buffer`` with ``frame_rate=30`` (so ``max_time_lost`` equals it).
    Other boxmot defaults: ``match_thresh=0.8``, ``track_low_thresh=0.1``,
    ``proximity_thresh=0.5``.
    """
    from boxmot import BotSort

    kw: dict[str, Any] = {"track_high_thresh": cfg.det_thresh, "new_track_thresh": cfg.det_thresh,
                          "track_buffer": cfg.max_coast_frames, "frame_rate": 30, "max_age": cfg.max_coast_frames,
                          "min_hits": 1, "use_embeddings": cfg.reid is not None, "use_cmc": False}
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


def allowed_params(kind: str) -> set[str] | None:
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


def build_tracker(cfg: TrackerConfig):
    """Construct the boxmot tracker of ``cfg``; boxmot errors become InputError(track_2d.params)."""
    try:
        with _quiet_boxmot():
            trk = TRACKERS[cfg.kind](cfg)
    except (TypeError, ValueError) as e:
        raise InputError(None, "track_2d.params", f"rejected by boxmot {cfg.kind}: {e}",
                         "fix or remove the offending parameter") from None
    req = trk.requirements
    if req.frame or (req.embeddings and cfg.reid is None) or req.masks:
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
        mtl = trk.max_time_lost
        ids, matched, visible, det_row, pred = [], [], [], [], []
        # one pass over the tracks (this runs every frame; keep Python work per track minimal).
        # Matched = an active track updated in this frame; lost tracks are the coasted ones.
        n_act = len(trk.active_tracks)
        for i, t in enumerate((*trk.active_tracks, *trk.lost_stracks)):
            ids.append(t.id)
            if i < n_act and t.frame_id == fc:
                matched.append(True)
                visible.append(True)
                det_row.append(round(float(t.det_ind)))
                continue
            matched.append(False)
            vis = t.state != t.removed_state and fc - t.frame_id <= mtl
            visible.append(vis)
            det_row.append(-1)
            if vis:
                pred.append((len(ids) - 1, t.xyxy))
        n = len(ids)
        p = np.zeros((n, 4), np.float32)
        if pred:
            p[[i for i, _ in pred]] = np.asarray([np.asarray(b, np.float64)[:4] for _, b in pred])
        return (np.asarray(ids, np.int64), np.asarray(matched, bool), np.asarray(visible, bool),
                np.asarray(det_row, np.int64), p)
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


def boxmot_version() -> str:
    import boxmot

    return str(boxmot.__version__)


class BoxmotTracker:
    """One boxmot tracker behind a numpy-only interface (picklable with cloudpickle).

    Parameters
    ----------
    cfg : TrackerConfig
        Kind, thresholds and boxmot ``params`` (validated by the caller).

    :meth:`step` feeds one frame's ``(n, 4) float32`` xyxy px boxes, ``(n,)``
    confidences and class ids and returns the state arrays of
    :func:`_read_tracker_state`. The boxmot object itself is never returned.
    """

    def __init__(self, cfg: TrackerConfig):
        self._trk = build_tracker(cfg)

    @property
    def uses_embeddings(self) -> bool:
        """True when the boxmot tracker takes appearance embeddings with each frame."""
        return bool(self._trk.requirements.embeddings)

    def step(self, boxes: np.ndarray, conf: np.ndarray, cls: np.ndarray, emb: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance one frame; return ``(ids, matched, visible, det_row, pred)`` (see :func:`_read_tracker_state`).

        ``boxes (n, 4) float32`` xyxy px, ``conf (n,)``, ``cls (n,)``; ``emb (n, D)
        float32`` unit-norm appearance embeddings, required when
        :attr:`uses_embeddings` (ignored otherwise).
        """
        if self.uses_embeddings:
            import torch
            from boxmot.structures.detections import Detections
            from boxmot.structures.geometry import Boxes

            if emb is None:
                raise InputError(None, "track_2d.reid", "this tracker needs appearance embeddings",
                                 "run tracking through track_chunk with the video (track_2d.reid set)")
            n = len(conf)
            e = np.ascontiguousarray(emb, np.float32).reshape(n, -1) if n else np.zeros((0, 1), np.float32)
            d = Detections(geometry=Boxes(torch.from_numpy(np.ascontiguousarray(boxes, np.float32).reshape(-1, 4))),
                           scores=torch.from_numpy(np.ascontiguousarray(conf, np.float32)),
                           class_ids=torch.from_numpy(np.asarray(cls, np.int64)), sample_id="frame",
                           embeddings=torch.from_numpy(e) if n else None)
            self._trk.update(d)
            return _read_tracker_state(self._trk)
        n = len(conf)
        dets = np.empty((n, 6), np.float32)
        dets[:, :4] = boxes
        dets[:, 4] = conf
        dets[:, 5] = cls
        self._trk.update(dets, None)
        return _read_tracker_state(self._trk)
