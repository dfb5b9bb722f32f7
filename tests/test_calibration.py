import numpy as np
import pytest
from conftest import shared_path

from mctrack.calibration import Camera, find_camera, load_calibration, write_anipose_toml
from mctrack.errors import InputError


def _cam(name="a", dist=(-0.2, 0.05, 0.001, -0.001)):
    return Camera(name, K=[[600, 0, 320], [0, 610, 240], [0, 0, 1]], dist=dist, rvec=[0.3, -0.2, 0.1],
                  tvec=[0.1, -0.05, 2.0], size=(640, 480))


def test_project_normalize_rays_round_trip():
    cam = _cam()
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.4, 0.4, (200, 3))
    uv = cam.project(X)
    assert np.isfinite(uv).all()
    o, d = cam.rays(uv)
    # every world point lies on its back-projected ray (distortion undone by undistortPoints)
    v = X - o
    off_ray = np.linalg.norm(v - (v * d).sum(1, keepdims=True) * d, axis=1)
    assert off_ray.max() < 1e-5
    assert np.allclose(cam.center, -cam.R.T @ cam.tvec)


def test_points_behind_camera_are_nan():
    cam = _cam(dist=(0, 0, 0, 0))
    behind = cam.center + (-3.0) * cam.R[2]  # along -optical axis
    assert np.isnan(cam.project(behind[None])).all()


def test_toml_round_trip(tmp_path):
    cams = [_cam("cam_a"), _cam("cam_b", dist=(0.0, 0.0, 0.0, 0.0))]
    write_anipose_toml(cams, tmp_path / "cal.toml")
    back = load_calibration(tmp_path / "cal.toml")
    assert list(back) == ["cam_a", "cam_b"]
    for c in cams:
        b = back[c.name]
        for attr in ("K", "dist", "rvec", "tvec"):
            np.testing.assert_allclose(getattr(b, attr), getattr(c, attr), rtol=0, atol=1e-12)
        assert b.size == c.size


def test_pose2sim_calibration_and_name_lookup():
    cams = load_calibration(shared_path("data", "pose2sim_multiperson", "Calib_scene.toml"))
    assert len(cams) == 4
    cam = find_camera(cams, "cam03")
    assert cam.name == "int_cam03_img" and cam.size == (1088, 1920)
    # the rig looks at the floor near the world origin: it projects inside every image
    for c in cams.values():
        u, v = c.project(np.array([[0.0, 0.0, 0.9]]))[0]
        assert 0 < u < c.size[0] and 0 < v < c.size[1]


def test_bad_calibration_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_calibration(tmp_path / "missing.toml")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InputError, match="unknown calibration format"):
        load_calibration(tmp_path / "x.json")
    (tmp_path / "bad.toml").write_text("[cam]\nmatrix = [[1,0,0],[0,1,0],[0,0,1]]\n")
    with pytest.raises(InputError, match=r"\[cam\]\.size"):
        load_calibration(tmp_path / "bad.toml")
    cams = {"int_cam01_img": _cam(), "int_cam010_img": _cam()}
    with pytest.raises(InputError, match="several"):
        find_camera(cams, "cam01")
    with pytest.raises(InputError, match="calibration_name"):
        find_camera(cams, "cam7")
