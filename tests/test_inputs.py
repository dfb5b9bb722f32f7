"""Every bad input is caught before the first job, with a message naming the culprit (issue 11).

Small videos are written into ``tmp_path`` with PyAV (H.264) and OpenCV (MJPEG/AVI), then damaged.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO

from mctrack.config import check_config, check_model_file, load_schema, plan_sessions
from mctrack.errors import InputError
from mctrack.video import probe_video, read_frames

SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _frame(i: int, w: int = 96, h: int = 64) -> np.ndarray:
    img = np.full((h, w, 3), (i * 5) % 256, np.uint8)
    cv2.putText(img, str(i), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    return img


def h264(path: Path, n: int, fps: float = 25.0, faststart: bool = True, gop: int = 12) -> Path:
    """An ``n``-frame 96x64 H.264 mp4 (moov atom first with ``faststart``, so truncation keeps the header)."""
    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=opts) as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.options = {"g": str(gop), "bf": "2"}
        for i in range(n):
            c.mux(s.encode(av.VideoFrame.from_ndarray(_frame(i), format="bgr24")))
        c.mux(s.encode())
    return path


def mjpeg(path: Path, n: int, fps: float = 25.0) -> Path:
    """An ``n``-frame 96x64 MJPEG AVI (OpenCV writer)."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (96, 64))
    for i in range(n):
        vw.write(_frame(i))
    vw.release()
    return path


def truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def sheet(tmp_path: Path, rows: list[dict], name: str = "cams.tsv") -> Path:
    cols = ["session", "camera", "video", "gt", "frame_offset"]
    p = tmp_path / name
    p.write_text("\t".join(cols) + "\n" + "".join("\t".join(str(r.get(c, "")) for c in cols) + "\n" for r in rows))
    return p


def plan(tmp_path: Path, rows: list[dict], **cfg):
    config = {"cameras": str(sheet(tmp_path, rows)), **cfg}
    check_config(config, SCHEMA)
    return plan_sessions(config, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- videos


def test_good_videos_plan_and_probe_is_cached(tmp_path):
    a, b = h264(tmp_path / "a.mp4", 40), mjpeg(tmp_path / "b.avi", 40)
    p = plan(tmp_path, [{"session": "s", "camera": "a", "video": a}, {"session": "s", "camera": "b", "video": b}])
    assert p["s"].n_frames == 40 and p["s"].fps == pytest.approx(25.0)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
    cached = probe_video(a, tmp_path / "cache")
    assert cached.decodable == cached.n_frames == 40 and cached.codec == "h264"


@pytest.mark.parametrize("make,match", [
    (lambda d: d / "missing.mp4", r"row 2 column 'video': file '.*missing.mp4' not found"),
    (lambda d: _write(d / "empty.mp4", b""), r"empty.mp4\): video is empty \(0 bytes\)"),
    (lambda d: _write(d / "notes.mp4", b"not a video"), r"notes.mp4\): not a readable video"),
    (lambda d: (d / "folder.mp4").mkdir() or d / "folder.mp4", r"folder.mp4\): not a readable video"),
    (lambda d: truncate(h264(d / "ok.mp4", 60, faststart=False), d / "nomoov.mp4"), r"nomoov.mp4\): not a readable"),
])
def test_unusable_video_is_named(tmp_path, make, match):
    with pytest.raises(InputError, match=match):
        plan(tmp_path, [{"session": "s", "camera": "c", "video": make(tmp_path)}])


@pytest.mark.parametrize("fmt", ["h264", "mjpeg"])
def test_truncated_video_header_vs_decodable(tmp_path, fmt):
    src = h264(tmp_path / "full.mp4", 200) if fmt == "h264" else mjpeg(tmp_path / "full.avi", 200)
    bad = truncate(src, tmp_path / f"cut{src.suffix}")
    pr = probe_video(bad)
    assert pr.n_frames == 200 and 60 < pr.decodable < 200
    with pytest.raises(InputError, match=rf"cut{src.suffix}: truncated or damaged: the header promises 200 frames "
                                         rf"but only about {pr.decodable} decode.*max_frames: {pr.decodable}"):
        plan(tmp_path, [{"session": "s", "camera": "c", "video": bad}])
    # the documented way out: process only the frames that decode
    assert plan(tmp_path, [{"session": "s", "camera": "c", "video": bad}], max_frames=50)["s"].n_frames == 50


@pytest.mark.parametrize("fmt", ["h264", "mjpeg"])
def test_truncated_video_that_slips_through_fails_with_the_frame_number(tmp_path, fmt):
    src = h264(tmp_path / "full.mp4", 200) if fmt == "h264" else mjpeg(tmp_path / "full.avi", 200)
    bad = truncate(src, tmp_path / f"cut{src.suffix}")
    with pytest.raises(InputError, match=rf"cut{src.suffix}: video frame (\d+): (decoding stopped at frame \1 but "
                                         r"the header promises 200 frames|decoding failed)"):
        for _ in read_frames(bad, 0, 200):
            pass


def test_corrupt_middle_fails_the_detection_job_with_the_frame_number(tmp_path):
    from mctrack.detect import run_detect

    src = h264(tmp_path / "full.mp4", 120, gop=200)
    data = bytearray(src.read_bytes())
    data[len(data) // 3: len(data) // 3 + 3000] = b"\x55" * 3000  # garbage inside the frame data
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    assert probe_video(bad).decodable == 120  # headers and packets intact: only decoding can tell
    with pytest.raises(InputError, match=r"corrupt.mp4: video frame \d+: (decoding failed|frame \d+ does not decode)"):
        run_detect({"backend": "background", "n_prime": 5}, bad, 0, 120, "c", 0, tmp_path / "d.parquet")
    assert not (tmp_path / "d.parquet").exists()


def test_frame_count_mismatch_within_a_session(tmp_path):
    rows = [{"session": "s", "camera": "a", "video": h264(tmp_path / "a.mp4", 50)},
            {"session": "s", "camera": "b", "video": h264(tmp_path / "b.mp4", 40)}]
    with pytest.raises(InputError, match=r"cams.tsv: session 's': cameras cover different numbers of frames "
                                         r"\(a: 50, b: 40.*frame_offset column.*max_frames: 40"):
        plan(tmp_path, rows)
    assert plan(tmp_path, rows, max_frames=40)["s"].n_frames == 40  # policy: the user names the common span
    rows[0]["frame_offset"] = 10  # a starts 10 frames earlier: both cover 40 session frames
    assert plan(tmp_path, rows)["s"].n_frames == 40


def test_fps_mismatch_within_a_session(tmp_path):
    rows = [{"session": "s", "camera": "a", "video": h264(tmp_path / "a.mp4", 30, fps=25)},
            {"session": "s", "camera": "b", "video": h264(tmp_path / "b.mp4", 30, fps=30)}]
    with pytest.raises(InputError, match=r"session 's': cameras have different frame rates \(a: 25 fps, b: 30 fps\)"):
        plan(tmp_path, rows)


# ----------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("text,match", [
    ("1,1,10,10,20,20,1,1,1\n2,1,10,10,20,x,1,1,1\n", r"gt.txt: line 2"),
    ("1,1,10,10,20,20,1,1,1\n99,1,10,10,20,20,1,1,1\n", r"gt.txt: frame 99: is beyond the end of video .*a.mp4 \(30"),
])
def test_bad_ground_truth_is_caught_at_planning(tmp_path, text, match):
    gt = tmp_path / "gt.txt"
    gt.write_text(text)
    with pytest.raises(InputError, match=match):
        plan(tmp_path, [{"session": "s", "camera": "a", "video": h264(tmp_path / "a.mp4", 30), "gt": gt}])


