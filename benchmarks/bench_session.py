"""Benchmark the session file and QC at scale (a script, not a test).

1. ``assemble`` peak memory: synthetic stage tables (4 cameras x 10 targets) of
   10k and 100k frames, written as the workflow writes them (one parquet per
   camera and 1000-frame chunk, one points3d.parquet), assembled by
   ``mctrack.io.session.assemble_session`` (what the assemble rule runs) in a
   fresh interpreter; peak RSS (VmHWM) is compared with a bare interpreter that only
   imports the same libraries (numpy, pandas, pyarrow, h5py) — the floor.
   The 100k / 10k ratio must be <= 1.5 (memory flat in session length).
2. ``qc``: 12 cameras x 50 targets x 100k frames (60M tracklet rows, 60M
   detections, 5M 3D points, 60M residuals) reduced and plotted by
   ``mctrack.qc.collect_qc_data`` + ``make_qc_plots`` (what the qc rule runs),
   pinned to 2 cores with ``taskset`` when available; wall time must be <= 120 s.
3. Reading one global id's trajectory vs the whole dense block from a session
   with 2000 global ids (the chunking along K).

Usage: ``python benchmarks/bench_session.py [--skip-qc | --only-qc] [--frames 10000 100000]``.
Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, RESIDUALS, TRACKLET2D, write_table  # noqa: E402


def make_stage_files(out: Path, n_cameras: int, n_targets: int, n_frames: int, chunk: int, residuals: bool,
                     seed: int = 0) -> dict:
    """Workflow-shaped stage files: per camera/chunk detections + tracklets, association, points, residuals.

    Every target is seen by every camera in every frame except short gaps
    (5 coasted frames every ~400 frames); a camera's track of a target
    restarts with a new track id every 5000 frames (fragments).
    """
    rng = np.random.default_rng(seed)
    cams = [f"cam{i + 1:02d}" for i in range(n_cameras)]
    det_files, tr_files, assoc = [], [], []
    for ci, cam in enumerate(cams):
        for k, t0 in enumerate(range(0, n_frames, chunk)):
            t1 = min(t0 + chunk, n_frames)
            f, n = np.meshgrid(np.arange(t0, t1), np.arange(n_targets), indexing="ij")
            f, n = f.ravel(), n.ravel()
            cx = 100 + 40 * n + 20 * np.sin(f / 50 + ci)
            cy = 100 + 10 * n + 20 * np.cos(f / 70 + ci)
            coast = ((f + 37 * n + 11 * ci) % 400) < 5
            tid = n * 1000 + f // 5000
            status = np.where(coast, "coasted", "detected")
            tr = pd.DataFrame({"camera_id": cam, "track_id": tid, "frame": f, "x1": cx - 5, "y1": cy - 5,
                               "x2": cx + 5, "y2": cy + 5, "cx": cx, "cy": cy, "frame_status": status,
                               "det_index": np.where(coast, -1, n), "confidence": np.where(coast, np.nan, 0.9)})
            p = out / f"track_2d/{cam}/{k:04d}.parquet"
            write_table(tr, TRACKLET2D, p)
            tr_files.append(p)
            d = tr[~coast].assign(class_id=0)
            p = out / f"detect/{cam}/{k:04d}.parquet"
            write_table(d, DETECTION, p)
            det_files.append(p)
        t = np.arange(n_targets)
        for frag in range(-(-n_frames // 5000)):
            assoc.append(pd.DataFrame({"camera_id": cam, "track_id": t * 1000 + frag, "global_id": t,
                                       "n_frames": 5000, "n_linked_cameras": n_cameras}))
    association = ASSOCIATION.coerce(pd.concat(assoc, ignore_index=True))
    write_table(association, ASSOCIATION, out / "association.parquet")
    f, g = np.meshgrid(np.arange(n_frames), np.arange(n_targets), indexing="ij")
    f, g = f.ravel(), g.ravel()
    pts = pd.DataFrame({"frame": f, "global_id": g, "x": np.sin(f / 100 + g), "y": np.cos(f / 100 + g),
                        "z": 0.1 * g, "reprojection_error": rng.gamma(2, 1, len(f)).astype(np.float32),
                        "n_cameras": n_cameras, "position_std": 0.002, "confidence": 0.9,
                        "std_x": 0.001, "std_y": 0.001, "std_z": 0.001})
    write_table(pts, POINTS3D, out / "points3d.parquet")
    res_path = None
    if residuals:
        import pyarrow as pa
        import pyarrow.parquet as pq

        m = len(f) * n_cameras
        codes = np.tile(np.arange(n_cameras, dtype=np.int32), len(f))
        cam_col = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(cams))
        r = rng.gamma(2, 1, m).astype(np.float32)
        table = pa.table({"frame": np.repeat(f, n_cameras), "global_id": np.repeat(g, n_cameras),
                          "camera_id": cam_col, "u_obs": r, "v_obs": r, "u_proj": r, "v_proj": r,
                          "residual_px": r})
        res_path = out / "residuals.parquet"
        pq.write_table(table, res_path)
        assert list(table.column_names) == list(RESIDUALS.columns)
    return {"cameras": cams, "detections": det_files, "tracklets": tr_files, "association": out / "association.parquet",
            "points": out / "points3d.parquet", "residuals": res_path, "n_frames": n_frames}


CHILD_ASSEMBLE = """
import resource, sys, json, pickle
sys.path.insert(0, {src!r})
from mctrack.io.session import assemble_session
from mctrack.tables import ASSOCIATION, read_table
a = pickle.load(open({args!r}, "rb"))
assemble_session({out!r}, a["n_frames"], a["cameras"], a["tracklets"], read_table(a["association"], ASSOCIATION),
                 a["points"], detections=a["detections"], session="bench", fps=30.0, chunk_frames=1024)
