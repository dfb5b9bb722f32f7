"""End-to-end runs of the Snakemake workflow (marked slow; they run in CI)."""
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
from conftest import REPO, shared_path

from mctrack.session import TRACKING_FIELDS, read_session
from mctrack.tables import TRACKLET2D, read_tables

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    # targets first: --configfile and --quiet take several values and would swallow them
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--cores", "2", "--quiet", "rules"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({' '.join(args)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def synthetic_config(workdir: Path, n_frames: int, chunk_frames: int) -> Path:
    sheet = workdir / "cameras.tsv"
    rows = ["session\tcamera\tvideo\tcalibration\tgt"] + [
        f"synthetic\t{c}\tresults/synthetic/simulate/{c}.mp4\tresults/synthetic/simulate/calibration.toml"
        f"\tresults/synthetic/simulate/gt/{c}.txt" for c in ("cam1", "cam2", "cam3", "cam4")]
    sheet.write_text("\n".join(rows) + "\n")
    cfg = {"cameras": str(sheet), "chunk_frames": chunk_frames, "simulate": {"session": "synthetic", "n_frames": n_frames}}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """The embedded default, shortened to 150 frames in chunks of 50."""
    wd = tmp_path_factory.mktemp("synthetic")
    snakemake(wd, "--configfile", str(synthetic_config(wd, 150, 50)))
    return wd


def test_synthetic_outputs_and_hdf5_schema(synthetic_run):
    wd = synthetic_run
    h5 = wd / "results/synthetic/synthetic.h5"
    s = read_session(h5)
    T = len(s["frame_index"])
    K = s["global_id"].shape[1]
    assert T == 150 and s["camera_names"] == ["cam1", "cam2", "cam3", "cam4"]
    with h5py.File(h5) as f:
        for name, (tail, dtype, _) in TRACKING_FIELDS.items():
            assert f["tracking"][name].shape == (T, K) + tail and f["tracking"][name].dtype == np.dtype(dtype)
            assert f["tracking"][name].compression == "gzip"
        assert json.loads(f.attrs["config"])["chunk_frames"] == 50
    # every global id column is used at least once (no empty targets), none dropped
    assert ((s["global_id"] >= 0).any(axis=0)).all()
    for plot in ("detections_per_frame", "top_view", "identity_timeline", "reprojection_error"):
        assert (wd / f"results/synthetic/qc/{plot}.png").stat().st_size > 5000
    assert (wd / "logs/synthetic/associate.log").read_text().count("global ids") == 1


def test_synthetic_ground_truth_metrics(synthetic_run):
    """Thresholds sit below the figures measured on this deterministic 150-frame scene
    (seed 0; 2026-11: per-camera IDF1 0.56-0.72, MOTA 0.64-0.77; 3D median error 2.0 mm,
    coverage 0.78, identity consistency 0.84; association purity 0.95), leaving margin for
    x264 and CPU differences. Per-camera IDF1 is limited by touching fish merging into one
    foreground blob (background subtraction), not by association or triangulation."""
    m = json.loads((synthetic_run / "results/synthetic/eval/metrics.json").read_text())
    for cam, cm in m["cameras"].items():
        assert cm["IDF1"] >= 0.50, (cam, cm)
        assert cm["MOTA"] >= 0.55, (cam, cm)
    t3 = m["tracking_3d"]
    assert t3["median_error_m"] <= 0.005, t3  # fish are 8 cm long; 1 px ~ 5 mm at 2 m
    assert t3["coverage"] >= 0.65, t3
    assert t3["id_consistency"] >= 0.75, t3
    assert m["association"]["purity"] >= 0.90, m["association"]


def test_chunked_equals_unchunked(synthetic_run, tmp_path):
    """Chunks of 50 frames (chained tracker state) give the same tracklets as one 150-frame chunk."""
    import shutil

    shutil.copytree(synthetic_run / "results/synthetic/simulate", tmp_path / "results/synthetic/simulate")
    cfg = synthetic_config(tmp_path, 150, 150)
    targets = [f"results/synthetic/track_2d/{c}/0000.parquet" for c in ("cam1", "cam2", "cam3", "cam4")]
    snakemake(tmp_path, *targets, "--configfile", str(cfg))
    for cam in ("cam1", "cam2", "cam3", "cam4"):
        chunk_files = (synthetic_run / f"results/synthetic/track_2d/{cam}").glob("[0-9][0-9][0-9][0-9].parquet")
        chunked = read_tables(sorted(chunk_files), TRACKLET2D)
        whole = read_tables([tmp_path / f"results/synthetic/track_2d/{cam}/0000.parquet"], TRACKLET2D)
        key = ["frame", "track_id"]
        pd.testing.assert_frame_equal(chunked.sort_values(key).reset_index(drop=True),
                                      whole.sort_values(key).reset_index(drop=True))
        assert len(whole) > 300


