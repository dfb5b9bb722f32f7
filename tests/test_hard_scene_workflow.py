"""End to end on the hard synthetic scene (config/synthetic_hard.yaml, issue 6): 12 fish, 600 frames, close
crossings, re-entries, a camera black for 4 s, a fish seen by two cameras only."""
import json
import shutil
from pathlib import Path

import pytest
from test_workflow import snakemake

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_hard_scene_keeps_identities(tmp_path):
    """3D IDF1 >= 0.92 at the 2 cm radius (issue 6's target). Measured 2026-11-22 on this 2-core machine:
    seed 0 (the shipped config) 0.945, HOTA 0.83, 18 3D tracks for 12 fish; without appearance 0.70. The
    threshold is the issue's, 0.025 under the measurement (x264 and CPU differences move it by < 0.01)."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "synthetic_hard_cameras.tsv", tmp_path / "config")
    shutil.copy(REPO / "config" / "synthetic_hard.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    m = json.loads((tmp_path / "results/synthetic_hard/eval/metrics.json").read_text())["tracking_3d"]
    print({k: m[k] for k in ("IDF1", "HOTA", "MOTA", "IDSW", "n_tracks_3d")})
    assert m["IDF1"] >= 0.92, m
    assert m["median_error_m"] < 0.005, m