print(json.dumps({{"peak_rss_mb": {hwm}}}))
"""
# VmHWM (peak RSS of this process image): ru_maxrss would include the parent's peak at fork (Linux keeps it
# across exec), which here is the memory used to generate the test files
HWM = "int(next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')).split()[1]) / 1024"
CHILD_FLOOR = """
import json
import numpy, pandas, pyarrow.parquet, h5py
print(json.dumps({"peak_rss_mb": %s}))
""" % HWM


def _child(code: str, cores: str | None = None) -> tuple[dict, float]:
    """Run ``code`` in a fresh interpreter; return its last JSON line (plus ``cpu_s``, the child's user + system
    CPU seconds: the wall time it would take alone on free cores when single-threaded) and the wall time."""
    import resource

    cmd = [sys.executable, "-c", code]
    if cores and shutil.which("taskset"):
        cmd = ["taskset", "-c", cores] + cmd
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return res, wall


def bench_assemble(tmp: Path, frames: list[int]) -> dict:
    import pickle

    floor = _child(CHILD_FLOOR)[0]["peak_rss_mb"]
    print(f"bare interpreter + numpy/pandas/pyarrow/h5py: {floor:.0f} MB peak RSS")
    res = {"frames": frames, "peak_rss_mb": [], "seconds": [], "file_mb": [], "floor_mb": floor}
    for n in frames:
        d = tmp / f"assemble_{n}"
        files = make_stage_files(d, 4, 10, n, 1000, residuals=False)
        args = d / "args.pkl"
        pickle.dump({k: ([str(p) for p in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v)
                     for k, v in files.items()}, open(args, "wb"))
        out = d / "bench.h5"
        r, sec = _child(CHILD_ASSEMBLE.format(src=str(REPO / "src"), args=str(args), out=str(out), hwm=HWM))
        res["peak_rss_mb"].append(round(r["peak_rss_mb"], 1))
        res["seconds"].append(round(sec, 2))
        res["file_mb"].append(round(out.stat().st_size / 1e6, 1))
        print(f"assemble {n:>7} frames x 4 cameras x 10 targets ({n * 40:,} tracklet rows): peak RSS "
              f"{r['peak_rss_mb']:.0f} MB, {sec:.1f} s, file {out.stat().st_size / 1e6:.1f} MB")
        shutil.rmtree(d)
    res["ratio_longest_to_shortest"] = round(res["peak_rss_mb"][-1] / res["peak_rss_mb"][0], 3)
    print(f"peak RSS ratio {frames[-1]} / {frames[0]} frames: {res['ratio_longest_to_shortest']:.2f} (limit 1.5)")
    return res


CHILD_QC = """
import sys, json, pickle, time
sys.path.insert(0, {src!r})
t = time.perf_counter()
from mctrack.qc import PLOTS, collect_qc_data, make_qc_plots
from mctrack.tables import ASSOCIATION, read_table
a = pickle.load(open({args!r}, "rb"))
qc = collect_qc_data(a["detections"], a["tracklets"], read_table(a["association"], ASSOCIATION), a["points"],
                     a["residuals"], a["n_frames"], a["cameras"])
