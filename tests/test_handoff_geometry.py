"""Handoff events as view entries (issue 8): a break inside a view is no handoff; slivers are not yet "in view".

Two top-down 640 x 360 px cameras at 100 px/m: cam A sees the floor x in [0, 6.4] m, y in [0, 3.6] m; cam B is
shifted along x (overlapping A, or with a gap). A walker walks along y = 1.8 m at 1.2 m/s (0.04 m/frame, 30 fps).
"""
import numpy as np
import pandas as pd
import pytest

from mctrack.associate.ground import (
    GroundConfig,
    _bodies_rise_into_view,
    _left_view,
    _outside_streaks,
    gt_handoffs,
    handoff_events,
    in_view,
    session_handoffs,
    visible_fraction,
)
from mctrack.calibration import Camera
from mctrack.errors import InputError
from mctrack.ground import GroundMap, homography_from_camera
from mctrack.simulate_floor import FloorConfig, floor_rig

STEP = 0.04  # m per frame: 1.2 m/s at 30 fps


def _map(x0: float) -> GroundMap:
    """Top-down camera: pixel (u, v) -> ground (x0 + u / 100, v / 100) m; image 640 x 360 px."""
    return GroundMap(H=np.array([[0.01, 0, x0], [0, 0.01, 0], [0, 0, 1.0]]), size=(640, 360))


def _walk(frames: np.ndarray, x_start: float = 1.0, gid: int = 7) -> pd.DataFrame:
    return pd.DataFrame({"global_id": gid, "frame": frames, "x": x_start + STEP * frames, "y": 1.8})


def _obs(cam: str, frames, gid: int = 7) -> pd.DataFrame:
    return pd.DataFrame({"camera_id": cam, "global_id": gid, "frame": np.asarray(frames)})


def test_run_broken_inside_a_view_is_no_handoff():
    """A (x 0-6.4) and B (x 4-10.4) overlap in x 4-6.4. The walker (x = 1 + 0.04 f) enters B at f = 75.

    A's detections break for 20 frames (f 100-119, x 5-5.8: inside A, an occlusion) while B sees the walker:
    observation-only, A's re-detection at f 120 is a second handoff B -> A; as a view entry it is none (the
    walker never left A). Exactly one event: A -> B at frame 75, gap 0.
    """
    maps = {"A": _map(0.0), "B": _map(4.0)}
    f = np.arange(0, 200)
    pos = _walk(f)
    x = pos["x"].to_numpy()
    in_a, in_b = (x <= 6.4) & ~((f >= 100) & (f < 120)), x >= 4.0
    assert f[in_b][0] == 75
    obs = pd.concat([_obs("A", f[in_a]), _obs("B", f[in_b])], ignore_index=True)
    old = handoff_events(obs, 15)
    assert list(zip(old["frame"], old["from_camera"], old["to_camera"])) == [(75, "A", "B"), (120, "B", "A")]
    new = handoff_events(obs, 15, positions=pos, maps=maps, min_outside=5)
    assert list(zip(new["frame"], new["global_id"], new["from_camera"], new["to_camera"], new["gap_frames"])) \
        == [(75, 7, "A", "B", 0)]


def test_crossing_a_gap_between_views_is_one_handoff_with_its_gap():
    """A (x 0-6.4) and B (x 8-14.4) do not overlap. The walker leaves A after f = 135 and enters B at f = 175.

    Nobody sees it for 39 frames (its positions there are interpolated): one handoff A -> B at frame 175 with
    gap 40 frames (175 - 135), with and without geometry. A 10-frame break in B later (f 200-209, x 9-9.4,
    inside B) is shorter than ``min_absence`` and changes nothing.
    """
    maps = {"A": _map(0.0), "B": _map(8.0)}
    f = np.arange(0, 260)
    x = 1.0 + STEP * f
    seen_a, seen_b = x <= 6.4 + 1e-9, (x >= 8.0 - 1e-9) & ~((f >= 200) & (f < 210))
    assert f[seen_a][-1] == 135 and f[seen_b][0] == 175
    obs = pd.concat([_obs("A", f[seen_a]), _obs("B", f[seen_b])], ignore_index=True)
    pos = _walk(f[seen_a | seen_b])  # no position while nobody sees it
    for kw in ({}, {"positions": pos, "maps": maps, "min_outside": 5}):
        ev = handoff_events(obs, 15, **kw)
        assert list(zip(ev["frame"], ev["global_id"], ev["from_camera"], ev["to_camera"], ev["gap_frames"])) \
            == [(175, 7, "A", "B", 40)]


