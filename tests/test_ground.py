"""Ground-plane mode (issue 8): homographies, foot points, ground association and camera handoff."""
import numpy as np
import pandas as pd
import pytest

from mctrack.errors import InputError
from mctrack.ground import fit_homography, foot_points, ground_positions, homography_from_camera, read_homography_csv
from mctrack.simulate_floor import FloorConfig, floor_rig


def _cam():
    return floor_rig(["cam1", "cam2", "cam3", "cam4"], FloorConfig())[0]


def test_homography_fit_round_trip_exact_points(tmp_path):
    cam = _cam()
    rng = np.random.default_rng(0)
    xy = np.c_[rng.uniform(-5, -1, 12), rng.uniform(-3, 3, 12)]
    uv = cam.project(np.c_[xy, np.zeros(12)])
    path = tmp_path / "cam1_h.csv"
    pd.DataFrame({"u": uv[:, 0], "v": uv[:, 1], "x": xy[:, 0], "y": xy[:, 1]}).to_csv(path, index=False)
    gm = read_homography_csv(path)
    assert gm.rms_error < 1e-3
    test = np.c_[rng.uniform(-5, -1, 50), rng.uniform(-3, 3, 50)]
    back = gm.to_ground(cam.project(np.c_[test, np.zeros(50)]))
    assert np.abs(back - test).max() < 0.01  # < 1 cm on exact points (pinhole, no distortion)
    assert np.abs(gm.to_image(test) - cam.project(np.c_[test, np.zeros(50)])).max() < 0.05


def test_homography_ransac_rejects_an_outlier():
    cam = _cam()
    xy = np.array([[-5, -2], [-5, 2], [-2, -2], [-2, 2], [-3.5, 0], [-4, 1], [-3, -1.5]], float)
    uv = cam.project(np.c_[xy, np.zeros(len(xy))])
    xy_bad = xy.copy()
    xy_bad[4] += [1.5, -1.0]  # one mis-measured landmark
    gm = fit_homography(uv, xy_bad, ransac_threshold=0.1)
    assert np.abs(gm.to_ground(uv[[4]]) - xy[[4]]).max() < 0.01


@pytest.mark.parametrize("text, where", [
    ("u,v,x,y\n1,2,3,4\n5,6,7,8\n1,9,2,3\nabc,1,2,3\n", "row 4, column 'u'"),
    ("u,v,x,y\n1,2,3,4\n5,6,7,8\n1,9,2,nan\n4,1,2,3\n", "row 3, column 'y'"),
    ("u,v,x\n1,2,3\n", "column 'y'"),
    ("u,v,x,y\n1,2,3,4\n5,6,7,8\n", "homography point pairs"),
])
def test_bad_homography_csv_names_file_row_and_column(tmp_path, text, where):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_homography_csv(path)
    assert "bad.csv" in str(err.value) and where in str(err.value)


def test_ground_position_of_a_foot_point_from_the_calibration():
    cam = _cam()
    gm = homography_from_camera(cam)
    feet = np.array([[-3.0, 0.5], [-4.2, -1.0], [-2.0, 1.5]])
    uv = cam.project(np.c_[feet, np.zeros(3)])
    head = cam.project(np.c_[feet, np.full(3, 1.7)])
    tr = pd.DataFrame({"camera_id": "cam1", "x1": uv[:, 0] - 10, "x2": uv[:, 0] + 10, "y1": head[:, 1],
                       "y2": uv[:, 1]})
    assert np.allclose(foot_points(tr), uv, atol=1e-3)
    g = ground_positions(tr, {"cam1": gm})
    assert np.abs(g - feet).max() < 1e-6
    # a pixel above the horizon has no ground position
    above = cam.project(np.array([[-3.0, 0.0, 6.0]]))
    assert np.isnan(gm.to_ground(above)).all()
    # box centre instead of the foot point lands farther from the camera (beyond the foot)
    gc = ground_positions(tr, {"cam1": gm}, "center")
    assert (np.linalg.norm(gc - cam.center[:2], axis=1) > np.linalg.norm(feet - cam.center[:2], axis=1)).all()


def _tracklet_rows(cam, track, frames, boxes_uv):
    """TRACKLET2D rows whose bottom centre is ``boxes_uv`` (px)."""
    u, v = boxes_uv[:, 0], boxes_uv[:, 1]
    return pd.DataFrame({"camera_id": cam, "track_id": track, "frame": frames, "x1": u - 10, "y1": v - 80,
                         "x2": u + 10, "y2": v, "cx": u, "cy": v - 40, "frame_status": "detected", "det_index": 0,
                         "confidence": 0.9})


