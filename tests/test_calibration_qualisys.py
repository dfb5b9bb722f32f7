"""Qualisys ``.qca.txt`` reader against Pose2Sim's own converter, and what the two Pose2Sim demo files are.

Reference numbers: Pose2Sim's ``calib_qca_fun`` (perfanalytics/pose2sim ``Pose2Sim/calibration.py``,
commit f7b39c7, functions copied verbatim and run on ``Calib.qca.txt``); its output for cam01-cam03 is also
the ``Calib_qualisys.toml`` quoted in Pose2Sim issue #98. Our reader follows it except for the distortion,
which Pose2Sim divides by 64 and we keep as written (see :mod:`mctrack.calibration.qualisys`).
"""
import numpy as np
import pytest
from conftest import shared_path
from scipy.spatial.transform import Rotation

from mctrack.calibration import find_camera, load_calibration, read_qualisys_qca

# Pose2Sim calib_qca_fun(Calib.qca.txt, binning_factor=1): fx, fy, cx, cy (px), rotation (Rodrigues),
# translation (m), world -> OpenCV camera
POSE2SIM = {
    "cam01": ([1681.244873046875, 1681.075439453125, 532.97369384375, 948.137390140625],
              [1.6882754799999993, 1.0483220499999997, -0.41955852000000016],
              [0.3211048899999996, 0.9563320600000009, 2.8907130499999996]),
    "cam02": ([1673.729614265625, 1673.79724121875, 534.494567875, 963.225891109375],
              [1.34975875, 1.5963809099999993, -1.1983285799999999],
              [-0.11152829000000014, 0.7766184800000001, 3.0675519599999994]),
    "cam03": ([1681.598388671875, 1681.509887703125, 513.20837403125, 955.005126953125],
              [0.8109654899999995, -2.1972129299999996, 1.3760277799999996],
              [-0.7934803899999995, 0.32283594000000126, 4.353514870000001]),
    "cam04": ([1675.234985359375, 1675.204223640625, 540.106201171875, 964.0302734375],
              [1.4045571699999995, -1.3887412699999993, 0.42535743000000026],
              [0.5030217200000007, 0.04894934000000107, 4.406564460000002]),
}


@pytest.fixture(scope="module")
def demo():
    d = ("data", "pose2sim_multiperson")
    return read_qualisys_qca(shared_path(*d, "Calib.qca.txt")), load_calibration(shared_path(*d, "Calib_scene.toml"))


def test_reader_matches_pose2sim_converter(demo):
    qca, _ = demo
    assert sorted(qca) == sorted(POSE2SIM)
    for name, (k, rvec, tvec) in POSE2SIM.items():
        cam = qca[name]
        assert cam.size == (1088, 1920)
        np.testing.assert_allclose(cam.K[[0, 1, 0, 1], [0, 1, 2, 2]], k, rtol=0, atol=1e-9)
        np.testing.assert_allclose(cam.rvec, rvec, rtol=0, atol=1e-7)  # Pose2Sim's rotations round-trip 1e-8
        np.testing.assert_allclose(cam.tvec, tvec, rtol=0, atol=1e-7)
    # distortion as written in the file (Pose2Sim: the same numbers / 64)
    np.testing.assert_allclose(qca["cam01"].dist, [-0.046183, 0.139983, 0.000608, 0.00069, 0.0])


def test_distortion_matches_the_independent_checkerboard_calibration(demo):
    """The file's radial coefficients describe the lens the TOML's checkerboard calibration found; /64 does not."""
    qca, toml = demo
    for name, q in qca.items():
        t = find_camera(toml, name)
        # displacement of the distortion model over the image, px (same K so only the coefficients differ)
        u, v = np.meshgrid(np.linspace(0, q.size[0] - 1, 18), np.linspace(0, q.size[1] - 1, 32))
        xn = (np.c_[u.ravel(), v.ravel()] - q.K[:2, 2]) / q.K[[0, 1], [0, 1]]
        X = np.c_[xn, np.ones(len(xn))]

        def proj(dist, q=q, X=X):
            return type(q)(q.name, q.K, dist, np.zeros(3), np.zeros(3), q.size).project(X)

        as_read = np.linalg.norm(proj(q.dist) - proj(t.dist), axis=1)
        div64 = np.linalg.norm(proj(q.dist / 64) - proj(t.dist), axis=1)
        # measured medians: as read 0.20 / 0.56 / 0.35 / 0.93 px, divided by 64 1.97 / 1.91 / 2.18 / 1.56 px
        assert np.median(as_read) < 1.0 < 1.5 < np.median(div64), name


