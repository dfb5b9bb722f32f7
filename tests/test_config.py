import shutil

import pytest
import yaml
from conftest import REPO, shared_path

from mctrack.config import check_config, load_schema, plan_sessions
from mctrack.errors import InputError

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _sheet(tmp_path, rows, header="session\tcamera\tvideo\tcalibration\tcalibration_name\tframe_offset"):
    p = tmp_path / "cams.tsv"
    p.write_text(header + "\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    return str(p)


@pytest.fixture
def pose2sim(tmp_path):
    vid = shared_path("data", "pose2sim_multiperson", "videos")
    cal = shared_path("data", "pose2sim_multiperson", "Calib_scene.toml")
    return vid, cal


def _cfg(sheet, **kw):
    cfg = {"cameras": sheet, "chunk_frames": 30, **kw}
    check_config(cfg, load_schema(SCHEMA))
    return cfg


def test_default_config_is_valid_and_plans_synthetic():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["cameras"] = str(REPO / cfg["cameras"])
    check_config(cfg, load_schema(SCHEMA))
    assert cfg["track_2d"]["n_init"] == 3 and cfg["hdf5"]["chunk_frames"] == 1024  # defaults filled
    plans = plan_sessions(cfg)
    p = plans["synthetic"]
    assert p.synthetic and p.n_frames == 300 and len(p.cameras) == 4 and p.calibrated and p.has_gt
    assert p.chunks == [(0, 100), (100, 200), (200, 300)] and p.chunk_ids() == ["0000", "0001", "0002"]


def test_tracker_threshold_follows_the_detector():
    """A null det_thresh takes the detector backend's value; a set one wins; refine never reaches the tracker."""
    from mctrack.config import TRACK_DET_THRESH, tracker_settings
    from mctrack.detect import BACKENDS
    from mctrack.track2d import TrackerConfig

    assert set(TRACK_DET_THRESH) == set(BACKENDS)  # a new backend must say how its scores gate new tracks
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["cameras"] = str(REPO / cfg["cameras"])
    check_config(cfg, load_schema(SCHEMA))
    assert cfg["track_2d"]["det_thresh"] is None  # schema default: follow the detector
    assert cfg["detect"]["backend"] == "background"
    got = tracker_settings(cfg)
    assert got["det_thresh"] == 0.0 and "refine" not in got
    assert TrackerConfig.from_dict(got).det_thresh == 0.0
    for backend, want in (("ultralytics", 0.6), ("precomputed", 0.6)):
        assert tracker_settings(dict(cfg, detect={"backend": backend}))["det_thresh"] == want
    assert tracker_settings(dict(cfg, track_2d=dict(cfg["track_2d"], det_thresh=0.3)))["det_thresh"] == 0.3
    assert TrackerConfig.from_dict({"det_thresh": None}).det_thresh == 0.6  # the library's own default


def test_unknown_config_key_is_rejected():
    with pytest.raises(InputError, match="detector: unknown key. Fix: did you mean 'detect'"):
        check_config({"cameras": "x.tsv", "detector": {}}, load_schema(SCHEMA))
    with pytest.raises(InputError, match="track_2d.n_init"):
        check_config({"cameras": "x.tsv", "track_2d": {"n_init": 0}}, load_schema(SCHEMA))


def test_pose2sim_plan(tmp_path, pose2sim):
    vid, cal = pose2sim
    rows = [["p", f"cam0{i}", str(vid / f"cam0{i}.mp4"), str(cal), "", ""] for i in range(1, 5)]
    p = plan_sessions(_cfg(_sheet(tmp_path, rows)))["p"]
    assert p.n_frames == 100 and p.fps == pytest.approx(60, abs=0.1) and p.calibrated
    assert p.chunks == [(0, 30), (30, 60), (60, 90), (90, 100)]
    rows[1][5] = "10"  # cam02 starts 10 frames later: 90 common frames, an error unless max_frames says so
    with pytest.raises(InputError, match=r"cameras cover different numbers of frames \(cam01: 100, cam02: 90.*max_frames: 90"):
        plan_sessions(_cfg(_sheet(tmp_path, rows)))
    assert plan_sessions(_cfg(_sheet(tmp_path, rows), max_frames=90))["p"].n_frames == 90
    assert plan_sessions(_cfg(_sheet(tmp_path, rows), max_frames=20))["p"].n_frames == 20


@pytest.mark.parametrize("col,value,match", [
    ("video", "nope.mp4", r"row 3 column 'video': file 'nope.mp4' not found"),
    ("calibration_name", "int_cam99_img", r"'int_cam99_img': not in calibration file"),
    ("frame_offset", "1.5", r"row 3 column 'frame_offset'"),
    ("camera", "cam 2", r"row 3 column 'camera'.*not a valid name"),
    ("camera", "cam01", r"repeats in session"),
])
def test_bad_sheet_rows_name_row_and_column(tmp_path, pose2sim, col, value, match):
    vid, cal = pose2sim
    rows = [["p", f"cam0{i}", str(vid / f"cam0{i}.mp4"), str(cal), "", ""] for i in range(1, 3)]
    idx = ["session", "camera", "video", "calibration", "calibration_name", "frame_offset"].index(col)
    rows[1][idx] = value
    with pytest.raises(InputError, match=match):
        plan_sessions(_cfg(_sheet(tmp_path, rows)))


def test_sheet_structure_errors(tmp_path, pose2sim):
    vid, cal = pose2sim
    with pytest.raises(InputError, match="column 'video': missing"):
        plan_sessions(_cfg(_sheet(tmp_path, [["p", "c"]], header="session\tcamera")))
    with pytest.raises(InputError, match="column 'colour': unknown"):
        plan_sessions(_cfg(_sheet(tmp_path, [["p", "c", "v", "x"]], header="session\tcamera\tvideo\tcolour")))
    other = tmp_path / "other.toml"
    shutil.copy(cal, other)
    rows = [["p", "cam01", str(vid / "cam01.mp4"), str(cal), "", ""],
            ["p", "cam02", str(vid / "cam02.mp4"), str(other), "", ""]]
    with pytest.raises(InputError, match="different files"):
        plan_sessions(_cfg(_sheet(tmp_path, rows)))


def test_single_uncalibrated_camera_is_planned(tmp_path, pose2sim):
    vid, _ = pose2sim
    p = plan_sessions(_cfg(_sheet(tmp_path, [["solo", "cam01", str(vid / "cam01.mp4"), "", "", ""]])))["solo"]
    assert not p.calibrated and p.calibration is None and not p.has_gt