def test_report_builds(synthetic_run):
    snakemake(synthetic_run, "--configfile", str(synthetic_run / "config.yaml"), "--report", "report.html")
    html = (synthetic_run / "report.html").read_text(errors="ignore")
    assert "top_view" in html and len(html) > 100_000


def test_lint_and_dry_run_of_default():
    # lint: see tests/test_style.py (the rules deliberately have no conda directives)
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules"], cwd=REPO, capture_output=True,
                         text=True)
    assert dry.returncode == 0, dry.stderr
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in dry.stdout.splitlines()
              if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert counts["detect"] == 12 and counts["track_2d"] == 12  # 4 cameras x 3 chunks
    assert counts["background_model"] == 4  # primed once per camera, not per chunk
    assert counts["associate"] == counts["triangulate"] == counts["assemble"] == 1


def shipped_config_run(wd: Path, name: str) -> Path:
    """Run the shipped ``config/{name}.yaml`` in ``wd``, its ``../shared`` paths made absolute."""
    shared_path("models", "yolov8n_int8_openvino_model")
    sheet = pd.read_csv(REPO / f"config/{name}_cameras.tsv", sep="\t", dtype=str, keep_default_na=False)
    for col in ("video", "calibration", "gt"):
        if col in sheet:
            sheet[col] = [str(shared_path(*Path(v).parts[2:])) if v.startswith("../shared/") else v
                          for v in sheet[col]]
    sheet.to_csv(wd / "cameras.tsv", sep="\t", index=False)
    cfg = yaml.safe_load((REPO / f"config/{name}.yaml").read_text())
    cfg["cameras"] = str(wd / "cameras.tsv")
    cfg["detect"]["ultralytics"]["model"] = str(shared_path("models", "yolov8n_int8_openvino_model"))
    if (cfg.get("track_2d") or {}).get("reid"):  # the ReID model lives in ../shared/models too
        cfg["track_2d"]["reid"] = str(shared_path("models", Path(cfg["track_2d"]["reid"]).name))
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(wd, "--configfile", str(wd / "config.yaml"))
    return wd


@pytest.fixture(scope="module")
def pose2sim_run(tmp_path_factory):
    """The shipped Pose2Sim config on the real 4-camera footage."""
    return shipped_config_run(tmp_path_factory.mktemp("pose2sim"), "pose2sim")


def test_single_camera_session_skips_association(tmp_path):
    """TUD-Campus: one uncalibrated camera with ground truth (real detector, real footage)."""
    wd = shipped_config_run(tmp_path, "tud_campus")
    # no 3D possible: no associate/triangulate/smooth job (tests/test_workflow_single_view.py: same results)
    assert not any((wd / "logs/tud_campus" / f"{r}.log").exists() for r in ("associate", "triangulate", "smooth"))
    s = read_session(wd / "results/tud_campus/tud_campus.h5")
    assert len(s["frame_index"]) == 71 and (s["n_cameras"] == 0).all() and np.isnan(s["centroid_3d"]).all()
    assert s["is_confirmed"].sum() > 300  # person boxes over 71 frames
    m = json.loads((wd / "results/tud_campus/eval/metrics.json").read_text())["cameras"]["cam"]
    print({k: m[k] for k in ("HOTA", "IDF1", "MOTA", "IDSW")})
    # YOLOv8n INT8 (conf 0.1) + BoT-SORT + ReID + tracklet refinement on TUD-Campus (crowded, occluded;
    # gt.txt omits some people YOLO finds, which count as FP): measured 2026-11 HOTA 0.596, IDF1 0.811,
    # MOTA 0.682, 0 ID switches (issue 5 target: HOTA >= 0.57, IDF1 >= 0.79; the best bare boxmot
    # tracker on the same detections: HOTA 0.525 / IDF1 0.770, benchmarks/bench_tracking_accuracy.py)
    assert m["IDF1"] >= 0.79 and m["MOTA"] >= 0.60 and m["HOTA"] >= 0.57, m
    assert (wd / "results/tud_campus/qc/tracklet_lengths.png").exists()


def test_pose2sim_end_to_end(pose2sim_run):
    from mctrack.evaluate import main_subject_consistency

    s = read_session(pose2sim_run / "results/pose2sim/pose2sim.h5")
    assert len(s["frame_index"]) == 100 and s["camera_names"] == ["cam01", "cam02", "cam03", "cam04"]
    tri = s["n_cameras"] >= 2
    assert tri.any()
    assert np.nanmedian(s["reprojection_residual"][tri]) < 25.0  # px in 1088x1920 views; box centres, not joints
    rep = main_subject_consistency(s, n_subjects=2)
    print(json.dumps(rep, indent=1))
    for subj in rep["subjects"]:
        assert subj["frames_triangulated"] >= 80, subj  # of 100 frames
        assert subj["frames_with_3plus_cameras"] >= 60, subj
