"""A session built only from det.txt files (no videos) runs end to end through the workflow."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO, make_tracklets

from mctrack.calibration import write_anipose_toml
from mctrack.io.mot import write_mot

pytestmark = pytest.mark.slow


def test_det_txt_only_session_end_to_end(rig_scene, tmp_path):
    """2 calibrated cameras, 120 frames, detections = noisy projections of 5 targets, no video anywhere.

    Tracking, refinement, association, triangulation, HDF5, QC and evaluation all run;
    the clean input makes near-perfect per-camera tracking and one global id per target
    the expected outcome (thresholds leave room for the 0.5 px centroid noise).
    """
    cams, positions = rig_scene
    cams = {k: cams[k] for k in ("c1", "c2")}  # two cameras keep the job count (and CI time) small
    write_anipose_toml(cams, tmp_path / "calib.toml")
    gt = make_tracklets(cams, positions, noise_px=0.0, half_box=8.0)
    det = make_tracklets(cams, positions, noise_px=0.5, half_box=8.0, seed=1)
    rows = ["session\tcamera\tdetections\tfps\tn_frames\tcalibration\tgt"]
    for name in cams:
        g = gt[gt["camera_id"] == name].assign(id=lambda d: (d["track_id"] - 1) // 10 + 1)
        write_mot(g, tmp_path / f"gt_{name}.txt", conf_column=None)
        write_mot(det[det["camera_id"] == name], tmp_path / f"det_{name}.txt", id_column="none",
                  conf_column="confidence")
        rows.append(f"detsonly\t{name}\tdet_{name}.txt\t30\t120\tcalib.toml\tgt_{name}.txt")
    (tmp_path / "cameras.tsv").write_text("\n".join(rows) + "\n")
    cfg = {"cameras": "cameras.tsv", "chunk_frames": 60, "detect": {"backend": "precomputed"},
           "evaluate": {"gt_ids_shared": True}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "2", "--configfile", str(tmp_path / "config.yaml"), "--quiet", "rules"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-6000:]
    res = tmp_path / "results/detsonly"
    assert (res / "detsonly.h5").stat().st_size > 0
    assert all((res / f"qc/{p}.png").exists() for p in ("tracklet_lengths", "top_view", "identity_timeline"))
    m = json.loads((res / "eval/metrics.json").read_text())
    for cam, cm in m["cameras"].items():
        assert cm["HOTA"] >= 0.8 and cm["IDF1"] >= 0.9 and cm["det_recall"] >= 0.95, (cam, cm)
    assert m["association"]["purity"] >= 0.95, m["association"]
    from mctrack.session import read_session

    s = read_session(res / "detsonly.h5")
    assert len(s["frame_index"]) == 120
    assert ((s["n_cameras"] >= 2).sum(axis=0) >= 60).sum() >= 5, "every target triangulated in half the frames"
    assert np.isfinite(m["summary"]["mean_HOTA"])
    # bad det.txt: clear error naming file and line, before any job ran
    (tmp_path / "det_c2.txt").write_text("frame,id,x,y,w,h,conf\n")  # a header line
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0 and "det_c2.txt" in proc.stderr and "line 1" in proc.stderr, proc.stderr[-3000:]