def test_ground_association_and_handoff_across_a_gap():
    """Two walkers: A seen by cam1 and cam2 together, then (after 20 unseen frames) by cam4; B by cam1 only.

    Expected: A's three tracklets share one global id (overlap link + handoff), B keeps its own; one
    overlap handoff cam1 -> cam2 is not an event (both start together) but cam -> cam4 is, with gap 20.
    """
    from mctrack.associate.ground import GroundConfig, associate_ground, ground_points, session_handoffs

    cams = {c.name: c for c in floor_rig(["cam1", "cam2", "cam3", "cam4"], FloorConfig())}
    maps = {n: homography_from_camera(c) for n, c in cams.items()}
    fps = 30.0
    f1 = np.arange(0, 60)
    f2 = np.arange(80, 140)
    walk = lambda f: np.c_[-3.0 + 1.2 * f / fps, np.full(len(f), 0.5)]  # noqa: E731 1.2 m/s along +x
    b = lambda f: np.c_[-4.0 + 0 * f, -1.5 + 0.8 * f / fps]  # noqa: E731
    proj = lambda cam, xy: cams[cam].project(np.c_[xy, np.zeros(len(xy))])  # noqa: E731
    tr = pd.concat([_tracklet_rows("cam1", 1, f1, proj("cam1", walk(f1))),
                    _tracklet_rows("cam2", 7, f1, proj("cam2", walk(f1) + [0.1, -0.05])),
                    _tracklet_rows("cam4", 3, f2, proj("cam4", walk(f2))),
                    _tracklet_rows("cam1", 2, f1, proj("cam1", b(f1)))], ignore_index=True)
    cfg = GroundConfig(gate=0.8, max_gap_frames=60)
    assoc, ev, gxy = associate_ground(tr, maps, cfg, fps=fps)
    gid = {(r.camera_id, r.track_id): r.global_id for r in assoc.itertuples()}
    assert gid["cam1", 1] == gid["cam2", 7] == gid["cam4", 3]
    assert gid["cam1", 2] != gid["cam1", 1]
    assert np.abs(gxy[tr["track_id"].to_numpy() == 3] - walk(f2)).max() < 1e-6
    hand = session_handoffs(tr, assoc, cfg)
    assert len(hand) == 1
    h = hand.iloc[0]
    assert (h.frame, h.to_camera, h.gap_frames, h.global_id) == (80, "cam4", 21, gid["cam1", 1])
    assert h.from_camera in ("cam1", "cam2")
    pts = ground_points(tr, assoc, gxy)
    a = pts[pts["global_id"] == gid["cam1", 1]].set_index("frame")
    assert (a.loc[f1, "n_cameras"] == 2).all() and (a["z"] == 0).all()
    assert np.abs(a.loc[f1, "x"] - (walk(f1)[:, 0] + 0.05)).max() < 1e-6


def test_handoff_not_linked_beyond_the_gap_or_gate():
    from mctrack.associate.ground import GroundConfig, associate_ground

    cams = {c.name: c for c in floor_rig(["cam1", "cam4"], FloorConfig())}
    maps = {n: homography_from_camera(c) for n, c in cams.items()}
    f1, f2 = np.arange(0, 40), np.arange(140, 180)  # 100-frame gap > max_gap_frames
    xy1 = np.c_[-3.0 + 1.2 * f1 / 30, np.zeros(40)]
    xy2 = np.c_[-3.0 + 1.2 * f2 / 30, np.zeros(40)]
    tr = pd.concat([_tracklet_rows("cam1", 1, f1, cams["cam1"].project(np.c_[xy1, np.zeros(40)])),
                    _tracklet_rows("cam4", 1, f2, cams["cam4"].project(np.c_[xy2, np.zeros(40)]))], ignore_index=True)
    assoc, _, _ = associate_ground(tr, maps, GroundConfig(max_gap_frames=90), fps=30)
    assert assoc["global_id"].nunique() == 2
    assoc, _, _ = associate_ground(tr, maps, GroundConfig(max_gap_frames=120), fps=30)
    assert assoc["global_id"].nunique() == 1
    # 3 m from the predicted position, gate 1 m + 0.5 m/s x 3.3 s = 2.7 m: not linked even within the gap
    tr2 = tr.copy()
    far = tr2["camera_id"] == "cam4"
    xy3 = xy2 + [0.0, 3.0]
    tr2.loc[far, ["x1", "x2", "y2"]] = np.c_[cams["cam4"].project(np.c_[xy3, np.zeros(40)])[:, [0, 0, 1]]] + [-10, 10, 0]
    assoc, _, _ = associate_ground(tr2, maps, GroundConfig(max_gap_frames=120, gate_growth=0.5), fps=30)
    assert assoc["global_id"].nunique() == 2


