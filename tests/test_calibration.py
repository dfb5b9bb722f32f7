"""Camera model, every calibration reader/writer, malformed files, and the checks against a session."""
import numpy as np
import pytest
from conftest import shared_path

from mctrack.calibration import (
    Camera,
    Rig,
    find_camera,
    load_calibration,
    read_anipose_toml,
    read_opencv_storage,
    read_qualisys_qca,
    write_anipose_toml,
)
from mctrack.calibration.checks import check_camera_size, session_cameras
from mctrack.config import CameraEntry
from mctrack.errors import InputError


def _cam(name="a", dist=(-0.2, 0.05, 0.001, -0.001), size=(640, 480)):
    return Camera(name, K=[[600, 0, 320], [0, 610, 240], [0, 0, 1]], dist=dist, rvec=[0.3, -0.2, 0.1],
                  tvec=[0.1, -0.05, 2.0], size=size)


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


def test_toml_round_trip_is_exact(tmp_path):
    cams = [_cam("cam_a"), _cam("cam_b", dist=(0.0, 0.0, 0.0, 0.0, 0.01))]
    write_anipose_toml(cams, tmp_path / "cal.toml", metadata={"error": 0.5})
    back = load_calibration(tmp_path / "cal.toml")
    assert isinstance(back, Rig) and list(back) == ["cam_a", "cam_b"] and back.source_unit == "m"
    for c in cams:
        b = back[c.name]
        for attr in ("K", "dist", "rvec", "tvec"):
            np.testing.assert_array_equal(getattr(b, attr), getattr(c, attr))  # tomli-w floats round-trip exactly
        assert b.size == c.size and b.fisheye == c.fisheye
    assert "unit = \"m\"" in (tmp_path / "cal.toml").read_text()


def test_toml_in_millimetres_is_converted_once(tmp_path):
    (tmp_path / "mm.toml").write_text(
        '[c]\nsize = [640, 480]\nmatrix = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]\n'
        'distortions = [0.0, 0.0, 0.0, 0.0]\nrotation = [0.0, 0.0, 0.0]\ntranslation = [100.0, 0.0, 2000.0]\n'
        '[metadata]\nunit = "mm"\n')
    rig = read_anipose_toml(tmp_path / "mm.toml")
    np.testing.assert_allclose(rig["c"].tvec, [0.1, 0.0, 2.0])
    assert rig.source_unit == "mm"
    write_anipose_toml(rig, tmp_path / "m.toml")  # written in metres, read back unchanged
    np.testing.assert_allclose(load_calibration(tmp_path / "m.toml")["c"].tvec, [0.1, 0.0, 2.0])


def test_pose2sim_calibration_and_name_lookup():
    cams = load_calibration(shared_path("data", "pose2sim_multiperson", "Calib_scene.toml"))
    assert len(cams) == 4
    cam = find_camera(cams, "cam03")
    assert cam.name == "int_cam03_img" and cam.size == (1088, 1920)
    # the rig looks at the floor near the world origin: it projects inside every image
    for c in cams.values():
        u, v = c.project(np.array([[0.0, 0.0, 0.9]]))[0]
        assert 0 < u < c.size[0] and 0 < v < c.size[1]


