"""Handoff events with merged blobs, and fragment rows (issue 8): real floor-rig geometry, real numbers."""
import numpy as np
import pandas as pd
import pytest

from mctrack.associate.ground import (
    GroundConfig,
    box_ground_width,
    fragment_rows,
    in_view,
    merged_box_members,
    session_handoffs,
    track_ground,
)
from mctrack.errors import InputError
from mctrack.ground import homography_from_camera
from mctrack.simulate_floor import FloorConfig, floor_rig

FPS = 30.0


def _rig(names):
    cams = {c.name: c for c in floor_rig(list(names), FloorConfig())}
    return cams, {n: homography_from_camera(c) for n, c in cams.items()}


def _boxes(cam, xy, radius=0.3, height=1.7):
    """Tight image boxes ``(N, 4)`` of upright cylinders (radius m, height m) standing at ``xy`` (N, 2) m."""
    ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = np.c_[np.cos(ang), np.sin(ang)] * radius
    pts = []
    for z in (0.0, height):
        p = (xy[:, None, :] + ring[None]).reshape(-1, 2)
        pts.append(cam.project(np.c_[p, np.full(len(p), z)]).reshape(len(xy), -1, 2))
    uv = np.concatenate(pts, axis=1)
    return np.c_[uv[..., 0].min(1), uv[..., 1].min(1), uv[..., 0].max(1), uv[..., 1].max(1)]


def _rows(cam, track, frames, boxes):
    return pd.DataFrame({"camera_id": cam, "track_id": track, "frame": frames, "x1": boxes[:, 0],
                         "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
                         "cx": (boxes[:, 0] + boxes[:, 2]) / 2, "cy": (boxes[:, 1] + boxes[:, 3]) / 2,
                         "frame_status": "detected", "det_index": 0, "confidence": 0.9})


def test_overlap_zone_merge_makes_one_handoff_not_two():
    """Walkers A and B, 1 m apart in single file, walk (0.3 m/s) across the views of the cam1/cam2 overlap (both always in both views).

    cam1 sees both from frame 0; cam2 from frame 30. In cam2 their blobs merge for frames 50-75 (26 frames,
    longer than ``min_absence`` 15): one box spanning both (1.7 m of floor), kept by B's 2D tracklet; A's
    cam2 tracklet ends at 49 and a new one starts at 76. Counting only A's own rows, A leaves cam2 and
    re-enters it: a second, spurious handoff cam1 -> cam2 at frame 76. With the ground maps and points, A
    inside the merged box stays observed by cam2: exactly one handoff per walker, cam1 -> cam2 at frame 30.
    """
    cams, maps = _rig(["cam1", "cam2"])
    f = np.arange(0, 120)
    a = np.c_[-5.5 + 0.3 * f / FPS, np.zeros(len(f))]
    b = a + [1.0, 0.0]
    assert in_view(maps["cam1"], np.r_[a, b]).all() and in_view(maps["cam2"], np.r_[a, b]).all()
    ba, bb = _boxes(cams["cam2"], a), _boxes(cams["cam2"], b)
    merged = np.c_[np.minimum(ba[:, :2], bb[:, :2]), np.maximum(ba[:, 2:], bb[:, 2:])]
    m = (f >= 50) & (f <= 75)
    s2 = f >= 30
    tr = pd.concat([_rows("cam1", 1, f, _boxes(cams["cam1"], a)), _rows("cam1", 2, f, _boxes(cams["cam1"], b)),
                    _rows("cam2", 1, f[s2 & (f < 50)], ba[s2 & (f < 50)]), _rows("cam2", 3, f[f > 75], ba[f > 75]),
                    _rows("cam2", 2, f[s2], np.where(m[:, None], merged, bb)[s2])], ignore_index=True)
    width = box_ground_width(tr, maps)
    single = ~(tr["frame"].isin(f[m]).to_numpy() & (tr["camera_id"] == "cam2").to_numpy() & (tr["track_id"] == 2).to_numpy())
    assert width[single].max() < 1.2 and width[~single].min() > 1.5  # one walker vs the merged pair
    assoc = pd.DataFrame({"camera_id": ["cam1", "cam1", "cam2", "cam2", "cam2"], "track_id": [1, 2, 1, 3, 2],
                          "global_id": [0, 1, 0, 0, 1]})
    points = pd.concat([pd.DataFrame({"frame": f, "global_id": g, "x": p[:, 0], "y": p[:, 1]})
                        for g, p in ((0, a), (1, b))], ignore_index=True)
    # observation-only definition (no view geometry): cam2 picking the walkers up at frame 30 is a handoff
    cfg = GroundConfig(max_ground_width=1.2, handoff_min_outside=0)
    naive = session_handoffs(tr, assoc, cfg)
    assert sorted(zip(naive["global_id"], naive["frame"])) == [(0, 30), (0, 76), (1, 30)]
    hand = session_handoffs(tr, assoc, cfg, maps, points)
    assert list(zip(hand["frame"], hand["global_id"], hand["from_camera"], hand["to_camera"], hand["gap_frames"])) \
        == [(30, 0, "cam1", "cam2", 0), (30, 1, "cam1", "cam2", 0)]
    # view-entry definition (default handoff_min_outside): both walkers stand inside cam2's view the whole
    # time, so neither cam2 picking them up nor A's re-detection after the merge is an entry
    assert session_handoffs(tr, assoc, GroundConfig(max_ground_width=1.2), maps, points).empty
    assert session_handoffs(tr, assoc, GroundConfig(), maps, points).empty
    # the merged box holds both walkers in each of its 26 frames, the single boxes one each
    mem = merged_box_members(tr[~single], points, maps)
    assert len(mem) == 2 * 26 and set(mem["global_id"]) == {0, 1} and set(mem["frame"]) == set(f[m])
    one = merged_box_members(tr[(tr["camera_id"] == "cam2") & (tr["track_id"] == 1)], points, maps)
    assert (one["global_id"] == 0).all() and len(one) == 20