# ----------------------------------------------------------------------------- sheet and config


def test_sheet_errors_name_row_and_column(tmp_path):
    v = h264(tmp_path / "a.mp4", 10)
    with pytest.raises(InputError, match=r"cams.tsv: row 3 column 'video': is empty"):
        plan(tmp_path, [{"session": "s", "camera": "a", "video": v}, {"session": "s", "camera": "b", "video": ""}])
    with pytest.raises(InputError, match=r"cams.tsv: column 'session': has no session 'sim' \(config simulate.session\)"):
        plan(tmp_path, [{"session": "s", "camera": "a", "video": v}], simulate={"session": "sim"})


def test_session_named_synthetic_is_not_simulated(tmp_path):
    v = h264(tmp_path / "a.mp4", 30)
    p = plan(tmp_path, [{"session": "synthetic", "camera": "a", "video": v}])["synthetic"]
    assert not p.synthetic and p.n_frames == 30


@pytest.mark.parametrize("cfg,match", [
    ({"detector": {}}, r"user.yaml: detector: unknown key. Fix: did you mean 'detect'\?"),
    ({"track_2d": {"n_inti": 3}}, r"user.yaml: track_2d.n_inti: unknown key. Fix: did you mean 'n_init'\?"),
    ({"chunk_frames": 0}, r"user.yaml: chunk_frames: 0 is not valid.*Fix: give integer >= 1"),
    ({"simulate": {"seed": 1}}, r"user.yaml: simulate.session: required key is missing"),
    ({"associate": {"max_ray_distance": "far"}}, r"user.yaml: associate.max_ray_distance: 'far' is not valid"),
])
def test_config_errors_name_file_key_and_fix(cfg, match):
    with pytest.raises(InputError, match=match) as exc:
        check_config({"cameras": "c.tsv", **cfg}, SCHEMA, [("user.yaml", {"cameras": "c.tsv", **cfg})])
    assert len(str(exc.value).splitlines()) <= 3


