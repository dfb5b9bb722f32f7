import numpy as np
from conftest import make_tracklets

from mctrack.tables import ASSOCIATION
from mctrack.triangulate import TriangulationConfig, triangulate, triangulate_points


def _truth_association(tracklets):
    keys = tracklets[["camera_id", "track_id"]].drop_duplicates()
    return ASSOCIATION.coerce(keys.assign(global_id=(keys["track_id"] - 1) // 10, n_frames=1, n_linked_cameras=4))


def test_exact_points_recovered(rig_scene):
    cams, pos = rig_scene
    cl = list(cams.values())
    X = pos.reshape(-1, 3)
    uv = np.stack([c.project(X) for c in cl], axis=1)
    mask = np.isfinite(uv).all(2)
    Xh, used, _ = triangulate_points(uv, mask, cl)
    assert np.nanmax(np.abs(Xh - X)) < 1e-8
    assert used.sum(1).min() >= 2


def test_outlier_camera_dropped(rig_scene):
    cams, pos = rig_scene
    cl = list(cams.values())
    X = pos[0]
    uv = np.stack([c.project(X) for c in cl], axis=1)
    uv[:, 2] += 40.0  # camera 3 sees every point 40 px off
    Xh, used, _ = triangulate_points(uv, np.ones(uv.shape[:2], bool), cl, max_reprojection_error=5.0)
    assert not used[:, 2].any() and used[:, [0, 1, 3]].all()
    assert np.abs(Xh - X).max() < 1e-8


def test_table_api_accuracy_and_uncertainty(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    pts, res = triangulate(tr, _truth_association(tr), cams, TriangulationConfig(centroid_sigma=1.0))
    truth = pos[pts["frame"].to_numpy(), pts["global_id"].to_numpy()]
    err = np.linalg.norm(pts[["x", "y", "z"]].to_numpy() - truth, axis=1)
    assert len(pts) > 0.9 * pos.shape[0] * pos.shape[1]
    # 1 px of noise at ~2 m with f ~ 420 px moves a single ray by ~5 mm; 3-4 views do no worse than that
    assert np.median(err) < 0.006
    # reprojection residuals reflect the 1 px centroid noise
    assert 0.3 < res["residual_px"].median() < 1.5
    # linearised std is calibrated: RMS error within a factor 2 of the predicted RMS
    ratio = np.sqrt(np.mean(err**2)) / np.sqrt(np.mean(pts["position_std"] ** 2))
    assert 0.5 < ratio < 2.0, ratio
    assert (pts["n_cameras"] >= 2).all()
    # residual table is consistent with the points table
    mean_res = res.groupby(["frame", "global_id"])["residual_px"].mean().to_numpy()
    np.testing.assert_allclose(np.sort(mean_res), np.sort(pts["reprojection_error"].to_numpy()), rtol=1e-5)


def test_single_camera_points_not_triangulated(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets({"c1": cams["c1"]}, pos)
    pts, res = triangulate(tr, _truth_association(tr), cams)
    assert pts.empty and res.empty


def test_coasted_rows_ignored_by_default(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos)
    coasted = tr["camera_id"] == "c4"
    tr.loc[coasted, "frame_status"] = "coasted"
    pts, _ = triangulate(tr, _truth_association(tr), cams)
    assert pts["n_cameras"].max() <= 3
    pts_all, _ = triangulate(tr, _truth_association(tr), cams, TriangulationConfig(use_coasted=True))
    assert pts_all["n_cameras"].max() == 4


# --- gating and calibrated uncertainty (issue 6, item 4) ---


def _two_cams(rig_scene):
    cams, pos = rig_scene
    return [cams["c1"], cams["c2"]], pos


def test_point_behind_both_cameras_rejected(rig_scene):
    """A point far above the rig is behind the downward-looking cameras; its pinhole images are
    consistent (the DLT solves it exactly, sign-blind), yet it must not be emitted."""
    import cv2

    cl, _ = _two_cams(rig_scene)
    Y = np.array([[0.0, 0.0, 20.0]])
    assert all(c.world_to_camera(Y)[0, 2] < 0 for c in cl)
    uv = np.stack([cv2.projectPoints(Y, c.rvec, c.tvec, c.K, c.dist)[0].reshape(1, 2) for c in cl], axis=1)
    X, used, _ = triangulate_points(uv, np.ones((1, 2), bool), cl, max_reprojection_error=1e6)
    assert np.isnan(X).all() and not used.any()


def _ring_camera(name, azimuth_deg, radius=2.0):
    """Distortion-free 640x480 camera on a horizontal ring, looking at the origin."""
    import cv2

    from mctrack.calibration import Camera
    from mctrack.simulate import _look_at

    a = np.deg2rad(azimuth_deg)
    C = radius * np.array([np.cos(a), np.sin(a), 0.0])
    R = _look_at(C, np.zeros(3))
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    return Camera(name, K, np.zeros(5), cv2.Rodrigues(R)[0].ravel(), -R @ C, (640, 480))


def test_behind_camera_dropped_when_others_agree():
    """Cameras 1, 2 face camera 3 across the origin; point Y lies beyond camera 3, so behind it.
    Camera 3's sign-blind pinhole image of Y makes all views algebraically consistent (the DLT finds
    Y exactly): camera 3 must be dropped and Y kept from cameras 1 and 2."""
    import cv2

    cl = [_ring_camera("a", 170), _ring_camera("b", 190), _ring_camera("c", 0)]
    Y = 1.5 * cl[2].center
    assert [c.world_to_camera(Y[None])[0, 2] > 0 for c in cl] == [True, True, False]
    uv = np.stack([cv2.projectPoints(Y[None], c.rvec, c.tvec, c.K, c.dist)[0].reshape(1, 2) for c in cl], axis=1)
    X, used, _ = triangulate_points(uv, np.ones((1, 3), bool), cl, max_reprojection_error=1e6)
    assert used[0].tolist() == [True, True, False]
    assert np.abs(X[0] - Y).max() < 1e-6
    # with only the camera that has it behind and one other, nothing is emitted
    X, used, _ = triangulate_points(uv[:, 1:], np.ones((1, 2), bool), cl[1:], max_reprojection_error=1e6)
    assert np.isnan(X).all() and not used.any()


def test_two_camera_point_kept_only_under_threshold(rig_scene):
    cl, pos = _two_cams(rig_scene)
    X0 = np.ascontiguousarray(pos[:, 0])
    uv = np.stack([c.project(X0) for c in cl], axis=1)
    uv[:, 1, 1] += 40.0  # camera 2 is 40 px off along v: the rays miss each other
    mask = np.ones(uv.shape[:2], bool)
    X, used, proj = triangulate_points(uv, mask, cl, max_reprojection_error=5.0)
    assert np.isnan(X).all() and not used.any()
    X, used, proj = triangulate_points(uv, mask, cl, max_reprojection_error=50.0)
    err = np.linalg.norm(proj - uv, axis=2)
    assert used.all() and (err.max(1) <= 50.0).all() and (err.max(1) > 5.0).all()


def test_std_per_axis_matches_actual_error(rig_scene):
    """Noisy centroids (1.5 px per axis) of points spread over the tank, seen by 4 and by 2 cameras:
    the RMS of the actual error along x, y and z over the RMS of the predicted std is 0.8-1.25.
    centroid_sigma (the floor) is set below the true noise so the estimate, not the floor, is tested."""
    from mctrack.simulate import SimulationConfig

    cams, _ = rig_scene
    rng = np.random.default_rng(7)
    m = SimulationConfig().target_length
    pos = rng.uniform([-0.5 + m, -0.5 + m, m], [0.5 - m, 0.5 - m, 0.5 - m], (1, 3000, 3))
    assoc = None
    for names in (["c1", "c2", "c3", "c4"], ["c1", "c3"]):
        sub = {n: cams[n] for n in names}
        tr = make_tracklets(sub, pos, noise_px=1.5, seed=11)
        assoc = _truth_association(tr)
        assoc["global_id"] = (assoc["track_id"] - 1) // 10
        pts, _ = triangulate(tr, assoc, sub, TriangulationConfig(centroid_sigma=0.5, max_reprojection_error=15.0))
        assert len(pts) > 2900 and (pts["n_cameras"] == len(names)).all()
        truth = pos[0, pts["global_id"].to_numpy()]
        err = pts[["x", "y", "z"]].to_numpy() - truth
        std = pts[["std_x", "std_y", "std_z"]].to_numpy()
        ratio = np.sqrt((err**2).mean(0)) / np.sqrt((std**2).mean(0))
        assert ((ratio > 0.8) & (ratio < 1.25)).all(), (names, ratio)
        # position_std is the RMS of the per-axis stds, not sqrt(trace)
        np.testing.assert_allclose(pts["position_std"], np.sqrt((std**2).mean(1)), rtol=1e-5)
        for col in ("reprojection_error", "position_std", "std_x", "std_y", "std_z", "confidence"):
            assert np.isfinite(pts[col]).all(), col


def test_gated_points_have_finite_quality_and_none_behind(rig_scene):
    """Random wrong pairings (as a bad association would produce) never yield a point behind a used
    camera, above the threshold or with non-finite quality."""
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    rng = np.random.default_rng(0)
    tr["cx"] = tr["cx"] + rng.choice([0.0, 0.0, 60.0, -200.0], len(tr))
    tr["cy"] = tr["cy"] + rng.choice([0.0, 0.0, 90.0, -300.0], len(tr))
    pts, res = triangulate(tr, _truth_association(tr), cams, TriangulationConfig(max_reprojection_error=8.0))
    assert 0 < len(pts) and pts.attrs["n_rejected"] > 0
    assert np.isfinite(pts.drop(columns=["frame", "global_id"]).to_numpy(np.float64)).all()
    assert res["residual_px"].max() <= 8.0 + 1e-3
    X = pts[["x", "y", "z"]].to_numpy()
    for name, cam in cams.items():
        r = res[res["camera_id"] == name].merge(pts, on=["frame", "global_id"])
        assert (cam.world_to_camera(r[["x", "y", "z"]].to_numpy())[:, 2] > 0).all()
    assert len(X) == len(pts)


def test_coincident_cameras_give_no_point(rig_scene):
    """Two identical cameras see the point along one ray: depth is unobservable, nothing is written."""
    cams, pos = rig_scene
    c = cams["c1"]
    twins = {"a": c, "b": type(c)("b", c.K, c.dist, c.rvec, c.tvec, c.size)}
    tr = make_tracklets(twins, pos[:5], noise_px=0.0)
    pts, res = triangulate(tr, _truth_association(tr), twins)
    assert pts.empty and res.empty and pts.attrs["n_rejected"] > 0
