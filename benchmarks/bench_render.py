"""Benchmark: mctrack.render.render_camera_clip vs a bare decode → cv2.rectangle → PyAV encode loop.

Both render the same video with the same boxes and the same x264 settings of
each preset (``preview``: long side 640 px, every 2nd frame, CRF 28
veryfast; ``final``: source size and rate, CRF 18 medium). The bare loop
decodes with :func:`mctrack.video.read_frames`, resizes (preview), draws one
``cv2.rectangle`` per box and encodes with PyAV; ours additionally draws ids,
dashed coasted boxes, trails, labels and the frame/time stamp, through the
real overlay pipeline. Throughput is session frames covered per second for
one camera: per wall-clock second (x264 and the decoder use the machine's
cores, 2 here) and per CPU second of the process (all threads; robust when
other processes load the machine). The ratio ours/bare is the overlay
pipeline's cost (goal ≥ 0.8). Best of ``--repeat`` interleaved runs.

Video: Pose2Sim cam01 (1088×1920, 60 fps, 100 frames; ../shared or
$MCTRACK_SHARED), or with ``--synthetic`` (or without the shared data) a
640×480 noise-textured clip. Boxes: ``--targets`` synthetic walkers (10 % of
rows coasted), one global id each. Usage::

    python benchmarks/bench_render.py [--frames 100] [--targets 8] [--repeat 2] [--synthetic]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mctrack.render import H264Writer, RenderConfig, prepare_overlay, render_camera_clip
from mctrack.tables import ASSOCIATION, TRACKLET2D
from mctrack.video import read_frames, video_info

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCTRACK_SHARED", REPO.parent / "shared"))
POSE2SIM = SHARED / "data" / "pose2sim_multiperson" / "videos" / "cam01.mp4"


def synthetic_video(path: Path, n: int, size=(640, 480)) -> Path:
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), (0, 0), 3)
    with H264Writer(path, 30.0, *size, crf=23) as wr:
        for f in range(n):
            wr.write(np.roll(base, 2 * f, axis=1))
    return path


def walkers(n_frames: int, n: int, width: int, height: int, seed: int = 0) -> pd.DataFrame:
    """TRACKLET2D rows of n boxes (width/10 × height/6 px) bouncing in the image; 10 % coasted."""
    rng = np.random.default_rng(seed)
    bw, bh = width / 10, height / 6
    pos = rng.uniform([0, 0], [width - bw, height - bh], (n, 2))
    vel = rng.uniform(-0.01, 0.01, (n, 2)) * [width, height]
    rows = []
    for f in range(n_frames):
        pos += vel
        for d, hi in ((0, width - bw), (1, height - bh)):
            out = (pos[:, d] < 0) | (pos[:, d] > hi)
            vel[out, d] *= -1
            pos[:, d] = np.clip(pos[:, d], 0, hi)
        st = np.where(rng.random(n) < 0.1, "coasted", "detected")
        rows.append(pd.DataFrame({"camera_id": "cam", "track_id": np.arange(n) + 1, "frame": f, "x1": pos[:, 0],
                                  "y1": pos[:, 1], "x2": pos[:, 0] + bw, "y2": pos[:, 1] + bh,
                                  "cx": pos[:, 0] + bw / 2, "cy": pos[:, 1] + bh / 2, "frame_status": st,
                                  "det_index": np.where(st == "detected", np.arange(n), -1), "confidence": 0.9}))
    return TRACKLET2D.coerce(pd.concat(rows, ignore_index=True))


def bare_loop(video: Path, n: int, boxes: np.ndarray, frames_of_rows: np.ndarray, cfg: RenderConfig,
              fps: float, out: Path) -> None:
    """Decode → resize (preset) → one cv2.rectangle per box → PyAV encode; nothing else."""
    p = cfg.preset
    info = video_info(video)
    w, h = p.output_size(info.width, info.height)
    s = w / info.width
    starts = np.searchsorted(frames_of_rows, np.arange(n + 1))
    with H264Writer(out, fps / p.frame_step, w, h, p.crf, p.x264_preset) as wr:
        for f, img in read_frames(video, 0, n):
            if f % p.frame_step:
                continue
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            for x1, y1, x2, y2 in (boxes[starts[f]:starts[f + 1]] * s).astype(int):
                cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 2)
            wr.write(img)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_render_"))
    if args.synthetic or not POSE2SIM.exists():
        video, name = synthetic_video(tmp / "src.mp4", args.frames), "synthetic 640x480"
    else:
        video, name = POSE2SIM, "Pose2Sim cam01 1088x1920"
    info = video_info(video)
    n = min(args.frames, info.n_frames)
    tr = walkers(n, args.targets, info.width, info.height)
    assoc = ASSOCIATION.coerce(pd.DataFrame({"camera_id": "cam", "track_id": np.arange(args.targets) + 1,
                                             "global_id": np.arange(args.targets), "n_frames": n,
                                             "n_linked_cameras": 1}))
    ov = prepare_overlay("cam", tr, assoc)
    boxes = tr[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    print(f"video: {name}, {n} frames, {args.targets} targets; {os.cpu_count()} cores; wall-clock, best of "
          f"{args.repeat}")
    print(f"{'preset':8s} {'ours fr/s':>10s} {'bare fr/s':>10s} {'ratio':>6s}   (session frames per wall second, 1 camera)")
    for preset in ("preview", "final"):
        cfg = RenderConfig.from_dict({"preset": preset})
        wall = {"ours": np.inf, "bare": np.inf}
        cpu = dict(wall)
        runs = {"ours": partial(render_camera_clip, video, 0, 0, n, ov, cfg, info.fps, tmp / f"ours_{preset}.mp4"),
                "bare": partial(bare_loop, video, n, boxes, tr["frame"].to_numpy(), cfg, info.fps,
                                tmp / f"bare_{preset}.mp4")}
        for _ in range(args.repeat):  # interleaved so machine load affects both alike
            for key, run in runs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                wall[key] = min(wall[key], time.perf_counter() - t0)
                cpu[key] = min(cpu[key], time.process_time() - c0)
        ours, bare = n / wall["ours"], n / wall["bare"]
        print(f"{preset:8s} {ours:10.1f} {bare:10.1f} {ours / bare:6.2f}   per CPU-second: ours "
              f"{n / cpu['ours']:.1f}, bare {n / cpu['bare']:.1f}, ratio {cpu['bare'] / cpu['ours']:.2f}")


if __name__ == "__main__":
    main()