t1 = time.perf_counter()
outs = {{n: {outdir!r} + f"/{{n}}.png" for n in PLOTS}}
outs["summary"] = {outdir!r} + "/summary.tsv"
make_qc_plots(qc, outs, title="bench")
print(json.dumps({{"reduce_s": t1 - t, "plots_s": time.perf_counter() - t1}}))
"""


def bench_qc(tmp: Path, n_frames: int = 100_000) -> dict:
    import pickle

    d = tmp / "qc"
    t = time.perf_counter()
    files = make_stage_files(d, 12, 50, n_frames, 10_000, residuals=True)
    print(f"generated 12 cameras x 50 targets x {n_frames} frames in {time.perf_counter() - t:.0f} s")
    args = d / "args.pkl"
    pickle.dump({k: ([str(p) for p in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v)
                 for k, v in files.items()}, open(args, "wb"))
    outdir = Path(os.environ.get("BENCH_QC_OUT", d / "out"))
    outdir.mkdir(parents=True, exist_ok=True)
    r, sec = _child(CHILD_QC.format(src=str(REPO / "src"), args=str(args), outdir=str(outdir)), cores="0,1")
    load = os.getloadavg()[0]
    print(f"qc 12 x 50 x {n_frames}: {sec:.1f} s wall on 2 cores (reduce {r['reduce_s']:.1f} s, plots "
          f"{r['plots_s']:.1f} s), {r['cpu_s']:.1f} CPU s; load average {load:.1f}; outputs in {outdir}")
    print((outdir / "summary.tsv").read_text())
    return {"qc_seconds": round(sec, 1), "qc_cpu_s": round(r["cpu_s"], 1), "qc_reduce_s": round(r["reduce_s"], 1),
            "qc_plots_s": round(r["plots_s"], 1), "load_average": round(load, 1)}


def bench_trajectory(tmp: Path) -> dict:
    from mctrack.io.session import assemble_session, read_session

    T, K = 20_000, 2000
    assoc = ASSOCIATION.coerce(pd.DataFrame({"camera_id": "c1", "track_id": np.arange(K), "global_id": np.arange(K),
                                             "n_frames": T, "n_linked_cameras": 1}))
    f = np.repeat(np.arange(T), 20)
    g = np.tile(np.arange(0, K, 100), T)
    pts = POINTS3D.coerce(pd.DataFrame({"frame": f, "global_id": g, "x": f * 1e-3, "y": g * 1e-3, "z": 0.0,
                                        "reprojection_error": 1.0, "n_cameras": 2, "position_std": 0.01,
                                        "confidence": 0.9}))
    path = tmp / "traj.h5"
    assemble_session(path, T, ["c1"], TRACKLET2D.empty(), assoc, pts, chunk_frames=1024)
    s = read_session(path)
    t = time.perf_counter()
    one = s.trajectory(700)
    t_one = time.perf_counter() - t
    import h5py

    t = time.perf_counter()
    with h5py.File(path) as h:
        all_xyz = h["tracking/centroid_3d"][:]
    t_all = time.perf_counter() - t
    assert len(one) == T and all_xyz.shape == (T, K, 3)
    print(f"one trajectory of {K} global ids x {T} frames: {t_one * 1e3:.0f} ms; whole centroid_3d block "
          f"{t_all * 1e3:.0f} ms (ratio {t_all / t_one:.0f}x)")
    return {"trajectory_ms": round(t_one * 1e3, 1), "whole_block_ms": round(t_all * 1e3, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--skip-qc", action="store_true")
    ap.add_argument("--only-qc", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res = {}
        if not args.only_qc:
            res.update(bench_assemble(tmp, args.frames))
            res.update(bench_trajectory(tmp))
        if not args.skip_qc:
            res.update(bench_qc(tmp))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
