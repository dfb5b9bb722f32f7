"""Tests of mctrack.simulate: config, rig, trajectories, rendering, ground truth and file round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mctrack.calibration import load_calibration
from mctrack.errors import InputError
from mctrack.simulate import (
    SimulationConfig,
    camera_rng,
    headings_from_trajectories,
    make_rig,
    render_camera,
    run_simulation,
    simulate_trajectories,
)
from mctrack.video import read_frames, video_info

GT2D_COLS = ["frame", "id", "x", "y", "w", "h", "conf", "cls", "vis"]


def _corners(cfg):
    X, Y, Z = cfg.tank_size
    return np.array([[sx * X / 2, sy * Y / 2, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0.0, Z)])


# --------------------------------------------------------------------------- config


def test_config_from_dict_accepts_lists_and_rejects_unknown_keys():
    cfg = SimulationConfig.from_dict({"seed": 3, "tank_size": [2, 1.5, 0.6], "n_frames": 10})
    assert cfg.seed == 3 and cfg.n_frames == 10 and cfg.tank_size == (2.0, 1.5, 0.6)
    assert SimulationConfig.from_dict({}) == SimulationConfig()
    with pytest.raises(InputError, match="n_frame"):
        SimulationConfig.from_dict({"n_frame": 10})


@pytest.mark.parametrize("bad", [{"width": 321}, {"n_targets": 0}, {"fps": 0}, {"tank_size": [1, 1]},
                                 {"noise_sigma": -1}, {"target_width": 0.2}, {"n_frames": 2.5}])
def test_config_rejects_bad_values(bad):
    key = next(iter(bad))
    with pytest.raises(InputError, match=key):
        SimulationConfig.from_dict(bad)


# --------------------------------------------------------------------------- rig


@pytest.mark.parametrize("n", [2, 12])
def test_rig_sees_whole_tank_with_plausible_intrinsics(n):
    cfg = SimulationConfig(seed=5)
    names = [f"cam{i}" for i in range(n)]
    cams = make_rig(names, cfg)
    assert [c.name for c in cams] == names
    centre = np.array([0, 0, cfg.tank_size[2] / 2])
    az = []
    for c in cams:
        assert c.size == (cfg.width, cfg.height)
        uv = c.project(_corners(cfg))
        assert np.isfinite(uv).all()
        assert (uv >= 0).all() and (uv[:, 0] <= cfg.width).all() and (uv[:, 1] <= cfg.height).all()
        fill = max(np.ptp(uv[:, 0]) / cfg.width, np.ptp(uv[:, 1]) / cfg.height)
        assert 0.55 < fill < 0.75
        K = c.K
        assert abs(K[0, 0] / K[1, 1] - 1) < 0.01
        assert abs(K[0, 2] - cfg.width / 2) < 0.03 * cfg.width and abs(K[1, 2] - cfg.height / 2) < 0.03 * cfg.height
        assert -0.2 <= c.dist[0] <= -0.1 and 0 < c.dist[1] < 0.05 and np.abs(c.dist[2:4]).max() < 2e-3
        rel = c.center - centre
        dist = np.linalg.norm(rel)
        elev = np.degrees(np.arcsin(rel[2] / dist))
        assert 1.45 < dist < 2.25 and 34 < elev < 71
        az.append(np.arctan2(rel[1], rel[0]))
    gaps = np.diff(np.sort(np.mod(az, 2 * np.pi)), append=np.min(np.mod(az, 2 * np.pi)) + 2 * np.pi)
    assert gaps.min() > 0.6 * 2 * np.pi / n  # evenly spread azimuths


@pytest.mark.parametrize("names", [["a"], [f"c{i}" for i in range(13)], ["a", "a"], ["a", "b c"]])
def test_rig_rejects_bad_camera_lists(names):
    with pytest.raises(InputError):
        make_rig(names, SimulationConfig())


def test_rig_is_deterministic_per_seed():
    a = make_rig(["a", "b", "c"], SimulationConfig(seed=1))
    b = make_rig(["a", "b", "c"], SimulationConfig(seed=1))
    c = make_rig(["a", "b", "c"], SimulationConfig(seed=2))
    assert all(np.array_equal(x.K, y.K) and np.array_equal(x.tvec, y.tvec) for x, y in zip(a, b))
    assert not np.allclose(a[0].tvec, c[0].tvec)


@pytest.mark.parametrize("n", [2, 5])
def test_top_front_rig_looks_down_and_through_the_side_walls(n):
    """rig: top_front: camera 0 straight down, the others level with the tank, 90° apart from the front (-y)."""
    cfg = SimulationConfig(seed=3, rig="top_front")
    cams = make_rig([f"c{i}" for i in range(n)], cfg)
    X, Y, Z = cfg.tank_size
    axis = np.array([c.R[2] for c in cams])            # optical axes in world coordinates
    assert axis[0][2] < -np.cos(np.deg2rad(3.0))       # within 3° of straight down
    assert cams[0].center[2] > Z + 1.0
    assert np.abs(np.degrees(np.arcsin(axis[1:, 2]))).max() < 3.0   # level within 3°
    assert (np.abs(np.array([c.center[2] for c in cams[1:]]) - Z / 2) < 0.1).all()
    az = np.degrees(np.arctan2([c.center[1] for c in cams[1:]], [c.center[0] for c in cams[1:]]))
    want = -90.0 + 90.0 * np.arange(n - 1)
    assert np.abs((az - want + 180) % 360 - 180).max() < 3.0
    for c in cams:   # the whole tank in view, as for the orbit rig
        uv = c.project(_corners(cfg))
        assert np.isfinite(uv).all() and (uv >= 0).all() and (uv <= [cfg.width, cfg.height]).all()
    # the option adds draws for its own rig only: the orbit rig of a seed stays as it was
    orbit = make_rig(["c0", "c1"], SimulationConfig(seed=3))
    assert np.array_equal(orbit[1].tvec, make_rig(["c0", "c1"], SimulationConfig(seed=3, rig="orbit"))[1].tvec)
    assert not np.allclose(orbit[0].tvec, cams[0].tvec)


def test_top_front_rig_rejects_six_cameras_and_unknown_rigs():
    with pytest.raises(InputError, match="simulate.rig"):
        make_rig([f"c{i}" for i in range(6)], SimulationConfig(rig="top_front"))
    with pytest.raises(InputError, match="rig"):
        SimulationConfig(rig="above")


# --------------------------------------------------------------------------- trajectories


def test_trajectories_deterministic_inside_tank_smooth_and_at_mean_speed():
    cfg = SimulationConfig(seed=11, n_frames=600, n_targets=8)
    P = simulate_trajectories(cfg)
    assert P.shape == (600, 8, 3) and P.dtype == np.float64
    assert np.array_equal(P, simulate_trajectories(cfg))
    assert not np.allclose(P, simulate_trajectories(SimulationConfig(seed=12, n_frames=600, n_targets=8)))
    X, Y, Z = cfg.tank_size
    half = cfg.target_length / 2  # the whole body stays in the water
    assert (np.abs(P[..., 0]) <= X / 2 - half).all() and (np.abs(P[..., 1]) <= Y / 2 - half).all()
    assert (P[..., 2] >= half).all() and (P[..., 2] <= Z - half).all()
    v = np.linalg.norm(np.diff(P, axis=0), axis=2) * cfg.fps
    assert abs(v.mean() / cfg.mean_speed - 1) < 0.25
    assert v.min() > 0.1 * cfg.mean_speed and v.max() < 3 * cfg.mean_speed
    acc = np.linalg.norm(np.diff(P, 2, axis=0), axis=2) * cfg.fps ** 2
    assert acc.max() < 4.0  # m/s², no jumps from clipping
    assert np.percentile(acc, 99) < 1.5
    # targets explore the tank (not stuck in a corner) and do not sit inside each other
    assert P[..., 0].std() > 0.12 and P[..., 1].std() > 0.12 and P[..., 2].std() > 0.05
    d = np.linalg.norm(P[:, :, None] - P[:, None], axis=3) + np.eye(8) * 10
    assert d.min() > 0.5 * cfg.target_width


def test_headings_are_unit_velocity_directions():
    cfg = SimulationConfig(seed=2, n_frames=50, n_targets=3)
    P = simulate_trajectories(cfg)
    Hd = headings_from_trajectories(P, cfg.fps)
    assert Hd.shape == P.shape
    assert np.allclose(np.linalg.norm(Hd, axis=2), 1)
    v = P[2:] - P[:-2]
    cos = np.sum(Hd[1:-1] * v, axis=2) / np.linalg.norm(v, axis=2)
    assert cos.min() > 0.999


# --------------------------------------------------------------------------- rendering


def _small_cfg(**kw):
    base = dict(seed=4, n_targets=1, n_frames=3, width=320, height=240, noise_sigma=0.0)
    base.update(kw)
    return SimulationConfig(**base)


def _render(cam, P, cfg, seed=0):
    Hd = np.broadcast_to(np.array([1.0, 0.3, 0.0]), P.shape)
    frames, gt = render_camera(cam, P, Hd, cfg, np.random.default_rng(seed))
    return list(frames), gt


def test_render_box_is_tight_around_dark_silhouette():
    cfg = _small_cfg()
    cam = make_rig(["a", "b"], cfg)[0]
    P = np.array([[[0.1, -0.1, 0.2]], [[0.0, 0.0, 0.25]], [[-0.2, 0.15, 0.1]]])
    frames, gt = _render(cam, P, cfg)
    bg, _ = _render(cam, P[:, :0], cfg)  # same rng seed, no targets: the bare background
    assert len(frames) == 3 and frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    assert len(gt) == 3 and (gt["visibility"] == 1).all() and (gt["target_id"] == 1).all()
    for t in range(3):
        diff = np.abs(frames[t].astype(int) - bg[t].astype(int)).max(axis=2)
        ys, xs = np.nonzero(diff > 40)
        r = gt[t]
        assert abs(xs.min() - r["x"]) <= 1 and abs(xs.max() + 1 - (r["x"] + r["w"])) <= 1
        assert abs(ys.min() - r["y"]) <= 1 and abs(ys.max() + 1 - (r["y"] + r["h"])) <= 1
        # darker than the background, with some shading
        inside = frames[t][diff > 40].mean(axis=1)
        assert inside.mean() < bg[t][diff > 40].mean() - 60 and inside.std() > 3
        # box centre matches the projected centre (corner-origin pixel convention)
        u, v = cam.project(P[t])[0]
        assert abs(r["x"] + r["w"] / 2 - u) < 1.5 and abs(r["y"] + r["h"] / 2 - v) < 1.5


def test_render_occlusion_and_image_border_visibility():
    cfg = _small_cfg(n_targets=2, n_frames=2)
    cam = make_rig(["a", "b"], cfg)[1]
    C = cam.center
    W, H = cam.size
    _, d = cam.rays(np.array([[W / 2, H / 2], [0.0, H / 2]]))
    # frame 0: two targets on the same ray, the second 15 cm farther away
    # frame 1: target 1 straddles the left image border, target 2 far outside the image
    P = np.array([[C + 1.6 * d[0], C + 1.75 * d[0]],
                  [C + 1.6 * d[1], C + 1.6 * d[1] - 3.0 * cam.R[0]]])
    Hd = np.broadcast_to(np.array([1.0, 0.0, 0.0]), P.shape)
    frames, gt = render_camera(cam, P, Hd, cfg, np.random.default_rng(0))
    rows = {(r["frame"], r["target_id"]): r for r in gt}
    assert rows[(0, 1)]["visibility"] == 1.0
    assert rows[(0, 2)]["visibility"] < 0.5  # mostly hidden behind the nearer (larger) target
    near, far = rows[(0, 1)], rows[(0, 2)]
    assert abs((near["x"] + near["w"] / 2) - (far["x"] + far["w"] / 2)) <= 1.5
    edge = rows[(1, 1)]
    assert edge["x"] == 0 and 0.2 < edge["visibility"] < 0.8
    assert (1, 2) not in rows  # no row for a target entirely outside the image
    assert len(list(frames)) == 2


def test_render_skips_targets_behind_camera():
    cfg = _small_cfg(n_frames=1)
    cam = make_rig(["a", "b"], cfg)[0]
    fwd = cam.R[2]
    P = (cam.center - 0.5 * fwd)[None, None, :]
    frames, gt = _render(cam, P, cfg)
    assert len(gt) == 0 and len(frames) == 1


def test_render_frames_deterministic_and_noisy():
    cfg = _small_cfg(n_frames=2, noise_sigma=4.0)
    cam = make_rig(["a", "b"], cfg)[0]
    P = np.array([[[0.0, 0.0, 0.2]], [[0.01, 0.0, 0.2]]])
    f1, g1 = _render(cam, P, cfg, seed=3)
    f2, g2 = _render(cam, P, cfg, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(f1, f2)) and np.array_equal(g1, g2)
    d = f1[0].astype(float) - f1[1].astype(float)  # static scene except one target: frame difference is noise
    assert 4.0 < d[:60, :60].std() < 7.0  # ≈ sqrt(2)·σ


# --------------------------------------------------------------------------- whole run


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    cfg = SimulationConfig(seed=7, n_targets=5, n_frames=30, width=320, height=240)
    names = ["cam1", "cam2", "cam3"]

    def run(root, cfg=cfg, names=names, workers=1):
        out = dict(videos={n: root / f"{n}.mp4" for n in names}, calibration=root / "calib.toml",
                   gt3d=root / "gt3d.csv", gt2d={n: root / "gt" / f"{n}.txt" for n in names})
        run_simulation(cfg, names, **out, workers=workers)
        return out

    a = run(tmp_path_factory.mktemp("a"))
    b = run(tmp_path_factory.mktemp("b"), workers=2)  # cameras rendered in parallel: same session
    c = run(tmp_path_factory.mktemp("c"), SimulationConfig(seed=8, n_targets=5, n_frames=30, width=320, height=240),
            names[:2])
    return cfg, names, a, b, c


def test_run_is_deterministic_and_seed_dependent(sim_run):
    """Two runs (the second rendering cameras in 2 worker processes) write identical files; another seed differs."""
    cfg, names, a, b, c = sim_run
    assert a["gt3d"].read_bytes() == b["gt3d"].read_bytes()
    assert a["calibration"].read_bytes() == b["calibration"].read_bytes()
    for n in names:
        assert a["gt2d"][n].read_bytes() == b["gt2d"][n].read_bytes()
        assert video_info(a["videos"][n]).n_frames == video_info(b["videos"][n]).n_frames == cfg.n_frames
    assert a["gt3d"].read_bytes() != c["gt3d"].read_bytes()
    assert a["gt2d"]["cam1"].read_bytes() != c["gt2d"]["cam1"].read_bytes()
    # atomic writes leave no temporary files behind
    assert not [p for p in a["gt3d"].parent.rglob(".*") if p.is_file()]


def test_run_gt3d_matches_trajectories(sim_run):
    cfg, names, a, *_ = sim_run
    df = pd.read_csv(a["gt3d"])
    assert list(df.columns) == ["frame", "target_id", "x", "y", "z"]
    assert len(df) == cfg.n_frames * cfg.n_targets
    assert df.frame.min() == 0 and df.frame.max() == cfg.n_frames - 1
    assert sorted(df.target_id.unique()) == list(range(1, cfg.n_targets + 1))
    P = simulate_trajectories(cfg)
    got = df.sort_values(["frame", "target_id"])[["x", "y", "z"]].to_numpy().reshape(P.shape)
    assert np.abs(got - P).max() < 1e-6


def test_run_gt2d_format_and_agreement_with_calibration(sim_run):
    cfg, names, a, *_ = sim_run
    cams = load_calibration(a["calibration"])
    assert sorted(cams) == sorted(names)
    gt3d = pd.read_csv(a["gt3d"]).set_index(["frame", "target_id"])
    for n in names:
        lines = a["gt2d"][n].read_text().splitlines()
        assert all(len(line.split(",")) == 9 for line in lines)
        g = pd.read_csv(a["gt2d"][n], header=None, names=GT2D_COLS)
        g[["x", "y"]] -= 1  # MOTChallenge pixels are 1-based (mctrack.io.mot); back to 0-based pixel corners
        assert g.frame.min() == 1 and g.frame.max() == cfg.n_frames  # 1-based
        assert (g.cls == 1).all() and g.id.between(1, cfg.n_targets).all()
        assert ((g.vis >= 0.25).astype(int) == g.conf).all() and g.vis.between(0, 1).all()
        assert (g.x >= 0).all() and (g.y >= 0).all() and (g.w > 0).all()
        assert (g.x + g.w <= cfg.width).all() and (g.y + g.h <= cfg.height).all()
        assert (g.conf == 1).mean() > 0.85  # targets are visible in most frames
        assert not g.duplicated(["frame", "id"]).any()
        # box centres ≈ 3D ground truth projected through the written calibration
        X = gt3d.loc[list(zip(g.frame - 1, g.id))][["x", "y", "z"]].to_numpy()
        uv = cams[n].project(X)
        full = (g.vis == 1).to_numpy()
        ex = (g.x + g.w / 2 - uv[:, 0]).to_numpy()[full]
        ey = (g.y + g.h / 2 - uv[:, 1]).to_numpy()[full]
        err = np.hypot(ex, ey)
        assert full.sum() > 0.5 * len(g)
        assert np.median(err) < 0.6 and err.max() < 1.5
        # no systematic offset: pixel j covers [j, j+1) in projection coordinates (a 0.5 px slip would show)
        assert abs(ex.mean()) < 0.2 and abs(ey.mean()) < 0.2
        # blobs are a detectable size
        assert np.median(np.maximum(g.w, g.h)) >= 5


def test_run_videos_round_trip_and_frame_alignment(sim_run):
    cfg, names, a, *_ = sim_run
    cams = make_rig(names, cfg)
    P = simulate_trajectories(cfg)
    Hd = headings_from_trajectories(P, cfg.fps)
    for i, n in enumerate(names):
        info = video_info(a["videos"][n])
        assert (info.n_frames, info.width, info.height) == (cfg.n_frames, cfg.width, cfg.height)
        assert abs(info.fps - cfg.fps) < 1e-3
        decoded = dict(read_frames(a["videos"][n], 0, cfg.n_frames))
        assert len(decoded) == cfg.n_frames and decoded[0].shape == (cfg.height, cfg.width, 3)
        # decoded frame f shows the targets where rendered frame f has them, not f±1 / f±2
        frames, gt = render_camera(cams[i], P, Hd, cfg, camera_rng(cfg, i))
        rendered = list(frames)
        for f in (2, 20, cfg.n_frames - 3):
            near = np.zeros((cfg.height, cfg.width), bool)
            for r in gt[gt["frame"] == f]:
                near[max(r["y"] - 3, 0):r["y"] + r["h"] + 3, max(r["x"] - 3, 0):r["x"] + r["w"] + 3] = True
            mad = [np.abs(decoded[f].astype(int) - rendered[g])[near].mean() for g in range(f - 2, f + 3)]
            assert mad[2] < 0.85 * min(mad[1], mad[3]) and max(mad[1], mad[3]) < min(mad[0], mad[4])
        # targets are darker than their surroundings at the GT boxes (gt frame k = decoded frame k-1)
        g = pd.read_csv(a["gt2d"][n], header=None, names=GT2D_COLS)
        empty, _ = render_camera(cams[i], P[:, :0], Hd[:, :0], cfg, camera_rng(cfg, i))  # same scene, no targets
        bgm = next(empty).astype(float)
        darker = []
        for r in g[g.vis == 1].itertuples():
            img = decoded[r.frame - 1].astype(float).mean(axis=2)
            box = img[r.y:r.y + r.h, r.x:r.x + r.w]
            ref = bgm[r.y:r.y + r.h, r.x:r.x + r.w].mean(axis=2)
            darker.append(box.min() < ref.min() - 40 and box.mean() < ref.mean() - 15)
        assert np.mean(darker) > 0.95


def test_run_rejects_missing_output_paths(tmp_path):
    cfg = SimulationConfig(n_frames=2)
    with pytest.raises(InputError, match="gt2d"):
        run_simulation(cfg, ["a", "b"], videos={"a": tmp_path / "a.mp4", "b": tmp_path / "b.mp4"},
                       calibration=tmp_path / "c.toml", gt3d=tmp_path / "g.csv", gt2d={"a": tmp_path / "a.txt"})
