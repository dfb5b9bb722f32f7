"""Every `.test/config_<mode>/` config (snakemake-workflows catalogue convention) plans a complete DAG."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, shared_path

MODES = sorted(p.name.removeprefix("config_") for p in (REPO / ".test").glob("config_*"))


def test_every_mode_has_a_test_config():
    assert {"synthetic", "precomputed", "ultralytics"} <= set(MODES)


@pytest.mark.parametrize("mode", MODES)
def test_test_config_dry_run(mode):
    if mode == "ultralytics":
        shared_path("models", "yolov8n_int8_openvino_model")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "2", "--configfile",
                           f".test/config_{mode}/config.yaml", "--quiet", "rules"], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = {ln.split()[0]: int(ln.split()[1]) for ln in proc.stdout.splitlines()
            if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert jobs.get("detect", 0) >= 2 and jobs.get("track_2d", 0) >= 2 and jobs.get("assemble") == 1, jobs
