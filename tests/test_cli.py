"""The `mctrack` command: init (scan, probe, mismatches), inspect, export, run (issue 9)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner

from mctrack.cli import app
from mctrack.errors import InputError
from mctrack.project import find_videos, scan_folder, workflow_root
from mctrack.video import VideoWriter

runner = CliRunner()


def _video(path, n, size=(64, 48), fps=25.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps, *size) as w:
        for i in range(n):
            w.write(np.full((size[1], size[0], 3), 10 * i % 255, np.uint8))


def _rig_toml(path, names, size=(64, 48)):
    from mctrack.calibration import Camera, write_anipose_toml

    cams = [Camera(f"int_{n}_img", np.array([[50, 0, size[0] / 2], [0, 50, size[1] / 2], [0, 0, 1.0]]), np.zeros(5),
                   np.array([0.0, 0.1 * i, 0.0]), np.array([0.0, 0.0, 2.0]), size) for i, n in enumerate(names)]
    write_anipose_toml(cams, path)


def test_init_mismatched_frame_counts_names_the_file(tmp_path):
    _video(tmp_path / "trial1" / "camA.mp4", 6)
    _video(tmp_path / "trial1" / "camB.mp4", 9)
    res = runner.invoke(app, ["init", str(tmp_path), "--out", str(tmp_path / "proj")])
    assert res.exit_code == 2, res.output
    assert "camB.mp4" in res.output and "9 frames" in res.output and "camA.mp4" in res.output
    assert not (tmp_path / "proj" / "config.yaml").exists()


def test_init_mismatched_fps_and_calibration_size(tmp_path):
    _video(tmp_path / "s" / "camA.mp4", 5)
    _video(tmp_path / "s" / "camB.mp4", 5, fps=30.0)
    with pytest.raises(InputError, match=r"camB\.mp4: fps: 30 fps"):
        scan_folder(tmp_path)
    (tmp_path / "s" / "camB.mp4").unlink()
    _video(tmp_path / "s" / "camB.mp4", 5)
    _rig_toml(tmp_path / "calib.toml", ["camA", "camB"], size=(640, 480))
    with pytest.raises(InputError, match=r"calib\.toml: \[int_camA_img\]\.size: 640x480 px, but video camA\.mp4"):
        scan_folder(tmp_path)


def test_init_sessions_calibration_and_config(tmp_path):
    data = tmp_path / "data"
    for trial in ("trial1", "trial2"):
        for cam in ("cam1", "cam2"):
            _video(data / trial / "videos" / f"{cam}.mp4", 4)
    _rig_toml(data / "calibration.toml", ["cam1", "cam2"])
    res = runner.invoke(app, ["init", str(data), "--out", str(tmp_path / "proj"), "--max-frames", "3"])
    assert res.exit_code == 0, res.output
    sheet = pd.read_csv(tmp_path / "proj" / "cameras.tsv", sep="\t")
    assert sorted(sheet["session"].unique()) == ["trial1", "trial2"]
    assert set(sheet["calibration_name"]) == {"int_cam1_img", "int_cam2_img"}
    assert all(str(data.resolve()) in v for v in sheet["video"])
    cfg = yaml.safe_load((tmp_path / "proj" / "config.yaml").read_text())
    assert cfg["max_frames"] == 3 and cfg["detect"]["backend"] == "background"
    # stage sections spelled out, so the synthetic default's values never leak into a user config
    from mctrack.project import _schema_defaults

    assert cfg["associate"] == _schema_defaults("associate") and cfg["associate"]
    assert cfg["triangulate"]["max_reprojection_error"] == 15.0
    from mctrack.config import plan_sessions

    plans = plan_sessions({**cfg, "simulate": {}})
    assert plans["trial1"].n_frames == 3 and plans["trial1"].calibrated
    # a pattern instead of folders
    flat = tmp_path / "flat"
    _video(flat / "mouseA_left.mp4", 3)
    _video(flat / "mouseA_right.mp4", 3)
    found = find_videos(flat, r"(?P<session>[^_/]+)_(?P<camera>\w+)\.mp4")
    assert {k: sorted(v) for k, v in found.items()} == {"mouseA": ["left", "right"]}
    with pytest.raises(InputError, match="named group 'camera'"):
        find_videos(flat, r"(?P<session>.+)\.mp4")


def test_inspect_and_export_commands(tmp_path, rig_scene):
    from conftest import make_tracklets

    from mctrack.associate import associate
    from mctrack.io.session import assemble_session
    from mctrack.triangulate import triangulate

    cams, pos = rig_scene
    tr = make_tracklets(cams, pos)
    assoc, _ = associate(tr, cams)
    pts, _ = triangulate(tr, assoc, cams)
    h5 = tmp_path / "s.h5"
    assemble_session(h5, pos.shape[0], list(cams), tr, assoc, pts, session="s", fps=30.0)
    res = runner.invoke(app, ["inspect", str(h5)])
    assert res.exit_code == 0, res.output
    assert "global_ids" in res.output and "residual_px_p90" in res.output and "cameras_per_target_mean" in res.output
    res = runner.invoke(app, ["export", str(h5), "--format", "csv", "--format", "mot", "--mot-ids", "global"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "export" / "s_3d.csv")) == len(pts)
    assert sorted(p.name for p in (tmp_path / "export" / "mot").iterdir()) == [f"{c}.txt" for c in sorted(cams)]
    res = runner.invoke(app, ["export", str(h5), "--format", "xls"])
    assert res.exit_code == 2 and "unknown export format 'xls'" in res.output
    res = runner.invoke(app, ["inspect", str(tmp_path / "missing.h5")])
    assert res.exit_code == 2 and "session file not found" in res.output


def test_module_entry_point_and_packaged_workflow(tmp_path):
    assert (workflow_root() / "Snakefile").is_file()
    out = subprocess.run([sys.executable, "-m", "mctrack", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and all(c in out.stdout for c in ("init", "run", "inspect", "export"))
    # `mctrack run` from an unrelated folder finds the workflow and passes arguments through (dry run)
    out = subprocess.run([sys.executable, "-m", "mctrack", "run", "-n", "--quiet", "rules"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(REPO / "Snakefile") in out.stderr and "assemble" in out.stdout