def test_fragments_are_no_observations_and_static_ghosts_get_no_identity():
    """A static 0.15 m wide box (a background-model ghost) next to a walker in cam1, with min_ground_width 0.3.

    The walker's boxes (a 0.6 m cylinder) span 0.7-1.0 m of floor; the ghost 0.15 m; a walker box cut by the
    image's left border is narrow but not a fragment. Without the filter the ghost becomes a second global id
    (it is a perfectly steady detection); with it only the walker is tracked.
    """
    cams, maps = _rig(["cam1"])
    cam = cams["cam1"]
    f = np.arange(0, 60)
    w = np.c_[-4.5 + 1.0 * f / FPS, np.full(len(f), 0.5)]
    walker = _rows("cam1", 1, f, _boxes(cam, w))
    (u1, v1), (u2, v2) = cam.project(np.array([[-3.15, -1.0, 0.0], [-3.0, -1.0, 0.0]]))  # 0.15 m of floor
    ghost = _rows("cam1", 2, f, np.tile([u1, min(v1, v2) - 100, u2, (v1 + v2) / 2], (len(f), 1)))
    cut = walker.iloc[:5].assign(track_id=3, x1=0.0, x2=8.0)
    tr = pd.concat([walker, ghost, cut], ignore_index=True)
    width = box_ground_width(tr, maps)
    assert 0.6 < width[:60].min() and width[:60].max() < 1.1
    assert np.allclose(width[60:120], 0.15, atol=0.03)
    frag = fragment_rows(tr, maps, 0.3)
    assert not frag[:60].any() and frag[60:120].all() and not frag[120:].any() and (width[120:] < 0.3).all()
    _, assoc, _, _ = track_ground(pd.concat([walker, ghost], ignore_index=True), maps, GroundConfig(), fps=FPS)
    assert assoc["global_id"].nunique() == 2
    out, assoc, _, _ = track_ground(pd.concat([walker, ghost], ignore_index=True), maps,
                                    GroundConfig(min_ground_width=0.3), fps=FPS)
    assert assoc["global_id"].nunique() == 1 and set(out["track_id"]) == {1} and len(out) == 60


def test_min_ground_width_validation():
    with pytest.raises(InputError, match="ground.min_ground_width"):
        GroundConfig(min_ground_width=-0.1)
    with pytest.raises(InputError, match="ground.min_ground_width"):
        GroundConfig(min_ground_width=1.5, max_ground_width=1.2)
    assert GroundConfig(min_ground_width=0.3, max_ground_width=0).min_ground_width == 0.3


def test_handoff_matching_with_and_without_the_from_camera():
    """A walker leaving the cam1/cam2 overlap enters cam3: truth says from cam2, the prediction from cam1.

    Strict matching (target, from, to, ±15 frames) misses it; ``*_to_camera`` (target, to, ±15) matches it.
    The second predicted event is 16 frames off its true one: no match either way.
    """
    from mctrack.associate.ground import evaluate_handoffs

    gt = pd.DataFrame({"frame": [100, 200], "global_id": [1, 2], "from_camera": ["cam2", "cam3"],
                       "to_camera": ["cam3", "cam1"], "gap_frames": [20, 0]})
    pred = pd.DataFrame({"frame": [104, 216], "global_id": [7, 8], "from_camera": ["cam1", "cam3"],
                         "to_camera": ["cam3", "cam1"], "gap_frames": [25, 0]})
    r = evaluate_handoffs(pred, gt, {7: 1, 8: 2}, tolerance=15)
    assert r["recall"] == 0 and r["precision"] == 0
    assert r["recall_to_camera"] == 0.5 and r["precision_to_camera"] == 0.5
    assert evaluate_handoffs(pred, gt, {7: 1, 8: 2}, tolerance=16)["recall"] == 0.5