def test_qualisys_qca_matches_pose2sim_toml():
    """The same rig exported by Qualisys (mm, camera axes flipped, 1/64 px) and by Pose2Sim (m, OpenCV)."""
    toml = load_calibration(shared_path("data", "pose2sim_multiperson", "Calib_scene.toml"))
    qca = read_qualisys_qca(shared_path("data", "pose2sim_multiperson", "Calib.qca.txt"))
    assert list(qca) == ["cam01", "cam02", "cam03", "cam04"] and qca.source_unit == "mm"
    for name, q in qca.items():
        t = find_camera(toml, name)
        assert q.size == t.size == (1088, 1920)
        # two separate calibrations of one rig (README: the qca is slightly newer): measured 5.4, 14.4, 9.7,
        # 7.1 cm between centres, 0.9-2.7 deg between orientations, focal lengths within 1%
        assert np.linalg.norm(q.center - t.center) < 0.16, name
        ang = np.degrees(np.linalg.norm(__import__("cv2").Rodrigues(q.R @ t.R.T)[0]))
        assert ang < 3.0, (name, ang)
        assert abs(q.K[0, 0] / t.K[0, 0] - 1) < 0.01
        # both project the floor centre to nearby pixels (a wrong axis convention lands far off-image)
        d = np.linalg.norm(q.project(np.array([[0.0, 0.0, 0.9]])) - t.project(np.array([[0.0, 0.0, 0.9]])))
        assert d < 60, (name, d)


def _write_easymocap(tmp_path, rot=None):
    import cv2

    cams = [_cam("01"), _cam("02", dist=(0.0, 0.0, 0.0, 0.0, 0.0))]
    fi = cv2.FileStorage(str(tmp_path / "intri.yml"), cv2.FILE_STORAGE_WRITE)
    fe = cv2.FileStorage(str(tmp_path / "extri.yml"), cv2.FILE_STORAGE_WRITE)
    for fs in (fi, fe):
        fs.startWriteStruct("names", cv2.FileNode_SEQ)
        for c in cams:
            fs.write("", c.name)
        fs.endWriteStruct()
    for c in cams:
        fi.write(f"K_{c.name}", c.K)
        fi.write(f"dist_{c.name}", c.dist.reshape(1, -1))
        fi.write(f"W_{c.name}", c.size[0])
        fi.write(f"H_{c.name}", c.size[1])
        fe.write(f"R_{c.name}", c.rvec.reshape(3, 1))
        fe.write(f"Rot_{c.name}", c.R if rot is None or c.name != "02" else rot)
        fe.write(f"T_{c.name}", c.tvec.reshape(3, 1))
    fi.release()
    fe.release()
    return cams


def test_opencv_easymocap_intri_extri(tmp_path):
    cams = _write_easymocap(tmp_path)
    for f in ("intri.yml", "extri.yml"):  # either file finds the other
        rig = load_calibration(tmp_path / f)
        assert list(rig) == ["01", "02"]
        for c in cams:
            np.testing.assert_allclose(rig[c.name].K, c.K)
            np.testing.assert_allclose(rig[c.name].rvec, c.rvec, atol=1e-9)
            np.testing.assert_allclose(rig[c.name].tvec, c.tvec)
            assert rig[c.name].size == c.size


def test_opencv_single_camera_xml_is_intrinsics_only(tmp_path):
    import cv2

    fs = cv2.FileStorage(str(tmp_path / "left.xml"), cv2.FILE_STORAGE_WRITE)
    fs.write("camera_matrix", _cam().K)
    fs.write("distortion_coefficients", np.zeros((5, 1)))
    fs.write("image_width", 640)
    fs.write("image_height", 480)
    fs.release()
    rig = read_opencv_storage(tmp_path / "left.xml")
    assert list(rig) == ["left"] and not rig["left"].has_extrinsics and rig["left"].size == (640, 480)
    with pytest.raises(InputError, match=r"left\.xml: camera 'left': has intrinsics only"):
        session_cameras(tmp_path / "left.xml", {"left": CameraEntry("left", "v.mp4")}, None)


def test_fishpy_intrinsics_json():
    rig = load_calibration(shared_path("data", "fishpy_tank", "intrinsics.json"))
    assert list(rig) == ["cam1", "cam2", "cam3"]
    assert rig["cam2"].size == (2048, 1536) and rig["cam2"].dist.size == 5 and not rig["cam2"].has_extrinsics


# ------------------------------------------------------------------ malformed files: file + camera + field named


