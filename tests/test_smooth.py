"""Tests of mctrack.smooth: RTS smoothing and gap filling of 3D tracks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mctrack.errors import InputError
from mctrack.simulate import SimulationConfig, simulate_trajectories
from mctrack.smooth import SmoothConfig, smooth_tracks
from mctrack.tables import POINTS3D, TRACK3D

STD = 0.004  # m, per-axis noise of the fake triangulation (≈ 1 px at 2 m)


@pytest.fixture(scope="module")
def noisy_tracks():
    """Three simulated fish (30 fps, 300 frames) observed with 4 mm noise per axis; target 1 loses
    frames 100-109 (filled) and 200-239 (longer than max_gap: split)."""
    cfg = SimulationConfig(seed=5, n_targets=3, n_frames=300)
    truth = simulate_trajectories(cfg)
    rng = np.random.default_rng(1)
    T, N, _ = truth.shape
    t, n = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    df = pd.DataFrame({"frame": t.ravel(), "global_id": n.ravel()})
    xyz = truth.reshape(-1, 3) + rng.normal(0, STD, (T * N, 3))
    df[["x", "y", "z"]] = xyz
    df[["std_x", "std_y", "std_z"]] = STD
    df["reprojection_error"], df["n_cameras"], df["position_std"], df["confidence"] = 1.0, 3, STD, 0.9
    drop = (df.global_id == 1) & (df.frame.between(100, 109) | df.frame.between(200, 239))
    return truth, POINTS3D.coerce(df[~drop].reset_index(drop=True)), cfg.fps


def test_smoothing_reduces_error_and_keeps_raw(noisy_tracks):
    truth, pts, fps = noisy_tracks
    out = smooth_tracks(pts, fps, SmoothConfig(acceleration_std=2.0, max_gap=15))
    assert list(out.columns) == list(TRACK3D.columns)
    obs = out[~out.filled]
    tru = truth[obs.frame.to_numpy(), obs.global_id.to_numpy()]
    raw_err = np.sqrt(((obs[["x_raw", "y_raw", "z_raw"]].to_numpy() - tru) ** 2).mean())
    sm_err = np.sqrt(((obs[["x", "y", "z"]].to_numpy() - tru) ** 2).mean())
    assert raw_err == pytest.approx(STD, rel=0.1)
    assert sm_err < 0.6 * raw_err, (sm_err, raw_err)
    # raw values are the triangulated points, unchanged
    m = obs.merge(pts, on=["frame", "global_id"], suffixes=("", "_p"))
    assert len(m) == len(pts)
    np.testing.assert_array_equal(m[["x_raw", "y_raw", "z_raw"]].to_numpy(), m[["x_p", "y_p", "z_p"]].to_numpy())
    # smoothed std is below the measurement std and calibrated within a factor 1.5
    sm_std = np.sqrt((obs[["std_x", "std_y", "std_z"]].to_numpy() ** 2).mean())
    assert sm_std < STD and 1 / 1.5 < sm_err / sm_std < 1.5, (sm_err, sm_std)


def test_short_gap_filled_long_gap_split(noisy_tracks):
    truth, pts, fps = noisy_tracks
    out = smooth_tracks(pts, fps, SmoothConfig(max_gap=15))
    t1 = out[out.global_id == 1].set_index("frame")
    assert t1.loc[100:109, "filled"].all() and not t1.loc[[99, 110], "filled"].any()
    assert t1.loc[100:109, ["x_raw", "y_raw", "z_raw"]].isna().all().all()
    assert (t1.loc[100:109, "n_cameras"] == 0).all()
    assert not any(f in t1.index for f in range(200, 240)), "a 40-frame gap is not invented"
    filled = t1.loc[100:109]
    err = np.linalg.norm(filled[["x", "y", "z"]].to_numpy() - truth[100:110, 1], axis=1)
    assert err.max() < 0.03  # 10 frames (1/3 s) bridged within a few cm for a ~15 cm/s fish
    # uncertainty grows into the gap
    assert filled["std_x"].max() > 2 * t1.loc[90, "std_x"]
    assert np.isfinite(out[["x", "y", "z", "std_x", "std_y", "std_z"]].to_numpy()).all()
    # disabled: raw copied through
    off = smooth_tracks(pts, fps, SmoothConfig(enabled=False))
    assert len(off) == len(pts) and not off.filled.any()
    np.testing.assert_array_equal(off[["x", "y", "z"]].to_numpy(), off[["x_raw", "y_raw", "z_raw"]].to_numpy())


def test_bad_inputs_raise(noisy_tracks):
    _, pts, fps = noisy_tracks
    with pytest.raises(InputError, match="fps"):
        smooth_tracks(pts, 0.0)
    with pytest.raises(InputError, match="std_x"):
        smooth_tracks(pts.drop(columns=["std_x"]), fps)
    with pytest.raises(InputError, match="acceleration_std"):
        SmoothConfig(acceleration_std=0)
    assert smooth_tracks(POINTS3D.empty(), fps).empty
