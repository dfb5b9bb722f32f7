"""Association + triangulation throughput on synthetic tracklets (camera-frames per second, one core).

Scenes: the mctrack.simulate rig with 4 cameras × 10 targets and 12 cameras ×
50 targets, tracklet rows generated like ``tests/conftest.py::make_tracklets``
(projection + 0.5 px noise, 12 px boxes) and cut into fragments of about
``FRAGMENT`` frames (a new track id per fragment, as a 2D tracker losing its
target would give), so the number of tracklets grows with the frames. For each
length (1k, 10k, 100k frames) the script times
``mctrack.associate.associate_session`` (3D feedback on) plus
``mctrack.triangulate.triangulate`` of the result, and, as the bare-library
reference in the same run, one batched ``cv2.undistortPoints`` over all rows
(the per-row floor any calibrated method pays), printed as a ratio. Each
case runs in a fresh subprocess so its peak RSS is its own. Times are CPU
seconds of the process (``time.process_time``) with BLAS/OpenCV limited to one
thread, i.e. one core, so a busy machine inflates them less than wall time.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_associate.py [--quick | --full] \
        [--method frames|tracklets]

``--method`` picks ``associate.method`` (default ``frames``, the per-frame 3D
tracking the fish configs use; ``tracklets`` is whole-tracklet grouping).

Ends with one JSON line ``{"camera_frames_per_s": <4×10 at the largest
length>, "frames": [...], "peak_rss_mb": [...], "cases": [...]}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

FRAGMENT = 1000


def _scene(n_cams: int, n_targets: int, n_frames: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    from mctrack.simulate import SimulationConfig, make_rig, simulate_trajectories
    from mctrack.tables import TRACKLET2D

    base = SimulationConfig(seed=seed, n_targets=n_targets, n_frames=min(n_frames, 2000))
    cams = {c.name: c for c in make_rig([f"c{i + 1}" for i in range(n_cams)], base)}
    pos = simulate_trajectories(base)
    reps = -(-n_frames // len(pos))  # tile the trajectory (back and forth keeps it continuous)
    pos = np.concatenate([pos if k % 2 == 0 else pos[::-1] for k in range(reps)])[:n_frames]
    rng = np.random.default_rng(seed)
    T, N, _ = pos.shape
    parts = []
    for ci, (name, cam) in enumerate(cams.items()):
        uv = cam.project(pos.reshape(-1, 3)).reshape(T, N, 2).astype(np.float32)
        uv += rng.normal(0, 0.5, uv.shape).astype(np.float32)
        ok = np.isfinite(uv).all(2) & (uv[..., 0] > 0) & (uv[..., 0] < cam.size[0]) & (uv[..., 1] > 0) & \
            (uv[..., 1] < cam.size[1])
        t, n = np.nonzero(ok)
        c = uv[t, n]
        offset = rng.integers(0, FRAGMENT, N)  # fragments end at different frames per target and camera
        frag = (t + offset[n]) // FRAGMENT
        parts.append(pd.DataFrame({
            "camera_id": name, "track_id": n.astype(np.int64) * 100000 + frag, "frame": t.astype(np.int64),
            "x1": c[:, 0] - 6, "y1": c[:, 1] - 6, "x2": c[:, 0] + 6, "y2": c[:, 1] + 6, "cx": c[:, 0], "cy": c[:, 1],
            "frame_status": "detected", "det_index": n.astype(np.int32), "confidence": np.float32(0.9)}))
    return cams, TRACKLET2D.coerce(pd.concat(parts, ignore_index=True))


def run_case(n_cams: int, n_targets: int, n_frames: int, method: str = "frames") -> dict:
    """Time one case in this process; returns a dict with the figures."""
    import resource

    import cv2
    import numpy as np

    from mctrack.associate import AssociationConfig, associate_session
    from mctrack.triangulate import TriangulationConfig, triangulate

    cv2.setNumThreads(1)
    cams, tr = _scene(n_cams, n_targets, n_frames)
    t0 = time.process_time()
    res = associate_session(tr, cams, AssociationConfig(method=method))
    t1 = time.process_time()
    points, _ = triangulate(res.tracklets, res.association, cams, TriangulationConfig())
    t2 = time.process_time()
    uv = tr[["cx", "cy"]].to_numpy(np.float64)
    cam0 = next(iter(cams.values()))
    t3 = time.process_time()
    cv2.undistortPoints(uv.reshape(-1, 1, 2), cam0.K, cam0.dist)
    t4 = time.process_time()
    cam_frames = n_cams * n_frames
    n_targets_found = int(res.association.loc[res.association["n_linked_cameras"] >= 2, "global_id"].nunique())
    return {"method": method, "cameras": n_cams, "targets": n_targets, "frames": n_frames, "rows": len(tr),
            "tracklets": int(len(res.association)), "global_ids_multi_camera": n_targets_found,
            "associate_s": t1 - t0, "triangulate_s": t2 - t1,
            "camera_frames_per_s": cam_frames / (t2 - t0), "undistort_all_rows_s": t4 - t3,
            "ratio_to_undistort": (t2 - t0) / max(t4 - t3, 1e-9),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    quick = "--quick" in sys.argv
    full = "--full" in sys.argv
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        print(json.dumps(run_case(*map(int, sys.argv[2:5]), method=sys.argv[5])))
        return
    method = sys.argv[sys.argv.index("--method") + 1] if "--method" in sys.argv else "frames"
    lengths = [1000, 10000] if quick else [1000, 10000, 100000]
    # 12 x 50 is ~50x slower per camera-frame (dense scene: many near-intersecting ray pairs) and
    # 100k frames are 60 M tracklet rows: 1k frames by default, all lengths with --full
    cases = [(4, 10, n) for n in lengths] + [(12, 50, n) for n in lengths if full or n <= 1000]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = []
    for c, t, n in cases:
        proc = subprocess.run([sys.executable, __file__, "--case", str(c), str(t), str(n), method], capture_output=True,
                              text=True, env=env)
        if proc.returncode != 0:
            print(f"{c} cameras x {t} targets x {n} frames: FAILED\n{proc.stderr[-2000:]}", flush=True)
            results.append({"cameras": c, "targets": t, "frames": n, "failed": True})
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{c:2d} cameras x {t:2d} targets x {n:6d} frames: {r['camera_frames_per_s']:10.0f} camera-frames/s "
              f"(associate {r['associate_s']:.2f} s + triangulate {r['triangulate_s']:.2f} s; "
              f"{r['tracklets']} tracklets -> {r['global_ids_multi_camera']} multi-camera ids); "
              f"peak RSS {r['peak_rss_mb']:.0f} MB; {r['ratio_to_undistort']:.1f}x one cv2.undistortPoints "
              f"of all {r['rows']} rows", flush=True)
    small = [r for r in results if r.get("cameras") == 4 and not r.get("failed")]
    for a, b in zip(small, small[1:]):
        t_a = a["associate_s"] + a["triangulate_s"]
        t_b = b["associate_s"] + b["triangulate_s"]
        print(f"4x10 growth {a['frames']} -> {b['frames']} frames: time x{t_b / t_a:.2f} for frames "
              f"x{b['frames'] / a['frames']:.0f} ({t_b / t_a / (b['frames'] / a['frames']):.2f} of linear)")
    print(json.dumps({"method": method, "camera_frames_per_s": small[-1]["camera_frames_per_s"] if small else None,
                      "frames": [r["frames"] for r in results],
                      "peak_rss_mb": [r.get("peak_rss_mb") for r in results],
                      "cases": [f"{r['cameras']}x{r['targets']}" for r in results]}))


if __name__ == "__main__":
    main()
