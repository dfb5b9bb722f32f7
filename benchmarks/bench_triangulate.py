"""Benchmark mctrack.triangulate against per-point and OpenCV baselines (a script, not a test).

Scene: the synthetic 4-camera rig (mctrack.simulate.make_rig), N random points in
the tank seen by all cameras with 1 px noise. Measured in the same run:

1. ours: ``triangulate_points`` — batched linear solve over all points, one
   Gauss–Newton refinement step, reprojection (with distortion), outlier and
   behind-camera gating, i.e. the whole stage's numeric work;
2. per-point loop: undistort once (vectorised), then one ``np.linalg.svd`` DLT
   per point — the pattern of Pose2Sim's ``weighted_triangulation`` and
   anipose's ``triangulate_simple`` — plus per-point reprojection;
3. OpenCV ``cv2.triangulatePoints`` on the first two cameras only (the library
   handles two views; it is vectorised over points).

Prints points/s of each and the ratio ours / baseline, and the median 3D error
of each, so speed is not bought with accuracy. Usage:
``python benchmarks/bench_triangulate.py [--points N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from mctrack.simulate import SimulationConfig, make_rig
from mctrack.triangulate import triangulate_points


def per_point_loop(uv, cams):
    """Per-point DLT with np.linalg.svd (Pose2Sim / anipose style)."""
    xy = np.stack([c.normalize(uv[:, i]) for i, c in enumerate(cams)], axis=1)
    Rts = [np.hstack([c.R, c.tvec[:, None]]) for c in cams]
    out = np.empty((len(uv), 3))
    for p in range(len(uv)):
        A = []
        for i, Rt in enumerate(Rts):
            x, y = xy[p, i]
            A.append(x * Rt[2] - Rt[0])
            A.append(y * Rt[2] - Rt[1])
        _, _, vt = np.linalg.svd(np.array(A))
        out[p] = vt[-1, :3] / vt[-1, 3]
        for c in cams:  # reprojection, as the stage computes residuals
            c.project(out[p][None])
    return out


def opencv_two_view(uv, cams):
    """cv2.triangulatePoints on cameras 0 and 1 (normalised coordinates)."""
    a, b = cams[0], cams[1]
    xa, xb = a.normalize(uv[:, 0]), b.normalize(uv[:, 1])
    Pa = np.hstack([a.R, a.tvec[:, None]])
    Pb = np.hstack([b.R, b.tvec[:, None]])
    Xh = cv2.triangulatePoints(Pa, Pb, xa.T, xb.T)
    X = (Xh[:3] / Xh[3]).T
    a.project(X), b.project(X)
    return X


def best_time(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cams = make_rig(["c1", "c2", "c3", "c4"], SimulationConfig())
    rng = np.random.default_rng(0)
    X = rng.uniform([-0.4, -0.4, 0.05], [0.4, 0.4, 0.45], (args.points, 3))
    uv = np.stack([c.project(X) for c in cams], axis=1) + rng.normal(0, 1.0, (args.points, len(cams), 2))
    mask = np.ones(uv.shape[:2], bool)

    t_ours, (X_ours, _, _) = best_time(lambda: triangulate_points(uv, mask, cams), args.repeat)
    n_loop = min(args.points, 5000)
    t_loop, X_loop = best_time(lambda: per_point_loop(uv[:n_loop], cams), 1)
    t_cv, X_cv = best_time(lambda: opencv_two_view(uv, cams), args.repeat)

    def err(Xh, n):
        return np.median(np.linalg.norm(Xh - X[:n], axis=1)) * 1000

    rate_ours, rate_loop, rate_cv = args.points / t_ours, n_loop / t_loop, args.points / t_cv
    print(f"points: {args.points} (per-point loop timed on {n_loop}), 4 cameras, 1 px noise")
    print(f"ours (batched, refined, 4 views) : {rate_ours:12.0f} points/s   median error {err(X_ours, args.points):.2f} mm")
    print(f"per-point np.linalg.svd loop     : {rate_loop:12.0f} points/s   median error {err(X_loop, n_loop):.2f} mm")
    print(f"cv2.triangulatePoints (2 views)  : {rate_cv:12.0f} points/s   median error {err(X_cv, args.points):.2f} mm")
    print(f"ratio ours / per-point loop      : {rate_ours / rate_loop:.1f}x")
    print(f"ratio ours / cv2 two-view        : {rate_ours / rate_cv:.2f}x")


if __name__ == "__main__":
    main()