def test_merged_box_is_split_into_feet_near_the_two_walkers():
    """Two walkers side by side 0.9 m apart at one depth in cam1 make one box (1.5 m of floor): 2 parts.

    Each part's foot point lies within 15 cm of a walker's true position (7 and 10 cm; a lone walker's own
    box here gives 3 and 13 cm, its upper body widens the box); a single walker's box
    (0.6-1.0 m) is never passed in.
    """
    from mctrack.associate.ground import merged_parts
    from mctrack.ground import ground_positions

    cams, maps = _rig(["cam1"])
    cam = cams["cam1"]
    cfg = GroundConfig(max_ground_width=1.2, foot_offset=0.25)
    walkers = np.array([[-4.9, 0.0], [-4.0, 0.0]])
    b = _boxes(cam, walkers, radius=0.25)
    one = _rows("cam1", 1, np.array([7, 7]), b)
    err1 = np.linalg.norm(ground_positions(one, maps, "bottom_center", 0.25) - walkers, axis=1)
    merged = _rows("cam1", 1, np.array([7]), np.c_[b[:, :2].min(0)[None], b[:, 2:].max(0)[None]])
    assert 1.3 < box_ground_width(merged, maps)[0] < 1.8
    parts = merged_parts(merged, maps, cfg)
    assert len(parts) == 2 and (parts["frame"] == 7).all() and (parts["camera_id"] == "cam1").all()
    err = np.linalg.norm(parts[["x", "y"]].to_numpy()[:, None] - walkers[None], axis=2).min(1)
    assert err.max() < 0.15 and err1.max() < 0.15  # as good as a lone walker's own box
    assert (parts["r2"] > cfg.position_sigma ** 2).all()


def test_no_identity_swap_through_a_merge_where_the_2d_tracker_swapped():
    """Walkers A and B stand 0.4 m apart side by side in cam1; for 10 frames they make one merged box (kept by
    2D tracklet 1), after which the 2D tracker has swapped them: tracklet 1 on B, tracklet 2 on A.

    With the 2D continuity preference (cost −4) kept through the merge, tracklet 1 stays on A's global id
    and the swap becomes an identity switch (measured: this test fails so); a tracklet's first row after a
    merged row gets no preference, so ground position decides: every global id stays on one walker and
    there are exactly two. (At 0.3 m apart, inside the observation noise, the swap is followed either way.)
    """
    cams, maps = _rig(["cam1"])
    cam = cams["cam1"]
    pa, pb = np.array([-4.8, 0.0]), np.array([-4.4, 0.0])
    f1, fm, f2 = np.arange(0, 30), np.arange(30, 40), np.arange(40, 70)
    box = lambda p, f: _boxes(cam, np.tile(p, (len(f), 1)), radius=0.25)  # noqa: E731
    ba, bb = box(pa, fm), box(pb, fm)
    merged = np.c_[np.minimum(ba[:, :2], bb[:, :2]), np.maximum(ba[:, 2:], bb[:, 2:])]
    merged[:, 0] -= 0.5 * (merged[:, 2] - merged[:, 0])  # the blob's shadow widens it: > 1.2 m of floor
    fb = f1[5:]  # B appears 5 frames later (two rows of one camera born in one frame within 1 m merge)
    tr = pd.concat([_rows("cam1", 1, f1, box(pa, f1)), _rows("cam1", 2, fb, box(pb, fb)),
                    _rows("cam1", 1, fm, merged),
                    _rows("cam1", 1, f2, box(pb, f2)), _rows("cam1", 2, f2, box(pa, f2))], ignore_index=True)
    assert (box_ground_width(tr, maps)[55:65] > 1.2).all() and (box_ground_width(tr, maps)[:55] < 1.2).all()
    out, assoc, _, gxy = track_ground(tr, maps, GroundConfig(max_ground_width=1.2, foot_offset=0.25), fps=FPS)
    rows = out.merge(assoc[["camera_id", "track_id", "global_id"]])
    det = (rows["frame_status"] == "detected").to_numpy() & ~rows["frame"].isin(fm).to_numpy()
    near_a = np.linalg.norm(gxy - pa, axis=1) < np.linalg.norm(gxy - pb, axis=1)
    per_gid = pd.Series(near_a[det]).groupby(rows["global_id"].to_numpy()[det]).agg(["min", "max"])
    assert len(per_gid) == 2 and (per_gid["min"] == per_gid["max"]).all()