def test_fov_window_is_the_image_grid_without_resolution_scaling(tmp_path):
    """A 1440p Miqus Video Plus export (Pose2Sim issue #212): K and size stay in the fov_video pixel grid."""
    p = tmp_path / "plus.qca.txt"
    p.write_text(
        '<calibration><cameras><camera active="1" serial="35441" model="Miqus Video Plus" viewrotation="0" '
        'video_resolution="1440p"><fov_video left="100" top="0" right="2019" bottom="1439"/>'
        '<transform x="1000" y="-2000" z="1500" r11="1" r12="0" r13="0" r21="0" r22="1" r23="0" r31="0" r32="0" '
        'r33="1"/><intrinsic focalLengthU="128000" focalLengthV="128064" centerPointU="70400" '
        'centerPointV="46080" radialDistortion1="-0.05" radialDistortion2="0.1" radialDistortion3="0" '
        'tangentalDistortion1="0.001" tangentalDistortion2="-0.002"/></camera></cameras></calibration>')
    cam = read_qualisys_qca(p)["35441"]
    assert cam.size == (1920, 1440)
    np.testing.assert_allclose(cam.K, [[2000, 0, 1100 - 100], [0, 2001, 720], [0, 0, 1]])
    np.testing.assert_allclose(cam.center, [1.0, -2.0, 1.5])
    # identity transform = camera looking down world -z with image y along world -y (QTM axes)
    np.testing.assert_allclose(cam.R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)


def _similarity(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Residuals (N, 3) of the least-squares similarity Y ≈ s·R·X + t (Umeyama 1991, via scipy's Kabsch)."""
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    rot, _ = Rotation.align_vectors(Yc, Xc)
    RX = rot.apply(Xc)
    s = (Yc * RX).sum() / (Xc ** 2).sum()
    return Yc - s * RX


def test_demo_files_are_two_calibrations_not_two_world_frames(demo):
    """Camera centres need no convention (x, y, z / 1000), so frame-free disagreement is in the files.

    ``Calib_scene.toml`` is the output of Pose2Sim's own ``calculate`` step (camera names are its
    intrinsics folders ``int_camNN_img``; 4x7 checkerboard intrinsics, extrinsics from 8 clicked scene
    points; Pose2Sim commit 1e65a39), ``Calib.qca.txt`` the Qualisys export of the same cameras.
    """
    qca, toml = demo
    names = sorted(qca)
    A = np.array([qca[k].center for k in names])
    B = np.array([find_camera(toml, k).center for k in names])
    # no similarity (rotation, translation, scale) brings the centres within 5 cm: measured residuals
    # 6.7 / 6.4 / 4.2 / 4.5 cm (cam01..04); raw distances 5.4 / 14.4 / 9.7 / 7.1 cm
    res = np.linalg.norm(_similarity(A, B), axis=1)
    assert res.min() > 0.04 and res.max() > 0.06
    # frame-free: distances between camera centres differ by up to 10.7 cm (cam02-cam04)
    i, j = np.triu_indices(len(names), 1)
    dd = np.linalg.norm(B[i] - B[j], axis=1) - np.linalg.norm(A[i] - A[j], axis=1)
    assert np.abs(dd).max() > 0.10
    # intrinsics differ camera by camera in both directions (fx ratio 1.006, 0.999, 1.002, 0.991; cx up to
    # 43 px apart): no unit or window convention maps one onto the other
    ratio = np.array([qca[k].K[0, 0] / find_camera(toml, k).K[0, 0] for k in names])
    assert ratio.max() > 1.005 and ratio.min() < 0.995
    assert max(abs(qca[k].K[0, 2] - find_camera(toml, k).K[0, 2]) for k in names) > 30