def _toml(tmp_path, matrix="[[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]", extra=""):
    p = tmp_path / "rig.toml"
    p.write_text(f'[good]\nsize = [640, 480]\nmatrix = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]\n'
                 f'distortions = [0.0, 0.0, 0.0, 0.0]\nrotation = [0.0, 0.0, 0.0]\ntranslation = [0.0, 0.0, 2.0]\n\n'
                 f'[camB]\nsize = [640, 480]\nmatrix = {matrix}\ndistortions = [0.0, 0.0, 0.0, 0.0]\n'
                 f'rotation = [0.0, 0.0, 0.0]\ntranslation = [0.0, 0.0, 2.0]\n{extra}')
    return p


def test_malformed_shape_names_file_camera_field(tmp_path):
    p = _toml(tmp_path, matrix="[[600.0, 0.0], [0.0, 600.0], [0.0, 0.0]]")  # 3x2
    with pytest.raises(InputError, match=r"rig\.toml: camera 'camB' field 'matrix': expected shape 3x3, got shape \(3, 2\)"):
        load_calibration(p)


def test_malformed_syntax_names_file_and_camera(tmp_path):
    p = _toml(tmp_path, extra="fisheye = flase\n")
    with pytest.raises(InputError, match=r"rig\.toml: camera 'camB': not valid TOML"):
        load_calibration(p)
    q = tmp_path / "bad.qca.txt"
    q.write_text('<?xml version="1.0"?>\n<calibration>\n<cameras>\n<camera serial="cam07" active="1">\n'
                 '<transform x="1" y="2"\n</camera></cameras></calibration>\n')
    with pytest.raises(InputError, match=r"bad\.qca\.txt: camera 'cam07': not valid XML"):
        load_calibration(q)


def test_malformed_missing_field_and_rotation(tmp_path):
    (tmp_path / "bad.toml").write_text("[cam]\nmatrix = [[1,0,0],[0,1,0],[0,0,1]]\n")
    with pytest.raises(InputError, match=r"bad\.toml: camera 'cam' field 'size': missing"):
        load_calibration(tmp_path / "bad.toml")
    _write_easymocap(tmp_path, rot=np.diag([1.0, 1.0, 2.0]))
    with pytest.raises(InputError, match=r"extri\.yml: camera '02' field 'Rot_02': not a rotation matrix"):
        load_calibration(tmp_path / "extri.yml")


def test_missing_camera_names_file_and_camera(tmp_path):
    p = _toml(tmp_path)
    entries = {"good": CameraEntry("good", "a.mp4"), "camC": CameraEntry("camC", "c.mp4")}
    with pytest.raises(InputError, match=r"rig\.toml: camera 'camC': has no entry in calibration file"):
        session_cameras(p, entries, None)
    cams = {"int_cam01_img": _cam(), "int_cam010_img": _cam()}
    with pytest.raises(InputError, match="several"):
        find_camera(cams, "cam01")


def test_size_mismatch_names_file_and_camera(tmp_path):
    """A calibration at another resolution used to drop the camera silently (synthetic default: 20 -> 31 global ids)."""
    p = _toml(tmp_path)
    entries = {"good": CameraEntry("good", "a.mp4"), "camB": CameraEntry("camB", "b.mp4")}
    out = session_cameras(p, entries, {"good": (640, 480), "camB": (640, 480)})
    assert set(out) == {"good", "camB"}
    with pytest.raises(InputError, match=r"rig\.toml: camera 'camB' field 'size': calibrated at 640x480 px but the "
                                         r"video b\.mp4 decodes at 1280x960 px"):
        session_cameras(p, entries, {"good": (640, 480), "camB": (1280, 960)})
    # the documented scaling rule, opt-in: same aspect ratio -> K scaled, projections scale with the image
    big = session_cameras(p, entries, {"good": (640, 480), "camB": (1280, 960)}, rescale=True)["camB"]
    X = np.array([[0.1, -0.2, 0.5]])
    np.testing.assert_allclose(big.project(X) + 0.5, 2 * (out["camB"].project(X) + 0.5))
    with pytest.raises(InputError, match="camB"):  # another aspect ratio is never rescaled
        check_camera_size(out["camB"], (1280, 720), p, "camB", rescale=True)


