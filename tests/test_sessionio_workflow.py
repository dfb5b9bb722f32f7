"""End-to-end checks of the session file, exports and `mctrack init` through Snakemake (slow; run in CI)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, shared_path

import mctrack

pytestmark = pytest.mark.slow
CAMS = ("cam1", "cam2", "cam3", "cam4")


def snakemake(workdir: Path, *args: str) -> None:
    # targets first: --configfile takes several values and would swallow them
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--cores", "2", "--quiet", "rules"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"snakemake failed ({' '.join(args)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def synthetic(workdir: Path, n_frames: int, chunk_frames: int, **extra) -> Path:
    sheet = workdir / "cameras.tsv"
    rows = ["session\tcamera\tvideo\tcalibration\tgt"] + [
        f"synthetic\t{c}\tresults/synthetic/simulate/{c}.mp4\tresults/synthetic/simulate/calibration.toml"
        f"\tresults/synthetic/simulate/gt/{c}.txt" for c in CAMS]
    sheet.write_text("\n".join(rows) + "\n")
    cfg = {"cameras": str(sheet), "chunk_frames": chunk_frames,
           "simulate": {"session": "synthetic", "n_frames": n_frames}, **extra}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _read_mot_as_tracklets(path: Path, camera: str) -> pd.DataFrame:
    """An exported MOTChallenge file read back with the project's one MOT reader, as TRACKLET2D-like rows."""
    from mctrack.io.mot import read_mot

    m = read_mot(path, kind="result")
    return m.rename(columns={"id": "track_id"}).assign(camera_id=camera, frame_status="detected")


def test_synthetic_session_file_exports_and_qc(tmp_path):
    """The synthetic default (150 frames): the MOT export, scored by the evaluation code against gt/*.txt,
    reproduces metrics.json (boxes are written to 1/1000 px, so metrics agree to 1e-3; counts exactly);
    the session file holds every stage table; QC summary exists."""
    from mctrack.evaluate import evaluate_2d, read_mot_gt
    from mctrack.tables import ASSOCIATION, TRACKLET2D, read_table, read_tables

    snakemake(tmp_path, "all", "export", "--configfile", str(synthetic(tmp_path, 150, 50)))
    res = tmp_path / "results/synthetic"
    metrics = json.loads((res / "eval/metrics.json").read_text())
    exported = pd.concat([_read_mot_as_tracklets(res / f"export/mot/{c}.txt", c) for c in CAMS])
    gt = {c: read_mot_gt(res / f"simulate/gt/{c}.txt") for c in CAMS}
    scored = evaluate_2d(exported, gt, include_coasted="all")  # the export already applied `bridged`
    for cam in CAMS:
        for k, v in scored[cam].items():
            assert v == pytest.approx(metrics["cameras"][cam][k], abs=1e-3), (cam, k, v, metrics["cameras"][cam][k])
    # everything the stages wrote is in the session file
    s = mctrack.read_session(res / "synthetic.h5")
    tr = read_tables([res / "associate/tracklets.parquet"], TRACKLET2D)  # the tracklets the association refers to
    key = ["camera_id", "frame", "track_id"]
    pd.testing.assert_frame_equal(s.tracklets.sort_values(key).reset_index(drop=True),
                                  tr.sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(s.association[list(ASSOCIATION.columns)],
                                  read_table(res / "associate/association.parquet", ASSOCIATION))
    assert set(s.rig) == set(CAMS) and s.videos["n_frames"].tolist() == [150] * 4
    assert s.tracks3d_smoothed is not None and len(s.tracks3d_smoothed) >= len(s.points3d) * 0.9
    assert s.config["chunk_frames"] == 50 and s.versions["snakemake"]
    t3 = pd.read_parquet(res / "export/synthetic_3d.parquet")
    assert len(t3) == len(s.tracks_3d()) > 300 and np.isfinite(t3[["position_std", "reprojection_error"]]).all().all()
    summary = pd.read_csv(res / "qc/summary.tsv", sep="\t").set_index("metric")["value"]
    assert 0 <= float(summary["unassociated_tracklet_fraction"]) <= 1 and float(summary["residual_px_p50"]) < 5
    assert (res / "qc/ids_over_time.png").stat().st_size > 5000


def test_session_without_detections(tmp_path):
    """Nothing detected: every stage completes; the session file is valid with zero global ids; exports are empty."""
    cfg = synthetic(tmp_path, 30, 30, detect={"backend": "background", "background": {"min_area": 10_000_000}})
    snakemake(tmp_path, "results/synthetic/synthetic.h5", "export", "--configfile", str(cfg))
    s = mctrack.read_session(tmp_path / "results/synthetic/synthetic.h5")
    assert s.n_global_ids == 0 and s.tracking["centroid_3d"].shape == (30, 0, 3) and s.detections.empty
    exp = tmp_path / "results/synthetic/export"
    assert all((exp / f"mot/{c}.txt").read_text() == "" for c in CAMS)
    assert pd.read_csv(exp / "synthetic_3d.csv").empty


def test_init_on_pose2sim_folder_runs_end_to_end(tmp_path):
    """`mctrack init` on a folder holding the Pose2Sim videos and Calib_scene.toml writes a config that
    `snakemake --configfile` runs as written (first 20 frames, to keep CI short)."""
    src = shared_path("data", "pose2sim_multiperson")
    model = shared_path("models", "yolov8n_int8_openvino_model")
    data = tmp_path / "pose2sim"
    (data / "videos").mkdir(parents=True)
    for v in sorted((src / "videos").glob("*.mp4")):
        shutil.copy(v, data / "videos" / v.name)
    shutil.copy(src / "Calib_scene.toml", data / "Calib_scene.toml")
    proj = tmp_path / "proj"
    out = subprocess.run([sys.executable, "-m", "mctrack", "init", str(data), "--out", str(proj), "--detector",
                          "ultralytics", "--model", str(model), "--class", "0", "--max-frames", "20"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "4 cameras" in out.stdout and "Calib_scene.toml" in out.stdout
    snakemake(proj, "--configfile", str(proj / "config.yaml"))
    s = mctrack.read_session(proj / "results/pose2sim/pose2sim.h5")
    assert s.camera_names == ["cam01", "cam02", "cam03", "cam04"] and s.n_frames == 20 and s.fps == 60.0
    assert len(s.rig) == 4 and len(s.detections) > 40 and s.versions["model_file"] == model.name
    assert (s.tracking["n_cameras"] >= 2).any()  # people triangulated from the init-found calibration
