"""Border-cut boxes are triangulated from their uncut coordinate only (issue 6 item 4, mctrack.triangulate)."""

import numpy as np
import pandas as pd
import pytest

from mctrack.calibration import FlatInterface, RefractiveCamera
from mctrack.simulate import SimulationConfig, make_rig
from mctrack.tables import ASSOCIATION, TRACKLET2D
from mctrack.triangulate import TriangulationConfig, triangulate, triangulate_points

HALF_BOX = 15.0  # px: box half-size; a target within this of the image edge is cut


@pytest.fixture(scope="module")
def mixed(zoomed):
    """Zoomed camera c1 (targets near the tank wall leave its view) with the default wide cameras c2,
    c3 (which see the whole tank, boxes >= 60 px inside the image)."""
    wide = {c.name: c for c in make_rig(["c1", "c2", "c3"], SimulationConfig(seed=3))}
    return {"c1": zoomed[0]["c1"], "c2": wide["c2"], "c3": wide["c3"]}


@pytest.fixture(scope="module")
def zoomed():
    """The synthetic 4-camera rig zoomed in (the tank spans 2x the image, as in the hard scene) and
    20000 points filling the water volume: ~14 % of them lie within HALF_BOX px of some image edge."""
    cfg = SimulationConfig(seed=3, view_fraction=2.0)
    cams = {c.name: c for c in make_rig(["c1", "c2", "c3", "c4"], cfg)}
    m = cfg.target_length
    X = np.random.default_rng(0).uniform([-0.5 + m, -0.5 + m, m], [0.5 - m, 0.5 - m, 0.5 - m], (20000, 3))
    return cams, X