def test_user_config_starts_from_schema_defaults_not_the_synthetic_config():
    cfg = check_config({"cameras": "c.tsv"}, SCHEMA)
    synthetic = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert cfg["chunk_frames"] == 1000 != synthetic["chunk_frames"]
    assert cfg["associate"]["distance_scale"] is None  # derived from calibration and box sizes, whatever the scale
    assert cfg["triangulate"]["max_reprojection_error"] == 15.0 != synthetic["triangulate"]["max_reprojection_error"]
    assert "simulate" not in cfg


def snakemake_n(wd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(wd), "--cores", "2", *args, "--quiet", "rules"],
                          capture_output=True, text=True)


def test_snakefile_reports_config_errors_briefly_and_user_configs_do_not_inherit(tmp_path):
    (tmp_path / "user.yaml").write_text("cameras: cams.tsv\ndetecotr: {}\n")
    proc = snakemake_n(tmp_path, "--configfile", str(tmp_path / "user.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "user.yaml: detecotr: unknown key. Fix: did you mean 'detect'?" in out, out
    assert len(out.splitlines()) < 12, out  # no schema dump
    # a user session called 'synthetic', 120 frames: schema default chunk_frames (1000) -> 1 chunk, no simulate
    h264(tmp_path / "v.mp4", 120)
    sheet(tmp_path, [{"session": "synthetic", "camera": "c", "video": "v.mp4"}])
    (tmp_path / "user.yaml").write_text("cameras: cams.tsv\n")
    proc = snakemake_n(tmp_path, "--configfile", str(tmp_path / "user.yaml"))
    assert proc.returncode == 0, proc.stderr
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in proc.stdout.splitlines()
              if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert counts["detect"] == 1 and counts["track_2d"] == 1 and "simulate" not in counts, proc.stdout


# ----------------------------------------------------------------------------- models


def test_openvino_folder_without_xml(tmp_path):
    (tmp_path / "m_openvino_model").mkdir()
    (tmp_path / "m_openvino_model" / "metadata.yaml").write_text("task: detect\n")
    with pytest.raises(InputError, match=r"m_openvino_model: detect.ultralytics.model: OpenVINO model folder has no "
                                         r"\.xml file"):
        check_model_file(tmp_path / "m_openvino_model")


def test_openvino_model_of_the_wrong_task(tmp_path):
    d = tmp_path / "cls_openvino_model"
    d.mkdir()
    (d / "m.xml").write_text("<net/>")
    (d / "m.bin").write_bytes(b"0")
    (d / "metadata.yaml").write_text("task: classify\n")
    with pytest.raises(InputError, match=r"metadata.yaml: detect.ultralytics.model \(task\): is a 'classify' model"):
        check_model_file(d)


def test_pt_file_that_is_not_a_model(tmp_path):
    junk = tmp_path / "weights.pt"
    junk.write_text("definitely not a model")
    with pytest.raises(InputError, match=r"weights.pt: detect.ultralytics.model: is not a PyTorch model archive"):
        check_model_file(junk)
    sd = tmp_path / "state_dict.pt"  # a torch zip archive whose pickle is a plain state dict
    with zipfile.ZipFile(sd, "w") as z:
        z.writestr("state_dict/data.pkl", b"\x80\x02}q\x00X\x06\x00\x00\x00weightq\x01s.")
    with pytest.raises(InputError, match=r"state_dict.pt: detect.ultralytics.model: is a PyTorch file but not an "
                                         r"ultralytics model"):
        check_model_file(sd)
    cls = tmp_path / "cls.pt"
    with zipfile.ZipFile(cls, "w") as z:
        z.writestr("cls/data.pkl", b"cultralytics.nn.tasks\nClassificationModel\n")
    with pytest.raises(InputError, match=r"cls.pt: .*is an ultralytics ClassificationModel, not a detector"):
        check_model_file(cls)


def test_onnx_without_onnxruntime(tmp_path, monkeypatch):
    m = tmp_path / "m.onnx"
    m.write_bytes(b"\x08\x07\x12\x07pytorch")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    with pytest.raises(InputError, match=r"m.onnx: detect.ultralytics.model: ONNX models need the 'onnxruntime' "
                                         r"package.*pip install 'mctrack\[onnx\]'"):
        check_model_file(m)


def test_model_errors_come_from_the_config_check(tmp_path):
    from mctrack.config import check_stage_configs

    (tmp_path / "x_openvino_model").mkdir()
    cfg = {"detect": {"backend": "ultralytics", "ultralytics": {"model": str(tmp_path / "x_openvino_model")}}}
    with pytest.raises(InputError, match="no .xml file"):
        check_stage_configs(cfg)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_video_is_named(tmp_path):
    v = h264(tmp_path / "locked.mp4", 10)
    v.chmod(0)
    try:
        with pytest.raises(InputError, match=r"locked.mp4\): video is not readable \(permission denied\)"):
            plan(tmp_path, [{"session": "s", "camera": "c", "video": v}])
    finally:
        v.chmod(0o644)