def test_unknown_size_takes_the_video_size():
    cam = _cam(size=(0, 0))
    assert check_camera_size(cam, (800, 600), "f.yml", "a").size == (800, 600)


def _tiny_video(path, w=64, h=48, n=3):
    from mctrack.video import VideoWriter

    with VideoWriter(path, 10.0, w, h) as vw:
        for _ in range(n):
            vw.write(np.zeros((h, w, 3), np.uint8))
    return str(path)


def test_plan_and_jobs_refuse_a_calibration_at_another_resolution(tmp_path):
    """The measured bug: a calibration made at another resolution silently dropped a camera out of association."""
    from mctrack.config import SessionPlan, load_session_cameras, plan_sessions

    video = _tiny_video(tmp_path / "v.mp4")
    write_anipose_toml([_cam("c1", size=(64, 48)), _cam("c2", size=(128, 96))], tmp_path / "cal.toml")
    plan = SessionPlan("s", {c: CameraEntry(c, video, str(tmp_path / "cal.toml")) for c in ("c1", "c2")}, 3, 10.0)
    with pytest.raises(InputError, match=r"cal\.toml: camera 'c2' field 'size': calibrated at 128x96 px"):
        load_session_cameras(plan)  # the associate / triangulate jobs (synthetic sessions are planned before simulate)
    sheet = tmp_path / "cams.tsv"
    sheet.write_text("session\tcamera\tvideo\tcalibration\n" + "".join(
        f"s\t{c}\t{video}\t{tmp_path / 'cal.toml'}\n" for c in ("c1", "c2")))
    with pytest.raises(InputError, match=r"cal\.toml: camera 'c2' field 'size'"):
        plan_sessions({"cameras": str(sheet), "chunk_frames": 10})  # and planning, before any job
    assert set(load_session_cameras(plan, {"calibrate": {"rescale": True}})) == {"c1", "c2"}
    from dataclasses import replace

    planned = replace(plan, calibration_settings={"rescale": True})  # plan_sessions copies config calibrate.rescale
    assert load_session_cameras(planned)["c2"].size == (64, 48)


def test_board_session_planning(tmp_path):
    from mctrack.config import plan_sessions

    video = _tiny_video(tmp_path / "v.mp4")
    (tmp_path / "b1").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "b1" / "img0.png"), np.zeros((48, 64), np.uint8))
    sheet = tmp_path / "cams.tsv"
    cfg = {"cameras": str(sheet), "chunk_frames": 10,
           "calibrate": {"board": {"type": "checkerboard", "squares": [6, 5], "square_length": 20.0}}}
    sheet.write_text(f"session\tcamera\tvideo\tboard\ns\tc1\t{video}\t{tmp_path / 'b1'}\ns\tc2\t{video}\t{tmp_path}/none/*.png\n")
    with pytest.raises(InputError, match="no board images or video found"):
        plan_sessions(cfg)
    sheet.write_text(f"session\tcamera\tvideo\tboard\ns\tc1\t{video}\t{tmp_path / 'b1'}\ns\tc2\t{video}\t\n")
    with pytest.raises(InputError, match=r"camera 'c2' column 'board': empty"):
        plan_sessions(cfg)
    sheet.write_text(f"session\tcamera\tvideo\tboard\ns\tc1\t{video}\t{tmp_path / 'b1'}\ns\tc2\t{video}\t{tmp_path}/b1/*.png\n")
    plan = plan_sessions(cfg)["s"]
    assert plan.calibrate and plan.calibrated and plan.calibration == "results/s/calibration.toml" and plan.intrinsics is None
    with pytest.raises(InputError, match="squares"):
        plan_sessions({**cfg, "calibrate": {"board": {"type": "checkerboard", "squares": [23, 15, 1]}}})