def _clipped_tracklets(cams: dict, X: np.ndarray, noise_px: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """TRACKLET2D rows of one target per frame at ``X[frame]``: in every camera whose image holds the
    projected centre, the box ``centre ± HALF_BOX`` clipped to the image as a detector's would be,
    its centre the clipped box's centre (biased along a cut axis by up to HALF_BOX / 2) plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, cam in cams.items():
        W, H = cam.size
        uv = cam.project(X)
        f = np.flatnonzero(np.isfinite(uv).all(1) & (uv[:, 0] > 0) & (uv[:, 0] < W - 1)
                           & (uv[:, 1] > 0) & (uv[:, 1] < H - 1))
        b = np.clip(np.hstack([uv[f] - HALF_BOX, uv[f] + HALF_BOX]), 0, [W - 1, H - 1, W - 1, H - 1])
        c = (b[:, :2] + b[:, 2:]) / 2 + rng.normal(0, noise_px, (len(f), 2))
        rows.append(pd.DataFrame({"camera_id": name, "track_id": 1, "frame": f, "x1": b[:, 0], "y1": b[:, 1],
                                  "x2": b[:, 2], "y2": b[:, 3], "cx": c[:, 0], "cy": c[:, 1],
                                  "frame_status": "detected", "det_index": 0, "confidence": 0.9}))
    return TRACKLET2D.coerce(pd.concat(rows, ignore_index=True))


def _near_left_border(cam, n: int = 3000, seed: int = 0) -> np.ndarray:
    """``(≤ n, 3)`` points in the water volume whose centre lands 1 to HALF_BOX - 1 px from ``cam``'s left edge."""
    rng = np.random.default_rng(seed)
    m = SimulationConfig().target_length
    uv = np.column_stack([rng.uniform(1, HALF_BOX - 1, n), rng.uniform(40, cam.size[1] - 40, n)])
    o, d = cam.rays(uv)
    z = rng.uniform(m, 0.5 - m, n)
    X = o + ((z - (o[..., 2] if np.ndim(o) > 1 else o[2])) / d[:, 2])[:, None] * d
    return X[(np.abs(X[:, :2]) < 0.5 - m).all(1)]


def _assoc(tr):
    keys = tr[["camera_id", "track_id"]].drop_duplicates()
    return ASSOCIATION.coerce(keys.assign(global_id=0, n_frames=1, n_linked_cameras=len(keys)))


def _errors(tr, cams, X, **cfg):
    pts, res = triangulate(tr, _assoc(tr), cams, TriangulationConfig(**cfg))
    err = pts[["x", "y", "z"]].to_numpy() - X[pts["frame"].to_numpy()]
    return pts.set_index("frame"), pd.DataFrame(err, index=pts["frame"], columns=["x", "y", "z"]), res


def _left_cut_only(tr, cut_cam):
    """Frames where ``cut_cam``'s box is cut on the left border only and every other box is uncut."""
    W, H = 640, 480
    cut_l = (tr["x1"] <= 1) & (tr["y1"] > 1) & (tr["x2"] < W - 2) & (tr["y2"] < H - 2)
    uncut = (tr["x1"] > 1) & (tr["y1"] > 1) & (tr["x2"] < W - 2) & (tr["y2"] < H - 2)
    ok = np.where(tr["camera_id"] == cut_cam, cut_l, uncut)
    n = tr.assign(ok=ok).groupby("frame")["ok"].agg(["all", "size"])
    return n.index[n["all"] & (n["size"] == 3)].to_numpy()


def test_left_cut_box_uses_only_its_vertical_coordinate(zoomed, mixed):
    """Three cameras, the box of one cut on the left border (centre biased right by up to 7.5 px),
    0.5 px noise: with the cut axis dropped the median 3D error is under half that with both axes
    (measured 1.8 vs 4.4 mm) and near that of the uncut points (1.5 mm; 0.5 px at ~2 m with
    f ~ 420 px is ~2.4 mm along one ray)."""
    sub = mixed
    X = np.vstack([zoomed[1][:5000], _near_left_border(sub["c1"], 3000)])
    tr = _clipped_tracklets(sub, X)
    frames = _left_cut_only(tr, "c1")
    assert len(frames) > 200  # enough such points for a median
    on, e_on, res = _errors(tr, sub, X, centroid_sigma=0.5)
    off, e_off, _ = _errors(tr, sub, X, centroid_sigma=0.5, border_margin=None)
    assert set(frames) <= set(on.index) and set(frames) <= set(off.index)
    assert (on.loc[frames, "n_cut"] == 1).all() and (on.loc[frames, "n_cameras"] == 3).all()
    assert (off["n_cut"] == 0).all()
    d_on = np.linalg.norm(e_on.loc[frames], axis=1)
    d_off = np.linalg.norm(e_off.loc[frames], axis=1)
    uncut = on.index[on["n_cut"] == 0]
    d_uncut = np.linalg.norm(e_on.loc[uncut], axis=1)
    assert np.median(d_on) < 0.5 * np.median(d_off), (np.median(d_on), np.median(d_off))
    assert np.median(d_on) < 1.5 * np.median(d_uncut) and np.median(d_on) < 0.003
    # the residual of the cut camera is measured along v only: u_proj differs from the biased u_obs
    r = res[(res["camera_id"] == "c1") & res["frame"].isin(frames)]
    np.testing.assert_allclose(r["residual_px"], np.abs(r["v_proj"] - r["v_obs"]), atol=1e-4)
    assert (r["u_obs"] - r["u_proj"]).median() > 1.0  # the bias the dropped axis would have pulled in


def test_exact_point_from_the_uncut_axis_and_too_few_equations(zoomed, mixed):
    """Three cameras, one with its u axis cut and 7 px off there: the exact point (to a few µm: lens
    distortion couples u and v). Two cameras, one box cut: 3 equations, no redundancy, so
    triangulate_points does not solve it and triangulate uses both coordinates (as with the option
    off), flagging the point with n_cut; a box cut on both axes counts as no camera."""
    cl = list(mixed.values())
    X = _near_left_border(cl[0], 1000)
    uv = np.stack([c.project(X) for c in cl], axis=1)
    uv[:, 0, 0] += 7.0
    mask = np.ones(uv.shape[:2], bool)
    axes = np.ones(uv.shape, bool)
    axes[:, 0, 0] = False
    Xh, used, _ = triangulate_points(uv, mask, cl, 1.0, 3, axes)
    assert used.all() and np.abs(Xh - X).max() < 1e-5
    Xb, _, _ = triangulate_points(uv, mask, cl, 1e6, 3)  # both axes: the bias moves the point
    assert np.median(np.linalg.norm(Xb - X, axis=1)) > 1e-3
    Xh, used, _ = triangulate_points(uv[:, :2], mask[:, :2], cl[:2], 1e6, 3, axes[:, :2])
    assert np.isnan(Xh).all() and not used.any()
    axes[:, 2] = False  # camera 3 cut on both axes: two cameras, 3 equations left
    Xh, used, _ = triangulate_points(uv, mask, cl, 1e6, 3, axes)
    assert np.isnan(Xh).all() and not used.any()
    # table API: two cameras, the c1 box cut -> the point from both coordinates, flagged
    two = {"c1": mixed["c1"], "c2": mixed["c2"]}
    tr = _clipped_tracklets(two, X)
    on, _, _ = _errors(tr, two, X)
    off, _, _ = _errors(tr, two, X, border_margin=None)
    assert len(on) > 200 and (on["n_cut"] == 1).all() and (on["n_cameras"] == 2).all()
    pd.testing.assert_frame_equal(on.drop(columns="n_cut"), off.drop(columns="n_cut"), check_exact=True)


def test_uncut_data_bit_identical(rig_scene):
    """Boxes away from the border: the option on and off give identical tables, and axes=None is the
    same solve as all axes True (the code before this option is the axes=None path)."""
    from conftest import make_tracklets

    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    inside = (tr["x1"] > 2) & (tr["y1"] > 2) & (tr["x2"] < 637) & (tr["y2"] < 477)
    tr = tr[inside.to_numpy()].reset_index(drop=True)
    keys = tr[["camera_id", "track_id"]].drop_duplicates()
    assoc = ASSOCIATION.coerce(keys.assign(global_id=(keys["track_id"] - 1) // 10, n_frames=1, n_linked_cameras=4))
    p1, r1 = triangulate(tr, assoc, cams, TriangulationConfig(max_reprojection_error=8.0))
    p0, r0 = triangulate(tr, assoc, cams, TriangulationConfig(max_reprojection_error=8.0, border_margin=None))
    assert len(p0) > 500 and (p1["n_cut"] == 0).all()
    pd.testing.assert_frame_equal(p0, p1, check_exact=True)
    pd.testing.assert_frame_equal(r0, r1, check_exact=True)
    cl = list(cams.values())
    uv = np.stack([c.project(pos.reshape(-1, 3)) for c in cl], axis=1)
    uv += np.random.default_rng(1).normal(0, 3.0, uv.shape)
    mask = np.isfinite(uv).all(2)
    a = triangulate_points(uv, mask, cl, 5.0)
    b = triangulate_points(uv, mask, cl, 5.0, 1, np.ones(uv.shape, bool))
    assert a[1].sum() > 0 and (~a[1] & mask).any()  # the gate dropped some cameras
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_std_calibrated_for_points_with_a_dropped_axis(zoomed):
    """Noisy centres (1.5 px per axis) of the points with a border-cut box (4 cameras; the std comes
    from the used equations only). Points of >= 3 cameras: the RMS of the actual error along x, y, z
    over the RMS of the predicted std is 0.8-1.25 (as for uncut points in test_triangulate.py). All
    cut points, two-camera ones with 3 equations included: their std spans two decades (a cut
    camera's one equation is a plane, nearly parallel to the other ray for some points), so the
    pooled ratio is ruled by a few points; the per-point ratio error / std has RMS 0.8-1.25 per
    axis. With both axes used the same points' RMS error is larger."""
    cams, X = zoomed
    tr = _clipped_tracklets(cams, X, noise_px=1.5, seed=5)
    on, e_on, _ = _errors(tr, cams, X, centroid_sigma=0.5, max_reprojection_error=15.0)
    cut = on.index[on["n_cut"] > 0]
    assert len(cut) > 2000 and len(on) > 0.95 * len(np.unique(tr["frame"]))
    assert ((on.loc[cut, "n_cameras"] == 2).sum() > 200)
    many = on.index[(on["n_cut"] > 0) & (on["n_cameras"] >= 3)]
    std = on.loc[many, ["std_x", "std_y", "std_z"]].to_numpy()
    ratio = np.sqrt((e_on.loc[many].to_numpy() ** 2).mean(0)) / np.sqrt((std**2).mean(0))
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio
    z = e_on.loc[cut].to_numpy() / on.loc[cut, ["std_x", "std_y", "std_z"]].to_numpy()
    ratio = np.sqrt((z**2).mean(0))
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio
    off, e_off, _ = _errors(tr, cams, X, centroid_sigma=0.5, max_reprojection_error=15.0, border_margin=None)
    both = off.index.intersection(cut)
    rms_on, rms_off = (np.sqrt((np.linalg.norm(e.loc[both], axis=1) ** 2).mean()) for e in (e_on, e_off))
    assert rms_off > rms_on, (rms_on, rms_off)


def test_refractive_rig_drops_the_cut_axis_too(zoomed, mixed):
    """Through a flat water surface (the refractive path: ray start, Gauss-Newton on the used axes)."""
    water = FlatInterface.horizontal(0.5)
    sub = {n: RefractiveCamera.of(c, water) for n, c in mixed.items()}
    X = np.vstack([zoomed[1][:5000], _near_left_border(sub["c1"], 3000)])
    tr = _clipped_tracklets(sub, X)
    frames = _left_cut_only(tr, "c1")
    assert len(frames) > 200
    on, e_on, _ = _errors(tr, sub, X, centroid_sigma=0.5, refine_iterations=3)
    off, e_off, _ = _errors(tr, sub, X, centroid_sigma=0.5, refine_iterations=3, border_margin=None)
    assert (on.loc[frames, "n_cut"] == 1).all()
    d_on = np.linalg.norm(e_on.loc[frames], axis=1)
    d_off = np.linalg.norm(e_off.loc[frames], axis=1)
    assert np.median(d_on) < 0.5 * np.median(d_off) and np.median(d_on) < 0.003, (np.median(d_on), np.median(d_off))
