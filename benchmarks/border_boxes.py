"""What triangulating border-cut boxes from their uncut axis only would gain on the hard scene (figures).

A box that touches the image border holds only the part of the target inside the image, so its
centre is biased along the cut axis (x for the left/right border, y for top/bottom) but not along
the other. ``mctrack.triangulate`` uses both coordinates of every box; on the hard scene 21-31 % of
the two-camera points with such a box lie beyond 2 cm of their fish against 7-16 % of the others
(``benchmarks/association_accuracy.py``, breakdown line). This script re-associates each finished
hard session once (``associate.method: frames``, the hard config) and triangulates it twice:

- ``as is``: :func:`mctrack.triangulate.triangulate`;
- ``cut axis dropped``: the same, but a cut coordinate gives no equation — DLT rows and
  Gauss-Newton residuals per axis, the reprojection gate on the used axes only, and a point needs
  ≥ 3 equations from ≥ 2 cameras (:func:`_triangulate_points_axes`, a prototype for the pinhole
  path; refractive rigs are left as they are).

It prints 3D IDF1 / HOTA / tracks / per-point ceiling for both. Prototype, not library code: it
swaps ``mctrack.triangulate.triangulate_points`` for the run (the library keeps both axes).

Usage: ``python benchmarks/border_boxes.py`` (after the hard runs of association_accuracy.py).
"""
from __future__ import annotations

import logging

import numpy as np
from association_accuracy import REPO, SYNTHETIC, _ceiling, _run

import mctrack.triangulate as T
from mctrack.calibration import load_calibration
from mctrack.evaluate import evaluate_3d_tracking, read_gt3d
from mctrack.tables import TRACKLET2D, read_tables

_BORDER_PX = 1.0  # a box edge within this of the image edge is cut


def _triangulate_points_axes(uv, mask, cameras, max_reprojection_error=15.0, refine_iterations=1):
    """:func:`mctrack.triangulate.triangulate_points` where a NaN coordinate of ``uv (G, C, 2)`` is an unused axis.

    Fills the unused coordinate of ``uv`` in place with the final reprojection so the caller's
    residuals on that axis are zero (the caller passes a view of its own array).
    """
    G, C = mask.shape
    wa = np.isfinite(uv)                     # (G, C, 2) usable axes
    rig = T._Rig.of(cameras)
    xy = np.full((G, C, 2), np.nan)
    A = np.zeros((G, C, 2, 4))
    for c, cam in enumerate(cameras):
        sel = wa[:, c].any(1)
        if not sel.any():
            continue
        u = np.where(wa[sel, c], uv[sel, c], cam.K[[0, 1], [2, 2]][None, :])   # fill: its row is dropped
        xy[sel, c] = cam.normalize(u)
        Rt = np.hstack([cam.R, cam.tvec[:, None]])
        rows = np.stack([xy[sel, c, :1] * Rt[2] - Rt[0], xy[sel, c, 1:2] * Rt[2] - Rt[1]], axis=1)
        rows /= np.linalg.norm(rows, axis=2, keepdims=True)
        A[sel, c] = rows * wa[sel, c][..., None]

    def n_eq(w, use):
        return (w & use[..., None]).sum((1, 2))

    def solve(todo, use):
        X = T._solve_dlt(A[todo] * use[..., None, None], np.ones(use.shape))
        w = (wa[todo] & use[..., None]).astype(float)
        for _ in range(refine_iterations):
            Xc = rig.to_camera(X)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.nan_to_num((xy[todo] - Xc[..., :2] / Xc[..., 2:3]) * rig.f * w).reshape(len(todo), 2 * C, 1)
            J = np.nan_to_num(rig.jacobian(Xc) * w[..., None]).reshape(len(todo), 2 * C, 3)
            Jt = J.transpose(0, 2, 1)
            step = T._solve3(np.matmul(Jt, J), np.matmul(Jt, r)[..., 0])
            ok = np.isfinite(step).all(1)
            Xn = X + np.where(ok[:, None], step, 0.0)
            front = ((rig.to_camera(Xn)[..., 2] > 0) | ~use).all(1)
            X = np.where((ok & front & np.isfinite(Xn).all(1))[:, None], Xn, X)
        return X

    used = wa.any(2)
    proj = np.full((G, C, 2), np.nan)
    X = np.full((G, 3), np.nan)
    err = np.full((G, C), np.inf)
    todo = np.flatnonzero((used.sum(1) >= 2) & (n_eq(wa, used) >= 3))
    while todo.size:
        X[todo] = solve(todo, used[todo])
        for c, cam in enumerate(cameras):
            sel = todo[used[todo, c]]
            proj[sel, c] = cam.project(X[sel])
        e = np.linalg.norm(np.where(wa[todo], proj[todo] - uv[todo], 0.0), axis=2)
        e = np.where(np.isnan(e), np.inf, e)
        err[todo] = e
        e = np.where(used[todo], e, -np.inf)
        worst = np.argmax(e, axis=1)
        drop = used[todo].copy()
        drop[np.arange(todo.size), worst] = False
        bad = ((e[np.arange(todo.size), worst] > max_reprojection_error) & (used[todo].sum(1) >= 3)
               & (n_eq(wa[todo], drop) >= 3))
        todo = todo[bad]
        used[todo, worst[bad]] = False
    worst_err = np.where(used, err, -np.inf).max(1)
    keep = (used.sum(1) >= 2) & (worst_err <= max_reprojection_error) & np.isfinite(X).all(1) & (n_eq(wa, used) >= 3)
    X[~keep] = np.nan
    used[~keep] = False
    fill = ~wa & np.isfinite(proj) & used[..., None]
    uv[fill] = proj[fill]
    return X, used, proj


