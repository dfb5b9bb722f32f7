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
