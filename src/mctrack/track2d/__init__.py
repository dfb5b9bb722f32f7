"""Per-camera 2D tracking: DETECTION rows in, TRACKLET2D rows out, chunk by chunk, then refined.

Modules: :mod:`~mctrack.track2d.boxmot_adapter` (the only one that touches
boxmot), :mod:`~mctrack.track2d.tracker` (:class:`Tracker2D`, chunk hand-off),
:mod:`~mctrack.track2d.reid` (ONNX appearance embeddings),
:mod:`~mctrack.track2d.refine` (offline tracklet refinement over a whole
session: link fragments, interpolate gaps, drop short / weak tracklets).

The tracking algorithm itself comes from `boxmot <https://github.com/mikel-brostrom/boxmot>`_
(``track_2d.kind``: BoT-SORT by default; ByteTrack, OC-SORT, Deep OC-SORT,
Hybrid-SORT, BoostTrack, SFSORT, and StrongSORT which needs ReID; never with
camera-motion compensation; appearance embeddings only when ``track_2d.reid`` is
set, computed by :mod:`~mctrack.track2d.reid` and passed to boxmot). :class:`Tracker2D` wraps one boxmot
tracker for one camera and adds what the workflow needs and boxmot does not give:

- **Every row, not only the confirmed matches of this frame.** ``boxmot``'s
  ``update()`` returns only tracks matched in the current frame that passed its
  own ``min_hits`` rule (which has a "first frames of the video" exception). The
  wrapper ignores that output and reads the tracker's internal track lists after
  every update (see :func:`mctrack.track2d.boxmot_adapter._read_tracker_state`), so it also sees tentative tracks
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

from .boxmot_adapter import TRACKERS
from .refine import RefineConfig, refine_camera, refine_tracklets
from .tracker import Tracker2D, TrackerConfig, track_chunk

__all__ = ["TRACKERS", "RefineConfig", "Tracker2D", "TrackerConfig", "refine_camera", "refine_tracklets",
           "track_chunk"]