def _cut_axes(tracklets, cameras):
    """The tracklets with the cut coordinate (``cx`` / ``cy``) of border-cut boxes set to NaN."""
    tr = tracklets.copy()
    W = tr["camera_id"].map({c: cameras[c].size[0] for c in cameras}).to_numpy(float)
    H = tr["camera_id"].map({c: cameras[c].size[1] for c in cameras}).to_numpy(float)
    tr.loc[(tr["x1"].to_numpy() <= _BORDER_PX) | (tr["x2"].to_numpy() >= W - 1 - _BORDER_PX), "cx"] = np.nan
    tr.loc[(tr["y1"].to_numpy() <= _BORDER_PX) | (tr["y2"].to_numpy() >= H - 1 - _BORDER_PX), "cy"] = np.nan
    return tr


def main() -> None:
    import yaml

    for session, cfg_file, cams in SYNTHETIC:
        base = REPO / "results" / session
        if not session.startswith("synthetic_hard") or not (base / "track_2d").exists():
            continue
        tr = read_tables(sorted((base / "track_2d").glob("cam*.parquet")), TRACKLET2D)
        rig = load_calibration(base / "simulate" / "calibration.toml")
        cameras = {c: rig[c] for c in cams}
        gt = read_gt3d(base / "simulate" / "gt3d.csv")
        points, res = _run(tr, cameras, cfg_file, "frames", full=True)
        cfg = T.TriangulationConfig.from_dict(yaml.safe_load((REPO / cfg_file).read_text()).get("triangulate"))
        orig = T.triangulate_points
        T.triangulate_points = _triangulate_points_axes
        try:
            cut, _ = T.triangulate(_cut_axes(res.tracklets, cameras), res.association, cameras, cfg)
        finally:
            T.triangulate_points = orig
        row = []
        for name, p in (("as is", points), ("cut axis dropped", cut)):
            m = evaluate_3d_tracking(p, gt, 0.02)
            row.append(f"{name}: IDF1 {m['IDF1']:.3f} HOTA {m['HOTA']:.3f} tracks {m['n_tracks_3d']} "
                       f"ceiling {_ceiling(p, gt):.3f}")
        print(f"[{session}] " + " | ".join(row), flush=True)


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    main()