def test_leaving_and_reentering_a_view_is_a_new_handoff_but_a_short_excursion_is_not():
    """A (x 0-6.4), B (x 4-10.4), C (x 8-14.4). The walker goes right to x = 10.8 (f = 245), then back.

    Seen by A for f 0-135, by B for f 75-235 and again from f = 255 (outside B, x > 10.4, for f 236-254: 19
    frames), by C from f = 175 on. Handoffs: A -> B at 75, B -> C at 175, and B's re-entry C -> B at 255 (it
    left B's view for 19 >= 5 frames). With ``min_outside`` = 20 the 19-frame excursion is no exit: two events.
    """
    maps = {"A": _map(0.0), "B": _map(4.0), "C": _map(8.0)}
    f = np.arange(0, 320)
    x = np.where(f <= 245, 1.0 + STEP * f, 1.0 + STEP * 245 - STEP * (f - 245))
    pos = pd.DataFrame({"global_id": 7, "frame": f, "x": x, "y": 1.8})
    cams = {n: f[(x >= gm.H[0, 2] - 1e-9) & (x <= gm.H[0, 2] + 6.4 + 1e-9)] for n, gm in maps.items()}
    assert cams["B"][0] == 75 and np.setdiff1d(np.arange(75, 320), cams["B"]).tolist() == list(range(236, 255))
    obs = pd.concat([_obs(n, fr) for n, fr in cams.items()], ignore_index=True)
    ev = handoff_events(obs, 15, positions=pos, maps=maps, min_outside=5)
    assert list(zip(ev["frame"], ev["from_camera"], ev["to_camera"], ev["gap_frames"])) == \
        [(75, "A", "B", 0), (175, "B", "C", 0), (255, "C", "B", 0)]
    assert list(handoff_events(obs, 15, positions=pos, maps=maps, min_outside=19)["frame"]) == [75, 175, 255]
    assert list(handoff_events(obs, 15, positions=pos, maps=maps, min_outside=20)["frame"]) == [75, 175]


def test_outside_streaks_count_consecutive_frames_outside():
    """Walker from x = 5 (inside A) to x = 7.8 (outside A after x > 6.4, i.e. from f = 36)."""
    f = np.arange(0, 71)
    pos = pd.DataFrame({"global_id": 3, "frame": f, "x": 5.0 + STEP * f, "y": 1.8})
    st = _outside_streaks(pos, {"A": _map(0.0)})
    fr, s = st["A"][3]
    assert (fr == f).all() and (s[:36] == 0).all() and s[36] == 1 and s[-1] == 35
    assert _left_view(st, "A", 3, 0, 70, 35) and not _left_view(st, "A", 3, 0, 70, 36)
    assert not _left_view(st, "A", 3, 0, 35, 1)  # never outside up to f = 35
    assert _left_view(st, "A", 3, 60, 65, 6) and not _left_view(st, "A", 3, 60, 65, 7)  # counted from lo
    assert _left_view(st, "A", 3, 71, 80, 10)  # after its last position: unseen by all cameras = outside
    assert _left_view(st, "A", 99, 0, 10, 5)  # a target without positions


def test_below_the_image_counts_as_in_view_for_entries():
    """Camera A sees y 0-3.6 m (image rows 0-360). A walker at y = 4 m (its feet under the bottom edge, its body
    in the image of a real oblique camera) is in view with ``below``; one at x = 7 m (right of the image) is not.

    A walker whose A detections break for 30 frames while it stands in that band (y = 4 m) re-enters no view.
    """
    gm = _map(0.0)
    xy = np.array([[3.0, 4.0], [7.0, 4.0], [3.0, -0.5], [3.0, 1.0]])
    assert in_view(gm, xy, 0.0).tolist() == [False, False, False, True]
    assert in_view(gm, xy, 0.0, below=True).tolist() == [True, False, False, True]
    f = np.arange(0, 120)
    pos = pd.DataFrame({"global_id": 7, "frame": f, "x": 3.0, "y": np.where((f >= 40) & (f < 70), 4.0, 3.0)})
    obs = pd.concat([_obs("A", f[(f < 40) | (f >= 70)]), _obs("B", f)], ignore_index=True)
    maps = {"A": gm, "B": _map(0.0)}
    assert list(handoff_events(obs, 15)["frame"]) == [70]
    assert handoff_events(obs, 15, positions=pos, maps=maps, min_outside=5).empty


def test_band_under_the_image_is_in_view_only_for_oblique_cameras():
    """The floor rig's head-height cameras look obliquely: their nadir vanishing point lies below the image
    (rows > 360), bodies rise into the image. A camera 3 m above the floor looking straight down sees bodies
    lean outwards at its image's edges: a target under its bottom edge is out of view.
    """
    for cam in floor_rig(["cam1", "cam2", "cam3", "cam4"], FloorConfig()):
        assert _bodies_rise_into_view(homography_from_camera(cam))
    K = np.array([[500.0, 0, 320], [0, 500, 180], [0, 0, 1]])
    down = Camera("top", K, np.zeros(5), np.array([np.pi, 0, 0]), np.array([0.0, 0, 3.0]), (640, 360))
    assert np.allclose(down.project(np.array([[0.0, 0, 0]])), [[320, 180]])  # nadir at the image centre
    gm = homography_from_camera(down)
    assert not _bodies_rise_into_view(gm)
    assert _bodies_rise_into_view(_map(0.0))  # homography only: assumed oblique


