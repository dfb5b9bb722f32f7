"""Benchmark: the track_2d stage (Tracker2D.run + tracklet refinement) vs the bare boxmot update loop.

Both run in this process on the same detections with the same tracker and
parameters (the default ``track_2d`` config: BoT-SORT, det_thresh 0.6). The raw
loop gets per-frame ``(N, 6) float32`` arrays prepared before timing starts and
only calls ``BotSort.update(dets, None)``; our stage is timed end to end
(DETECTION table validation and per-frame slicing, the same boxmot update,
reading the internal track state, probation bookkeeping, building the
TRACKLET2D DataFrame, then :func:`mctrack.track2d.refine_tracklets`: linking,
interpolation, filtering). Printed: frames/s of both and the throughput ratio
ours / bare (= bare time / our time; target >= 0.9). Times are process CPU
seconds (``time.process_time``), best of ``--repeat`` interleaved runs.

Detections: TUD-Campus ground truth (../shared or $MCTRACK_SHARED) tiled in
time to ``--frames`` frames with jitter and 10 % dropped boxes, or, without the
shared data, a synthetic scene of ``--objects`` walkers. Usage::

    python benchmarks/bench_track2d.py [--frames 600] [--objects 10] [--repeat 3] [--synthetic]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mctrack.tables import DETECTION
from mctrack.track2d import RefineConfig, Tracker2D, TrackerConfig, refine_tracklets

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCTRACK_SHARED", REPO.parent / "shared"))
TUD_GT = SHARED / "data" / "tud_campus" / "gt.txt"


def tud_detections(n_frames: int, seed: int = 0) -> pd.DataFrame:
    """TUD-Campus GT boxes (71 frames) played forwards/backwards until n_frames, jittered, 10 % dropped."""
    a = np.loadtxt(TUD_GT, delimiter=",", ndmin=2)
    period = int(a[:, 0].max())
    rng = np.random.default_rng(seed)
    parts = []
    for rep in range(int(np.ceil(n_frames / period))):
        b = a.copy()
        src = b[:, 0] - 1
        b[:, 0] = rep * period + (src if rep % 2 == 0 else period - 1 - src)   # ping-pong: continuous motion
        parts.append(b)
    a = np.concatenate(parts)
    a = a[a[:, 0] < n_frames]
    a = a[rng.random(len(a)) >= 0.1]
    w, h = a[:, 4], a[:, 5]
    e = rng.normal(0, 0.03, (len(a), 4))
    df = pd.DataFrame({"camera_id": "tud", "frame": a[:, 0].astype(np.int64),
                       "x1": a[:, 2] + e[:, 0] * w, "y1": a[:, 3] + e[:, 1] * h,
                       "x2": a[:, 2] + w + e[:, 2] * w, "y2": a[:, 3] + h + e[:, 3] * h,
                       "confidence": rng.uniform(0.5, 1.0, len(a)), "class_id": 0})
    df = df.sort_values(["frame", "x1"], kind="stable")
    df["det_index"] = df.groupby("frame").cumcount()
    return DETECTION.coerce(df)


def synthetic_detections(n_frames: int, n_objects: int, seed: int = 0) -> pd.DataFrame:
    """n_objects 40x100 px walkers bouncing in a 1920x1080 image, jittered, 10 % dropped."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1880, 980], (n_objects, 2))
    vel = rng.uniform(-4, 4, (n_objects, 2))
    rows = []
    for f in range(n_frames):
        pos += vel
        for d in (0, 1):
            hi = 1880 if d == 0 else 980
            out = (pos[:, d] < 0) | (pos[:, d] > hi)
            vel[out, d] *= -1
            pos[:, d] = np.clip(pos[:, d], 0, hi)
        keep = rng.random(n_objects) >= 0.1
        p = pos[keep] + rng.normal(0, 1.5, (keep.sum(), 2))
        for i, (x, y) in enumerate(p):
            rows.append((f, i, x, y, x + 40, y + 100, rng.uniform(0.5, 1.0)))
    df = pd.DataFrame(rows, columns=["frame", "det_index", "x1", "y1", "x2", "y2", "confidence"])
    df["camera_id"] = "syn"
    df["class_id"] = 0
    return DETECTION.coerce(df)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--objects", type=int, default=10, help="walkers of the synthetic scene (no shared data)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings")
    ap.add_argument("--synthetic", action="store_true", help="use the synthetic scene even if TUD-Campus exists")
    args = ap.parse_args()

    from boxmot import BotSort

    if TUD_GT.exists() and not args.synthetic:
        det, source = tud_detections(args.frames), f"TUD-Campus GT tiled to {args.frames} frames"
    else:
        det, source = synthetic_detections(args.frames, args.objects), f"synthetic, {args.objects} walkers"
    cam = str(det.camera_id.iloc[0])
    n = args.frames
    fps = 25.0
    cfg = TrackerConfig.from_dict({}, fps=fps)  # the default: botsort, det_thresh 0.6, coast 1 s = 25 frames
    rcfg = RefineConfig()

    # raw boxmot loop inputs, prepared outside the timing
    fr = det.frame.to_numpy()
    bounds = np.searchsorted(fr, np.arange(n + 1))
    arr = np.column_stack([det[["x1", "y1", "x2", "y2", "confidence"]].to_numpy(np.float32),
                           det.class_id.to_numpy(np.float32)])
    per_frame = [arr[bounds[i]:bounds[i + 1]] for i in range(n)]

    def raw() -> int:
        trk = BotSort(track_high_thresh=cfg.det_thresh, new_track_thresh=cfg.det_thresh,
                      track_buffer=cfg.max_coast_frames, max_age=cfg.max_coast_frames, min_hits=cfg.n_init,
                      use_embeddings=False, use_cmc=False)
        rows = 0
        for dets in per_frame:
            rows += len(trk.update(dets, None))
        return rows

    def ours() -> int:
        return len(refine_tracklets(Tracker2D(cfg, cam).run(det, 0, n), fps, rcfg))

    import logging
    logging.getLogger("boxmot").setLevel(logging.WARNING)
    raw()
    ours()                                       # warm-up (imports, caches)
    # interleaved, best of N; CPU time of this process (robust to other load on shared cores)
    t_raw = t_ours = np.inf
    for _ in range(args.repeat):
        t0 = time.process_time()
        n_raw = raw()
        t1 = time.process_time()
        n_ours = ours()
        t2 = time.process_time()
        t_raw, t_ours = min(t_raw, t1 - t0), min(t_ours, t2 - t1)

    print(f"detections: {source}; {len(det)} boxes, {len(det) / n:.1f} per frame")
    print(f"bare boxmot BotSort.update loop      : {n / t_raw:8.1f} frames/s  ({t_raw * 1e3:.0f} ms CPU, "
          f"{n_raw} rows returned)")
    print(f"mctrack track_2d stage (+ refinement): {n / t_ours:8.1f} frames/s  ({t_ours * 1e3:.0f} ms CPU, "
          f"{n_ours} TRACKLET2D rows)")
    print(f"throughput ratio ours / bare: {t_raw / t_ours:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
