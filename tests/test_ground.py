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
