"""Association + triangulation throughput on synthetic tracklets (camera-frames per second, one core).

Scenes: the mctrack.simulate rig with 4 cameras × 10 targets and 12 cameras ×
50 targets, tracklet rows generated like ``tests/conftest.py::make_tracklets``
(projection + 0.5 px noise, 12 px boxes) and cut into fragments of about
``FRAGMENT`` frames (a new track id per fragment, as a 2D tracker losing its
target would give), so the number of tracklets grows with the frames. The rows
are generated block by block (``BLOCK`` frames, a generator: the session is
never held in memory). For each length (1k, 10k, 100k frames) the script times
``mctrack.associate.blocks.BlockAssociation`` (the frames method with 3D
feedback, block by block with carried state; it reads the blocks twice,
tracking and refined rows, as these rows carry no appearance, and each pass
regenerates them, which the timing includes: ``generate_pass_s`` is one pass
alone; the CPU time of each pass is printed below each case) plus ``mctrack.triangulate.triangulate`` of each block's
refined rows, and, as the bare-library reference in the same run,
``cv2.undistortPoints`` over all rows (the per-row floor any calibrated method
pays), printed as a ratio. Each case runs in a fresh subprocess so its peak
RSS is its own (``ru_maxrss``). Times are CPU
seconds of the process (``time.process_time``) with BLAS/OpenCV limited to one
thread, i.e. one core, so a busy machine inflates them less than wall time.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_associate.py [--quick | --full] \
        [--method frames|tracklets]

``--method`` picks ``associate.method`` (default ``frames``, the per-frame 3D
tracking the fish configs use; ``tracklets`` is whole-tracklet grouping, which
has no block form: the whole session goes to ``associate_session``).

Ends with one JSON line ``{"camera_frames_per_s": <4×10 at the largest
length>, "frames": [...], "peak_rss_mb": [...], "cases": [...]}``.
:func:`results` gives ``benchmarks/run_all.py`` the issue's three figures against its budgets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

FRAGMENT = 1000
BLOCK = 1000   # frames per block (a chunk of every camera)


def _rig(n_cams: int, n_targets: int, n_frames: int, seed: int = 0):
    """Cameras, a base trajectory ``(L, N, 3)`` (L ≤ 2000 frames) and per-camera fragment offsets."""
    import numpy as np

    from mctrack.simulate import SimulationConfig, make_rig, simulate_trajectories

    base = SimulationConfig(seed=seed, n_targets=n_targets, n_frames=min(n_frames, 2000))
    cams = {c.name: c for c in make_rig([f"c{i + 1}" for i in range(n_cams)], base)}
    pos = simulate_trajectories(base)
    rng = np.random.default_rng(seed)
    offsets = {name: rng.integers(0, FRAGMENT, n_targets) for name in cams}  # fragments end at different frames
    return cams, pos, offsets


def _blocks(cams, pos, offsets, n_frames: int, block: int = BLOCK, seed: int = 0):
    """TRACKLET2D rows of frames ``[lo, lo + block)``, one DataFrame per block (a generator: the session is
    never held). The base trajectory is tiled back and forth (continuous); 0.5 px noise, 12 px boxes."""
    import numpy as np
    import pandas as pd

    from mctrack.tables import TRACKLET2D

    L, N, _ = pos.shape
    for b, lo in enumerate(range(0, n_frames, block)):
        t_all = np.arange(lo, min(lo + block, n_frames))
        k, i = np.divmod(t_all, L)
        P = pos[np.where(k % 2 == 0, i, L - 1 - i)]
        T = len(t_all)
        parts = []
        for ci, (name, cam) in enumerate(cams.items()):
            rng = np.random.default_rng([seed, b, ci])
            uv = cam.project(P.reshape(-1, 3)).reshape(T, N, 2).astype(np.float32)
            uv += rng.normal(0, 0.5, uv.shape).astype(np.float32)
            ok = np.isfinite(uv).all(2) & (uv[..., 0] > 0) & (uv[..., 0] < cam.size[0]) & (uv[..., 1] > 0) & \
                (uv[..., 1] < cam.size[1])
            t, n = np.nonzero(ok)
            c = uv[t, n]
            frag = (t_all[t] + offsets[name][n]) // FRAGMENT
            parts.append(pd.DataFrame({
                "camera_id": name, "track_id": n.astype(np.int64) * 100000 + frag, "frame": t_all[t].astype(np.int64),
                "x1": c[:, 0] - 6, "y1": c[:, 1] - 6, "x2": c[:, 0] + 6, "y2": c[:, 1] + 6, "cx": c[:, 0],
                "cy": c[:, 1], "frame_status": "detected", "det_index": n.astype(np.int32),
                "confidence": np.float32(0.9)}))
        yield TRACKLET2D.coerce(pd.concat(parts, ignore_index=True))


def _scene(n_cams: int, n_targets: int, n_frames: int, seed: int = 0):
    """The whole session at once (small checks only): cameras and one TRACKLET2D table."""
    import pandas as pd

    cams, pos, offsets = _rig(n_cams, n_targets, n_frames, seed)
    return cams, pd.concat(list(_blocks(cams, pos, offsets, n_frames, seed=seed)), ignore_index=True)


def run_case(n_cams: int, n_targets: int, n_frames: int, method: str = "frames") -> dict:
    """Time one case in this process; returns a dict with the figures."""
    import resource

    import cv2
    import numpy as np

    from mctrack.associate import AssociationConfig
    from mctrack.associate.blocks import BlockAssociation
    from mctrack.triangulate import TriangulationConfig, triangulate

    cv2.setNumThreads(1)
    if method != "frames":
        return _run_whole(n_cams, n_targets, n_frames, method)
    cams, pos, offsets = _rig(n_cams, n_targets, n_frames)
    t0 = time.process_time()
    rows = 0
    t_und = 0.0
    cam0 = next(iter(cams.values()))
    for b in _blocks(cams, pos, offsets, n_frames):   # one pass of the generator, and the bare-library reference
        rows += len(b)
        uv = b[["cx", "cy"]].to_numpy(np.float64).reshape(-1, 1, 2)
        t3 = time.process_time()
        cv2.undistortPoints(uv, cam0.K, cam0.dist)
        t_und += time.process_time() - t3
    gen = time.process_time() - t0 - t_und
    n_pass = [0]

    def blocks():
        n_pass[0] += 1
        return _blocks(cams, pos, offsets, n_frames)

    t0 = time.process_time()
    ba = BlockAssociation(blocks, cams, AssociationConfig(method=method))
    assoc = ba.association
    t_assoc = time.process_time() - t0
    t_tri = 0.0
    n_points = 0
    t1 = time.process_time()
    for block in ba.tracklets():   # refined rows of one block, then its 3D points (the triangulate rule's job)
        t2 = time.process_time()
        points, _ = triangulate(block, assoc, cams, TriangulationConfig())
        t_tri += time.process_time() - t2
        n_points += len(points)
    t_out = time.process_time() - t1 - t_tri
    ba.close()
    passes = {k: round(v, 3) for k, v in ba.timings.items()}
    passes["refined_rows"] = round(t_out, 3)
    total = t_assoc + t_out + t_tri
    cam_frames = n_cams * n_frames
    n_targets_found = int(assoc.loc[assoc["n_linked_cameras"] >= 2, "global_id"].nunique())
    return {"method": method, "cameras": n_cams, "targets": n_targets, "frames": n_frames, "rows": rows,
            "tracklets": int(len(assoc)), "global_ids_multi_camera": n_targets_found, "points": n_points,
            "associate_s": t_assoc + t_out, "triangulate_s": t_tri, "generate_pass_s": gen, "passes": n_pass[0],
            "camera_frames_per_s": cam_frames / total,
            "camera_frames_per_s_without_generation": cam_frames / max(total - n_pass[0] * gen, 1e-9),
            "undistort_all_rows_s": t_und, "ratio_to_undistort": total / max(t_und, 1e-9), "pass_s": passes,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_whole(n_cams: int, n_targets: int, n_frames: int, method: str) -> dict:
    """``associate_session`` + ``triangulate`` on the whole session at once (methods without a block form)."""
    import resource

    from mctrack.associate import AssociationConfig, associate_session
    from mctrack.triangulate import TriangulationConfig, triangulate

    cams, tr = _scene(n_cams, n_targets, n_frames)
    t0 = time.process_time()
    res = associate_session(tr, cams, AssociationConfig(method=method))
    t1 = time.process_time()
    triangulate(res.tracklets, res.association, cams, TriangulationConfig())
    t2 = time.process_time()
    a = res.association
    return {"method": method, "cameras": n_cams, "targets": n_targets, "frames": n_frames, "rows": len(tr),
            "tracklets": int(len(a)), "global_ids_multi_camera": int(a.loc[a["n_linked_cameras"] >= 2,
                                                                             "global_id"].nunique()),
            "associate_s": t1 - t0, "triangulate_s": t2 - t1, "camera_frames_per_s": n_cams * n_frames / (t2 - t0),
            "ratio_to_undistort": float("nan"),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _case(c: int, t: int, n: int, method: str = "frames") -> dict:
    """One case in a fresh subprocess (one core), as :func:`main` runs it."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, "--case", str(c), str(t), str(n), method], capture_output=True,
                          text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def results() -> list[dict]:
    """Entries for ``benchmarks/run_all.py``: issue 6's figures (4 × 10 at 10k and 100k frames, 12 × 50 at 10k).

    Baselines are the issue's budgets: 10,000 camera-frames/s on one core, growth 10k → 100k within
    1.2× of linear, 12 × 50 within 8 GB.
    """
    r10, r100, big = _case(4, 10, 10000), _case(4, 10, 100000), _case(12, 50, 10000)
    growth = (r100["associate_s"] + r100["triangulate_s"]) / (r10["associate_s"] + r10["triangulate_s"]) / 10
    return [
        {"name": "associate_triangulate_4cams_x_10targets_100k_frames (frames method, CPU time of one core; "
                 "baseline = issue 6's 10,000)", "ours": round(r100["camera_frames_per_s"]), "baseline": 10000,
         "unit": "camera-frames/s", "ratio": r100["camera_frames_per_s"] / 10000},
        {"name": "associate_triangulate growth 10k -> 100k frames (time / 10x; baseline = 1.2 budget)",
         "ours": round(growth, 3), "baseline": 1.2, "unit": "x linear", "ratio": 1.2 / growth},
        {"name": f"associate_triangulate_12cams_x_50targets_10k_frames peak RSS ({big['camera_frames_per_s']:.0f} "
                 "camera-frames/s; baseline = 8 GB budget)", "ours": round(big["peak_rss_mb"]), "baseline": 8192,
         "unit": "MB", "ratio": 8192 / big["peak_rss_mb"]},
    ]


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
    results = []
    for c, t, n in cases:
        try:
            r = _case(c, t, n, method)
        except subprocess.CalledProcessError as e:
            print(f"{c} cameras x {t} targets x {n} frames: FAILED\n{e.stderr[-2000:]}", flush=True)
            results.append({"cameras": c, "targets": t, "frames": n, "failed": True})
            continue
        results.append(r)
        print(f"{c:2d} cameras x {t:2d} targets x {n:6d} frames: {r['camera_frames_per_s']:10.0f} camera-frames/s "
              f"(associate {r['associate_s']:.2f} s + triangulate {r['triangulate_s']:.2f} s; "
              f"{r['tracklets']} tracklets -> {r['global_ids_multi_camera']} multi-camera ids); "
              f"peak RSS {r['peak_rss_mb']:.0f} MB; {r['ratio_to_undistort']:.1f}x one cv2.undistortPoints "
              f"of all {r['rows']} rows", flush=True)
        if r.get("pass_s"):
            print("    CPU s per pass: " + ", ".join(f"{k} {v:.2f}" for k, v in r["pass_s"].items()) +
                  f"; triangulate {r['triangulate_s']:.2f} (generating the blocks: {r['generate_pass_s']:.2f} "
                  f"per pass, {r['passes']} passes, inside track and refined_rows)", flush=True)
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
