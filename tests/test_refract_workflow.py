"""The refractive synthetic tank through the workflow (issue 8): configs plan, a short run reprojects through water."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO

from mctrack.calibration import RefractiveCamera, load_calibration


@pytest.mark.parametrize("name", ["synthetic_refract", "synthetic_refract_off", "synthetic_topfront"])
def test_refract_configs_plan(name):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "2", "--configfile",
                           f"config/{name}.yaml", "--quiet", "rules"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "simulate" in proc.stdout and "evaluate" in proc.stdout
    cfg = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    assert cfg["simulate"]["refraction"] is True and cfg["calibrate"]["refraction"] is (name != "synthetic_refract_off")


@pytest.mark.slow
def test_refractive_tank_end_to_end(tmp_path):
    """90 frames of the refractive tank: the calibration carries the surface, the HDF5 keeps it, and the
    3D error stays at the default scene's level (its median is ~2 mm; a pinhole model is off by cm)."""
    from test_workflow import snakemake

    s = "synthetic_refract"
    sheet = tmp_path / "cameras.tsv"
    sheet.write_text("session\tcamera\tvideo\tcalibration\tgt\n" + "".join(
        f"{s}\t{c}\tresults/{s}/simulate/{c}.mp4\tresults/{s}/simulate/calibration.toml\tresults/{s}/simulate/gt/{c}.txt\n"
        for c in ("cam1", "cam2", "cam3", "cam4")))
    cfg = yaml.safe_load((REPO / "config" / "synthetic_refract.yaml").read_text())
    cfg.update(cameras=str(sheet), chunk_frames=45)
    cfg["simulate"]["n_frames"] = 90
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    rig = load_calibration(tmp_path / f"results/{s}/simulate/calibration.toml")
    assert all(isinstance(c, RefractiveCamera) for c in rig.values())
    import mctrack

    h5 = mctrack.read_session(tmp_path / f"results/{s}/{s}.h5")
    assert h5.rig_attrs["interface"]["n2"] == 1.333 and isinstance(h5.rig["cam1"], RefractiveCamera)
    m = json.loads((tmp_path / f"results/{s}/eval/metrics.json").read_text())["tracking_3d"]
    assert m["median_error_m"] < 0.005 and m["coverage"] > 0.5, m
    assert np.isfinite(m["std_ratio_x"])


@pytest.mark.slow
def test_top_front_two_view_tank_end_to_end(tmp_path):
    """90 frames of config/synthetic_topfront.yaml: two views, each refracted at its own face of the tank.

    The calibration gives each camera its interface back, the points are as accurate as the default
    scene's (median ~1.5 mm over 300 frames; ignoring either interface would put them cm off), and the
    two views hold the 6 fish apart: 3D IDF1 0.97 over the full 300 frames (seeds 0-3 of the rig: 0.925-0.979,
    README "associate"); this 90-frame clip measures 0.94 (median error 1.8 mm, coverage 0.91, 6 tracks),
    and 0.85 leaves room for other machines' H.264 decoding.
    """
    from test_workflow import snakemake

    s = "synthetic_topfront"
    sheet = tmp_path / "cameras.tsv"
    sheet.write_text("session\tcamera\tvideo\tcalibration\tgt\n" + "".join(
        f"{s}\t{c}\tresults/{s}/simulate/{c}.mp4\tresults/{s}/simulate/calibration.toml\tresults/{s}/simulate/gt/{c}.txt\n"
        for c in ("top", "front")))
    cfg = yaml.safe_load((REPO / "config" / "synthetic_topfront.yaml").read_text())
    cfg.update(cameras=str(sheet), chunk_frames=45)
    cfg["simulate"]["n_frames"] = 90
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    rig = load_calibration(tmp_path / f"results/{s}/simulate/calibration.toml")
    assert np.allclose(rig["top"].interface.normal, [0, 0, 1]) and np.allclose(rig["front"].interface.normal, [0, -1, 0])
    import mctrack

    back = mctrack.read_session(tmp_path / f"results/{s}/{s}.h5").rig
    assert back["front"].interface == rig["front"].interface and back["top"].interface == rig["top"].interface
    m = json.loads((tmp_path / f"results/{s}/eval/metrics.json").read_text())["tracking_3d"]
    assert m["median_error_m"] < 0.004 and m["coverage"] > 0.8, m
    assert m["IDF1"] >= 0.85 and m["n_tracks_3d"] <= 7, m
