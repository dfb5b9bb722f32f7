"""End-to-end ground-plane mode on the synthetic floor scene (issue 8; marked slow, runs in CI)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from mctrack.calibration import load_calibration

pytestmark = pytest.mark.slow


def _snakemake(workdir: Path, config: Path) -> None:
    cmd = [sys.executable, "-m", "snakemake", "--configfile", str(config), "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--cores", "2", "--quiet", "rules"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


@pytest.fixture(scope="module")
def floor_run(tmp_path_factory):
    """The shipped config/synthetic_ground.yaml, shortened to 200 frames."""
    wd = tmp_path_factory.mktemp("floor")
    (wd / "cameras.tsv").write_text((REPO / "config/synthetic_ground_cameras.tsv").read_text())
    cfg = yaml.safe_load((REPO / "config/synthetic_ground.yaml").read_text())
    cfg["cameras"] = str(wd / "cameras.tsv")
    cfg["simulate"]["n_frames"] = 200
    cfg["chunk_frames"] = 100
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    _snakemake(wd, wd / "config.yaml")
    return wd


def test_floor_scene_ground_positions_identities_and_handoffs(floor_run):
    res = floor_run / "results/synthetic_ground"
    m = json.loads((res / "eval/metrics.json").read_text())
    print({k: m["handoffs"][k] for k in ("recall", "precision", "ground_median_error_cm", "n_gt", "n_pred",
                                         "observation_only_recall", "observation_only_precision")},
          "IDF1", m["tracking_3d"]["IDF1"])
    pts = pd.read_parquet(res / "triangulate/points3d.parquet")
    assert len(pts) > 0 and (pts["z"] == 0).all()
    # measured 2026-11 (200 frames, 8 walkers with one colour in every camera, background detector + OC-SORT,
    # ground.method kalman with appearance, merged-box handoff counting, min_ground_width 0.3): ground error
    # 14 cm (median, to the nearest foot point), IDF1 on ground positions 0.76 (0.5 m radius), handoff recall
    # 0.50 / precision 0.32 (12 GT events); before those two changes 18 cm, 0.62, 0.50 / 0.24; on the earlier
    # footage (colours differing per camera, no appearance) 20 cm, 0.63, 0.50 / 0.26, and grouping whole
    # tracklets (method tracklets) gave IDF1 0.48, recall 0.33 / precision 0.20. The limits are regression guards with margin for the H.264 encoder and
    # thread-count differences; detection (merged blobs of crossing walkers, ghosts) is what caps them
    # (benchmarks/ground_accuracy.py: 0.84 IDF1 on GT boxes). Handoffs as view entries (ground.handoff_min_outside
    # 5, handoff_min_visible 0.25, predicted and GT events alike): recall 0.86 / precision 0.75 (6 of 7 GT
    # events, 8 predicted); the guards allow two events lost.
    assert m["handoffs"]["ground_median_error_cm"] < 35
    assert m["tracking_3d"]["IDF1"] > 0.45
    assert m["handoffs"]["recall"] >= 0.55 and m["handoffs"]["precision"] >= 0.5
    assert "ground Kalman tracking" in (floor_run / "logs/synthetic_ground/associate.log").read_text()
    with h5py.File(res / "synthetic_ground.h5") as f:
        assert "handoffs" in f
    assert (res / "qc/handoffs.png").stat().st_size > 10_000
    assert "ground homography from the calibration" in (floor_run / "logs/synthetic_ground/associate.log").read_text()


def test_single_camera_with_a_homography_csv_gives_ground_trajectories(floor_run, tmp_path):
    """cam1 of the floor scene alone, uncalibrated, with a point-pair CSV: trajectories in metres on z = 0."""
    sim = floor_run / "results/synthetic_ground/simulate"
    cam = load_calibration(sim / "calibration.toml")["cam1"]
    xy = np.array([[x, y] for x in (-6.0, -4.5, -3.0, -1.5) for y in (-2.0, 0.0, 2.0)])
    uv = cam.project(np.c_[xy, np.zeros(len(xy))])
    ok = (uv >= 0).all(axis=1) & (uv[:, 0] < cam.size[0]) & (uv[:, 1] < cam.size[1])
    pd.DataFrame({"u": uv[ok, 0], "v": uv[ok, 1], "x": xy[ok, 0], "y": xy[ok, 1]}).to_csv(tmp_path / "h.csv",
                                                                                        index=False)
    (tmp_path / "cameras.tsv").write_text("session\tcamera\tvideo\thomography\tgt\n"
                                          f"floor1\tcam1\t{sim / 'cam1.mp4'}\t{tmp_path / 'h.csv'}\t{sim / 'gt/cam1.txt'}\n")
    cfg = yaml.safe_load((REPO / "config/synthetic_ground.yaml").read_text())
    cfg.pop("simulate")
    cfg["cameras"] = str(tmp_path / "cameras.tsv")
    cfg["ground"]["enabled"] = "auto"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    _snakemake(tmp_path, tmp_path / "config.yaml")
    log = (tmp_path / "logs/floor1/associate.log").read_text()
    assert "RMS ground error 0.00" in log
    pts = pd.read_parquet(tmp_path / "results/floor1/triangulate/points3d.parquet")
    assert len(pts) > 100 and (pts["z"] == 0).all()
    gt = pd.read_csv(sim / "gt3d.csv")
    pairs = pts.merge(gt, on="frame", suffixes=("", "_gt"))
    pairs["d"] = np.hypot(pairs["x"] - pairs["x_gt"], pairs["y"] - pairs["y_gt"])
    nearest = pairs.groupby(["frame", "global_id"])["d"].min()
    print("single camera: median distance to the nearest foot point", nearest.median())
    assert nearest.median() < 0.3  # m; positions land on the walkers' feet, in metres
