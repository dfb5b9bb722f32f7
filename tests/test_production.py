"""Production behaviour of the workflow: reruns exactly as wide as a change, resume after a kill.

Runs a small synthetic scene (2 cameras, 60 frames, chunks of 30) end to end once, then
- asks ``snakemake -n`` what a config change would rerun (params rerun trigger, Snakemake 9);
- kills a second run mid-way (SIGKILL to the whole process group), resumes it as the README says
  (``--unlock``, then rerun) and compares its HDF5 with the uninterrupted run's.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.slow
CAMS = ("cam1", "cam2")


def write_config(wd: Path, **changes) -> Path:
    sheet = wd / "cameras.tsv"
    sheet.write_text("session\tcamera\tvideo\tcalibration\tgt\n" + "".join(
        f"synthetic\t{c}\tresults/synthetic/simulate/{c}.mp4\tresults/synthetic/simulate/calibration.toml"
        f"\tresults/synthetic/simulate/gt/{c}.txt\n" for c in CAMS))
    cfg = {"cameras": "cameras.tsv", "chunk_frames": 30, "simulate": {"session": "synthetic", "n_frames": 60},
           "detect": {"backend": "background", "threads": 2}, "track_2d": {"max_coast_frames": 30},
           "associate": {"max_ray_distance": 0.02}}
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    path = wd / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cmd(wd: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(wd),
            "--cores", "2", "--configfile", str(wd / "config.yaml"), *args]


def run(wd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd(wd, *args), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def planned(wd: Path) -> dict[str, int]:
    """Jobs ``snakemake -n`` would run now, per rule."""
    out = run(wd, "-n", "--quiet", "rules").stdout
    return {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines()
            if len(ln.split()) == 2 and ln.split()[1].isdigit() and ln.split()[0] != "total"}


def tracking(h5: Path) -> dict[str, np.ndarray]:
    """Every dataset of the session file (tracking arrays, per-camera assignments and boxes)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(h5) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def stray_temporaries(wd: Path) -> list[Path]:
    return [p for p in (wd / "results").rglob("*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wd = tmp_path_factory.mktemp("finished")
    write_config(wd)
    run(wd)
    return wd


def test_rerun_is_exactly_as_wide_as_the_change(finished):
    wd = finished
    assert planned(wd) == {}, "a finished run has nothing to do"
    try:
        write_config(wd, detect__threads=1)  # threads change nothing in any output
        assert planned(wd) == {}
        write_config(wd, track_2d__max_coast_frames=20)  # tracker parameter: tracking and downstream only
        jobs = planned(wd)
        assert jobs["track_2d"] == 4 and {"associate", "triangulate", "assemble", "qc", "evaluate"} <= set(jobs)
        assert not {"simulate", "background_model", "detect"} & set(jobs), jobs
        write_config(wd, associate__max_ray_distance=0.03)  # association parameter: not tracking
        jobs = planned(wd)
        assert not {"simulate", "background_model", "detect", "track_2d"} & set(jobs), jobs
        assert jobs["associate"] == 1 and jobs["assemble"] == 1
    finally:
        write_config(wd)


def test_resume_after_kill_gives_the_uninterrupted_result(finished, tmp_path):
    wd = tmp_path
    write_config(wd)
    proc = subprocess.Popen(cmd(wd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first_track = [wd / f"results/synthetic/track_2d/{c}/0000.parquet" for c in CAMS]
    deadline = time.monotonic() + 300
    while not any(p.exists() for p in first_track) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started, mid-way through tracking
    proc.wait()
    assert not (wd / "results/synthetic/synthetic.h5").exists()
    run(wd, "--unlock")
    run(wd, "--rerun-incomplete")
    assert stray_temporaries(wd) == []
    ours, ref = tracking(wd / "results/synthetic/synthetic.h5"), tracking(finished / "results/synthetic/synthetic.h5")
    assert sorted(ours) == sorted(ref) and len(ours) >= 8
    for key in ref:
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
