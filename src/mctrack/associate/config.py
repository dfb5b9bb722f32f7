"""Settings of the cross-camera association (the config's ``associate`` section)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import InputError


@dataclass(frozen=True)
class AssociationConfig:
    """Settings of :func:`mctrack.associate.associate` and :func:`~mctrack.associate.associate_session`.

    Method
    ------
    ``method``: ``"frames"`` (default) tracks the detections in 3D frame by
    frame and cuts 2D tracklets where their 3D track changes
    (:mod:`~mctrack.associate.frames`); ``"tracklets"`` groups whole 2D
    tracklets by their pairwise geometric evidence
    (:mod:`~mctrack.associate.evidence`, :mod:`~mctrack.associate.solve`).
    The default was chosen on measurements (3D IDF1, same 2D tracklets): on
    the synthetic tank (6 fish) 0.99 with 4 cameras vs 0.95; on its five 2-
    and 3-camera subsets better on all five (by 0.01-0.26); on the hard
    scene 0.95 vs 0.40;
    on Pose2Sim (two people, 4 cameras) both keep each person one id in
    100/100 frames (README, "associate").
    ``tracklets`` is faster (no per-frame loop) and needs no motion model.

    Per-frame 3D tracking (``method: frames``; see :mod:`mctrack.associate.frames`)
    --------------------------------------------------------------------------
    ``gate``: a row and a projected 3D track can match when their distance is
    at most ``gate·τ`` (τ from ``box_fraction``, ``centroid_sigma`` and the
    track's predicted uncertainty; default 3, a 3σ gate).
    ``pair_gate``: the largest normalised reprojection error ``d/τ₀`` (τ₀ from
    ``box_fraction`` and ``centroid_sigma`` only) of a row from the point
    triangulated with one other camera's row. With two cameras nothing else
    checks a pairing: the rows of two targets that lie near each other's
    epipolar lines pair up into ghost points that the gate (``gate·τ``, which
    includes the prediction's uncertainty) keeps for hundreds of frames.
    Above it, a two-camera track's pairing is inconsistent: the rows of two
    inconsistent tracks are exchanged in one camera when that makes both
    consistent; a lone one is re-paired when the partner rows of both its
    targets are free and consistent with its rows (two fish at a similar
    position along the direction two views share), else, beyond twice this,
    drops the row farther from the prediction; births need pairs within it. Crossed pairs that stay within
    it (after the blobs of two targets merged in one camera) are caught over
    a few frames instead: two tracks whose running mean squared pair error
    is doubtful exchange rows when that at least halves it, each keeping the
    target that continues its state from before
    (:func:`mctrack.associate.frames._sustained_exchange`). Default 1.0: on
    the synthetic tank's camera pairs (5 seeds × 6 pairs) 99.9 % of correct
    pairs lie below 1.0 (median 0.04), ghost pairs have median 0.94
    (``benchmarks/association_accuracy.py``, ``pair_errors``, tracker run
    with the check off); with it on, 77 % fewer ghost pair-frames remain
    (median 0.26) and 8.5 % more correct ones. ``null`` turns both checks
    off (the gate alone).
    ``continuity_bonus``: subtracted from the squared normalised distance when
    the row's 2D tracklet was assigned to that track within the last
    ``continuity_frames`` (default 1.0, i.e. the 2D tracker breaks ties of
    about one τ; 5 frames).
    ``n_init``: consecutive frames with ≥ 2 cameras before a new 3D track is
    confirmed (default 3; tentative tracks that miss one are dropped).
    ``max_coast_frames``: frames a 3D track lives without a ≥ 2-camera update
    (default 30; a target lost longer gets a new track, rejoined by stitching).
    ``motion_noise``: white-noise acceleration of the constant-velocity model
    in target sizes per frame² (default 0.1).
    ``min_run``: detected rows a run of one 3D track needs inside a 2D
    tracklet before the tracklet is cut there (default 3).
    ``encounter_radius``: target sizes; where two 3D tracks come closer than
    this, both are cut and the fragments relinked by motion from both sides
    (:mod:`~mctrack.associate.encounters`; default 1.0 = one body length,
    about where blobs of two targets start to merge in the images; 0 cuts
    only where a track coasted).
    ``encounter_frames``: frames added on each side of an encounter window
    (default 2).
    ``appearance_weight``: weight of the appearance term added to a row's
    matching cost when the rows carry appearance (``chroma_r, chroma_g``
    from the background detector on colour video): ``w · min(Δ²/σ², 9)``
    with Δ the chromaticity distance between the row and the track's running
    mean in that camera and σ estimated per camera from consecutive rows of
    one tracklet (:func:`~mctrack.associate.frames.appearance_sigma`)
    (default 1.0; 0 = motion and geometry only).

    Geometric likelihood (see :mod:`mctrack.associate.evidence`)
    ------------------------------------------------------------
    ``distance_scale``: m, or None (default) = derived per frame from the
    calibration and the boxes: ``σ² = (centroid_sigma·z_a/f_a)² +
    (centroid_sigma·z_b/f_b)² + (box_fraction·s)²`` where ``z`` is the depth of
    the point along each ray, ``f`` the focal length (px) and ``s`` the target
    size in metres (``sqrt(w·h)`` of the boxes back-projected at that depth).
    ``centroid_sigma``: px, centroid noise of one detection (default 2 px).
    ``box_fraction``: how far (as a fraction of the target size) the box
    centres of one target seen from two sides may be apart (default 0.25:
    a box centre is the centre of the silhouette, which for a body of size s
    moves by up to ~s/4 between views).
    ``max_ray_distance``: deprecated alias of ``distance_scale`` kept for old
    configs (it was the hard vote threshold, now the kernel width).
    ``negative_weight``: evidence subtracted per camera that should see the
    pair's 3D point (in its image, in front) but has no tracklet row near its
    projection (default 0.5; the positive evidence of a frame is at most 1).
    ``max_pair_frames``: shared frames sampled per tracklet pair (evenly spread;
    default 128). Bounds the cost per pair, so time is linear in frames.
    ``min_shared``: sampled frames both tracklets must be detected in before a
    pair gets any weight (default 3).
    ``use_coasted``: coasted rows count as evidence (default False).

    Grouping (see :mod:`mctrack.associate.solve`)
    --------------------------------------------
    ``exact_max_nodes``: components of the positive-evidence graph with at
    most this many tracklets are solved exactly (correlation clustering as a
    MILP, ``scipy.optimize.milp``/HiGHS); larger ones greedily (default 12).
    ``doubtful_support``: global ids whose weakest link has a support below
    this are logged as doubtful merges (default 0.5).

    Feedback from 3D (see :mod:`mctrack.associate.refine`)
    -----------------------------------------------------
    ``refine``: split 2D tracklets that leave their 3D track, attach
    unassociated tracklets to 3D tracks, stitch 3D tracks across gaps, add
    reprojected rows (default True).
    ``split``: split tracklets that leave their 3D track (default False: on
    the synthetic default it cut more correct tracklets than switched ones and
    lowered per-camera IDF1; turn it on for trackers that switch identities).
    ``split_tolerance``: a detected row disagrees with its 3D track when its
    centroid is farther than this many box sizes (``sqrt(w·h)``) from the
    projection of the track's point triangulated from the *other* cameras
    (default 0.5).
    ``split_min_frames``: a run of disagreeing (or agreeing) rows must be this
    long to split a tracklet (default 8).
    ``stitch_max_gap``: frames; 3D tracks ending and starting within this gap
    may be stitched into one global id (default 60).
    ``reproject``: add ``"reprojected"`` rows where a camera that shows a
    target's tracklet has no row but its 3D point projects into the image
    (default True).
    ``reproject_min_cameras``: cameras a 3D point needs before it is
    reprojected into a camera that missed it (default 2).
    """

    method: str = "frames"
    gate: float = 3.0
    pair_gate: float | None = 1.0
    continuity_bonus: float = 1.0
    continuity_frames: int = 5
    n_init: int = 3
    max_coast_frames: int = 30
    motion_noise: float = 0.1
    min_run: int = 3
    encounter_radius: float = 1.0
    encounter_frames: int = 2
    appearance_weight: float = 1.0
    distance_scale: float | None = None
    centroid_sigma: float = 2.0
    box_fraction: float = 0.25
    max_ray_distance: float | None = None
    negative_weight: float = 0.5
    max_pair_frames: int = 128
    min_shared: int = 3
    use_coasted: bool = False
    exact_max_nodes: int = 12
    doubtful_support: float = 0.5
    refine: bool = True
    split: bool = False
    split_tolerance: float = 0.5
    split_min_frames: int = 8
    stitch_max_gap: int = 60
    reproject: bool = True
    reproject_min_cameras: int = 2
    # accepted for old configs; no longer used (the vote thresholds were replaced by the soft score)
    min_votes: int | None = None
    min_vote_ratio: float | None = None

    def __post_init__(self):
        if self.method not in ("tracklets", "frames"):
            raise InputError(None, "associate.method", f"unknown method {self.method!r}",
                             "use 'tracklets' or 'frames'")
        for name in ("gate", "motion_noise"):
            if not getattr(self, name) > 0:
                raise InputError(None, f"associate.{name}", f"must be > 0, got {getattr(self, name)!r}",
                                 "set a positive number in the config's associate section")
        for name in ("n_init", "min_run", "continuity_frames", "max_coast_frames"):
            if int(getattr(self, name)) < 1:
                raise InputError(None, f"associate.{name}", f"must be >= 1, got {getattr(self, name)!r}",
                                 "set a positive integer in the config's associate section")
        for name in ("centroid_sigma", "box_fraction", "split_tolerance"):
            if not getattr(self, name) > 0:
                raise InputError(None, f"associate.{name}", f"must be > 0, got {getattr(self, name)!r}",
                                 "set a positive number in the config's associate section")
        for name in ("max_pair_frames", "min_shared", "split_min_frames"):
            if int(getattr(self, name)) < 1:
                raise InputError(None, f"associate.{name}", f"must be >= 1, got {getattr(self, name)!r}",
                                 "set a positive integer in the config's associate section")
        if self.encounter_radius < 0 or int(self.encounter_frames) < 0 or self.appearance_weight < 0:
            raise InputError(None, "associate.encounter_radius/encounter_frames/appearance_weight", "must be >= 0",
                             "set a non-negative number in the config's associate section (0 turns it off)")
        if self.negative_weight < 0 or self.stitch_max_gap < 0 or self.exact_max_nodes < 0:
            raise InputError(None, "associate.negative_weight/stitch_max_gap/exact_max_nodes", "must be >= 0",
                             "set a non-negative number in the config's associate section")
        if self.pair_gate is not None and not self.pair_gate > 0:
            raise InputError(None, "associate.pair_gate", f"must be > 0 or null, got {self.pair_gate!r}",
                             "set a positive number (normalised reprojection error), or null to turn it off")
        scale = self.sigma_override
        if scale is not None and not scale > 0:
            raise InputError(None, "associate.distance_scale", f"must be > 0 m, got {scale!r}",
                             "set a positive distance in metres, or leave it unset (null) to derive it")

    @property
    def sigma_override(self) -> float | None:
        """The fixed kernel width in m, or None when it is derived per frame."""
        return self.distance_scale if self.distance_scale is not None else self.max_ray_distance

    @classmethod
    def from_dict(cls, d: dict | None) -> "AssociationConfig":
        """Build from the config's ``associate`` section (already schema-validated).

        Raises :class:`~mctrack.errors.InputError` for an unknown key.
        """
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(None, f"associate.{unknown[0]}", "unknown setting", f"use one of {sorted(names)}")
        return cls(**d)