def test_handoff_evaluation_counts_matches():
    from mctrack.associate.ground import evaluate_handoffs

    gt = pd.DataFrame({"frame": [50, 120, 200], "global_id": [1, 1, 2], "from_camera": ["a", "b", "a"],
                       "to_camera": ["b", "c", "c"], "gap_frames": [0, 10, 0]})
    pred = pd.DataFrame({"frame": [55, 300, 190], "global_id": [10, 10, 11], "from_camera": ["a", "b", "b"],
                         "to_camera": ["b", "c", "c"], "gap_frames": [0, 0, 0]})
    r = evaluate_handoffs(pred, gt, {10: 1, 11: 2}, tolerance=15)
    assert (r["n_matched"], r["n_gt"], r["n_pred"]) == (1, 3, 3)
    assert r["recall"] == pytest.approx(1 / 3) and r["median_frame_error"] == 5


def test_ground_std_grows_with_distance():
    from mctrack.ground import ground_std

    cam = _cam()
    feet = np.array([[-5.0, 0.0], [-2.0, 0.0]])  # cam1 stands near x = -6.5: near, far
    uv = cam.project(np.c_[feet, np.zeros(2)])
    tr = pd.DataFrame({"camera_id": "cam1", "x1": uv[:, 0] - 5, "x2": uv[:, 0] + 5, "y1": uv[:, 1] - 50,
                       "y2": uv[:, 1]})
    s = ground_std(tr, {"cam1": homography_from_camera(cam)}, pixel_sigma=2.0)
    assert 0.002 < s[0] < s[1] < 0.2


def test_foot_offset_moves_the_nearest_footprint_point_to_the_centre():
    cam = _cam()
    centre = np.array([[-3.0, 0.5]])
    away = (centre - cam.center[:2]) / np.linalg.norm(centre - cam.center[:2])
    near = centre - 0.25 * away  # the footprint point nearest to the camera (radius 0.25 m)
    uv = cam.project(np.c_[near, np.zeros(1)])
    tr = pd.DataFrame({"camera_id": ["cam1"], "x1": uv[:, 0] - 5, "x2": uv[:, 0] + 5, "y1": uv[:, 1] - 50,
                       "y2": uv[:, 1]})
    gm = {"cam1": homography_from_camera(cam)}
    assert np.linalg.norm(ground_positions(tr, gm) - centre) == pytest.approx(0.25, abs=1e-6)
    assert np.linalg.norm(ground_positions(tr, gm, foot_offset=0.25) - centre) < 0.02


def test_box_cut_by_the_bottom_edge_has_no_ground_position():
    cam = _cam()
    gm = homography_from_camera(cam)
    W, H = cam.size
    tr = pd.DataFrame({"camera_id": "cam1", "x1": [100.0, 100.0], "x2": [140.0, 140.0], "y1": [50.0, 50.0],
                       "y2": [H - 40.0, float(H)]})
    g = ground_positions(tr, {"cam1": gm})
    assert np.isfinite(g[0]).all() and np.isnan(g[1]).all()


def test_floor_walkers_keep_their_colour_across_cameras():
    """A walker's clothing is one colour: every camera renders it through its own white balance (gain 0.85-1.15).

    Expected: in every camera, each walker's flat centre colour is its clothing colour times one gain per
    channel, the same for all walkers of that camera (the camera's white balance), within 0.85-1.15.
    """
    from mctrack.simulate_floor import floor_trajectories, render_floor_camera

    cfg = FloorConfig(n_targets=8, n_frames=60, noise_sigma=0.0)
    cams = floor_rig(["cam1", "cam2", "cam3", "cam4"], cfg)
    feet = floor_trajectories(cfg)
    colours = np.random.default_rng(5).uniform(20, 110, (feet.shape[1], 3))
    n_checked = 0
    for i, cam in enumerate(cams):
        frames, gt = render_floor_camera(cam, feet, cfg, np.random.default_rng([9, i]), colours)
        gain = {}
        for f, img in enumerate(frames):
            for r in gt[(gt["frame"] == f) & (gt["visibility"] > 0.6) & (gt["w"] > 6) & (gt["h"] > 10)]:
                patch = img[int(r["y"] + r["h"] * 0.4):int(r["y"] + r["h"] * 0.6),
                            int(r["x"] + r["w"] * 0.4):int(r["x"] + r["w"] * 0.6)].reshape(-1, 3).astype(float)
                if len(patch) and patch.std(0).max() < 2:  # one flat colour: the walker, not an occluder's edge
                    gain.setdefault(int(r["target_id"]), patch.mean(0) / colours[r["target_id"] - 1])
        g = np.array(list(gain.values()))
        if len(g) >= 2:
            n_checked += 1
            assert ((g > 0.85 - 0.03) & (g < 1.15 + 0.03)).all(), (cam.name, g)
            np.testing.assert_allclose(g, np.broadcast_to(g[0], g.shape), atol=0.03)
    assert n_checked >= 2