def test_visible_fraction_of_boxes_cut_by_the_image_border():
    """A 50 x 120 px walker enters a 640 x 360 image from the right: widths 8, 20, 40 (cut), then 50 (uncut).

    Fractions 0.16, 0.4, 0.8, 1. A box cut at the top (height 30) with no uncut-height row in its track takes
    the camera's uncut aspect (120 / 50 = 2.4) times its reference width: 30 / 120 = 0.25.
    """
    rows = pd.DataFrame({"camera_id": "A", "track_id": 1, "frame": [0, 1, 2, 3, 4],
                         "x1": [632.0, 620, 600, 560, 540], "y1": 100.0, "x2": [640.0, 640, 640, 610, 590],
                         "y2": 220.0})
    top = pd.DataFrame({"camera_id": "A", "track_id": 2, "frame": [0, 1], "x1": [100.0, 160], "y1": [0.0, 0.0],
                        "x2": [150.0, 210], "y2": [30.0, 60.0]})
    frac = visible_fraction(pd.concat([rows, top], ignore_index=True), {"A": (640, 360)})
    assert np.allclose(frac, [0.16, 0.4, 0.8, 1, 1, 0.25, 0.5])
    assert np.allclose(visible_fraction(rows, {}), 1)  # no image size: nothing is known to be cut


def test_slivers_do_not_start_a_handoff():
    """B (x 4-10.4) overlaps A. A 0.5 m (50 px) wide walker (centre x = 1 + 0.04 f) appears in B at f = 70 as a
    sliver at B's left border and is whole from f = 82; with ``handoff_min_visible`` 0.25 the entry is the first
    frame with 25 % of its width inside (12.5 px, f = 72); with 0 the sliver's first frame.
    """
    maps = {"A": _map(0.0), "B": _map(4.0)}
    f = np.arange(0, 150)
    xc = 1.0 + STEP * f
    rows = []
    for name, x0, tid in (("A", 0.0, 1), ("B", 4.0, 2)):
        u1, u2 = np.clip((xc - 0.25 - x0) * 100, 0, 640), np.clip((xc + 0.25 - x0) * 100, 0, 640)
        ok = u2 - u1 >= 2
        rows.append(pd.DataFrame({"camera_id": name, "track_id": tid, "frame": f[ok], "x1": u1[ok], "y1": 150.0,
                                  "x2": u2[ok], "y2": 180.0, "frame_status": "detected"}))
    tr = pd.concat(rows, ignore_index=True)
    assoc = pd.DataFrame({"camera_id": ["A", "B"], "track_id": [1, 2], "global_id": [7, 7]})
    pts = _walk(f)
    b = tr[tr["camera_id"] == "B"]
    assert b["frame"].iloc[0] == 70 and b.loc[b["x1"] > 2, "frame"].iloc[0] == 82
    ev = session_handoffs(tr, assoc, GroundConfig(), maps, pts)
    assert list(zip(ev["frame"], ev["from_camera"], ev["to_camera"])) == [(72, "A", "B")]
    ev0 = session_handoffs(tr, assoc, GroundConfig(handoff_min_visible=0.0), maps, pts)
    assert list(ev0["frame"]) == [70]


def test_ground_truth_handoffs_skip_occlusion_inside_a_view():
    """GT: the walker of the first test, hidden in A (visibility < 0.25, conf 0) for f 100-119 inside A's view.

    Visibility-only GT counts A's re-detection as a handoff B -> A; with its foot points (gt3d) it does not.
    """
    maps = {"A": _map(0.0), "B": _map(4.0)}
    f = np.arange(0, 200)
    x = 1.0 + STEP * f
    gt2d = {"A": pd.DataFrame({"frame": f[x <= 6.4], "id": 7, "conf": 1}),
            "B": pd.DataFrame({"frame": f[x >= 4.0], "id": 7, "conf": 1})}
    gt2d["A"].loc[gt2d["A"]["frame"].between(100, 119), "conf"] = 0
    gt3d = pd.DataFrame({"frame": f, "target_id": 7, "x": x, "y": 1.8})
    assert list(gt_handoffs(gt2d, 15)["frame"]) == [75, 120]
    assert list(gt_handoffs(gt2d, 15, gt3d=gt3d, maps=maps, min_outside=5)["frame"]) == [75]


def test_handoff_settings_validation():
    with pytest.raises(InputError, match="ground.handoff_min_outside"):
        GroundConfig(handoff_min_outside=-1)
    with pytest.raises(InputError, match="ground.handoff_min_visible"):
        GroundConfig(handoff_min_visible=1.0)
    assert GroundConfig().handoff_min_outside == 5 and GroundConfig().handoff_min_visible == 0.25
