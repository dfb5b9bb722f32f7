"""Shared fixtures: repository paths, the real data folder, and a small synthetic rig with tracklets."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCTRACK_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside the real-data folder; skips the test (with the reason) when it is absent.

    In CI (``CI=true``, set by GitHub Actions, GitLab CI and most others) the real data must be
    there, so a missing path fails the test instead of skipping it.
    """
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"real data not found at {p} (set MCTRACK_SHARED to the folder holding data/ and models/)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true but {msg}", pytrace=False)
        pytest.skip(msg)
    return p


def make_tracklets(cameras: dict, positions: np.ndarray, noise_px: float = 0.5, half_box: float = 6.0,
                   seed: int = 0) -> pd.DataFrame:
    """TRACKLET2D rows of targets ``positions (T, N, 3)`` seen by ``cameras``; track id = 10·target + 1.

    Every (camera, target, frame) whose projection lands in the image becomes a
    detected row with Gaussian centroid noise.
    """
    from mctrack.tables import TRACKLET2D

    rng = np.random.default_rng(seed)
    T, N, _ = positions.shape
    rows = []
    for name, cam in cameras.items():
        uv = cam.project(positions.reshape(-1, 3)).reshape(T, N, 2)
        uv = uv + rng.normal(0, noise_px, uv.shape)
        t, n = np.nonzero(np.isfinite(uv).all(2) & (uv[..., 0] > 0) & (uv[..., 0] < cam.size[0])
                          & (uv[..., 1] > 0) & (uv[..., 1] < cam.size[1]))
        c = uv[t, n]
        rows.append(pd.DataFrame({
            "camera_id": name, "track_id": 10 * n + 1, "frame": t, "x1": c[:, 0] - half_box,
            "y1": c[:, 1] - half_box, "x2": c[:, 0] + half_box, "y2": c[:, 1] + half_box, "cx": c[:, 0],
            "cy": c[:, 1], "frame_status": "detected", "det_index": n, "confidence": 0.9}))
    return TRACKLET2D.coerce(pd.concat(rows, ignore_index=True))


def restart_tracks(tr, seed: int = 1):
    """Every camera loses every track once (at a random frame 30-89) and restarts it as id + 1000 (in place)."""
    rng = np.random.default_rng(seed)
    for cam in tr["camera_id"].unique():
        for tid in tr.loc[tr["camera_id"] == cam, "track_id"].unique():
            cut = int(rng.integers(30, 90))
            sel = (tr["camera_id"] == cam) & (tr["track_id"] == tid) & (tr["frame"] >= cut)
            tr.loc[sel, "track_id"] = tid + 1000
    return tr


@pytest.fixture(scope="session")
def rig_scene():
    """A 4-camera synthetic rig (mctrack.simulate) and 5 targets moving for 120 frames."""
    from mctrack.simulate import SimulationConfig, make_rig, simulate_trajectories

    cfg = SimulationConfig(seed=3, n_targets=5, n_frames=120)
    cams = make_rig(["c1", "c2", "c3", "c4"], cfg)
    return {c.name: c for c in cams}, simulate_trajectories(cfg)
