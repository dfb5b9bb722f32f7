"""Benchmark mctrack.detect against the bare libraries it wraps (a script, not a test).

1. ``background`` backend: ``make_detector(...).detect_chunk`` on whole videos
   (a fresh detector, so priming is included, as in one Snakemake job) vs a
   bare OpenCV loop: ``cv2.VideoCapture`` decode -> ``MOG2.apply`` (adaptive,
   default parameters) -> the same open/close -> ``connectedComponentsWithStats``
   -> a Python loop over components building boxes. Also reports our per-frame
   rate with the primed model cached (priming excluded).
2. ``ultralytics`` backend on TUD-Campus (if the shared data and model exist):
   ``detect_chunk`` vs a bare ``YOLO(model).predict(frame)`` loop over
   ``cv2.VideoCapture`` frames, same thresholds, both warmed up first.

Videos: the shared Pose2Sim cam01 (1088x1920 BGR, 100 frames) and FishPy cam1
(2048x1536 grey, 57 frames) when ``$MCTRACK_SHARED`` (default
``<repo>/../shared``) exists, else a synthetic 640x480 video made here.
Runtime: well under a minute on 2 CPU cores.

Usage: ``python benchmarks/bench_detect.py [--repeat N]`` (best of N runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mctrack import detect
from mctrack.video import VideoWriter, video_info

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCTRACK_SHARED", REPO.parent / "shared"))
BG_VIDEOS = [SHARED / "data" / "pose2sim_multiperson" / "videos" / "cam01.mp4",
             SHARED / "data" / "fishpy_tank" / "videos" / "cam1.mp4"]
TUD = SHARED / "data" / "tud_campus" / "TUD-Campus.mp4"
YOLO_OV = SHARED / "models" / "yolov8n_int8_openvino_model"


def best_of(fn, repeat: int) -> tuple[float, object]:
    """Run ``fn`` ``repeat`` times; return (best wall time in s, last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def synthetic_video(path: Path, n: int = 150, w: int = 640, h: int = 480) -> Path:
    rng = np.random.default_rng(0)
    tex = cv2.resize(rng.uniform(0, 255, (h // 8, w // 8, 3)).astype(np.float32), (w, h))
    bg = np.clip(120 + 0.5 * (tex - 128), 0, 255)
    with VideoWriter(path, fps=25, width=w, height=h) as vw:
        for f in range(n):
            img = bg.copy()
            for k in range(6):
                cx = int((40 + 90 * k + 4 * f) % w)
                cy = int(60 + 60 * k + 20 * np.sin(f / 10 + k))
                cv2.circle(img, (cx, cy), 15, (20, 20, 20), -1)
            vw.write(np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8))
    return path


def bare_mog2(video: Path, min_area: int, open_px: int, close_px: int) -> list[tuple[int, list]]:
    """The raw-library baseline: decode, MOG2 (adaptive), open/close, connected components, loop."""
    mog = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
    k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_px, open_px))
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px))
    cap = cv2.VideoCapture(str(video))
    out, f = [], 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        mask = mog.apply(img)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, k_open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, k_close)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        boxes = []
        for x, y, w, h, a in stats[1:]:
            if a >= min_area:
                boxes.append((x, y, x + w, y + h))
        out.append((f, boxes))
        f += 1
    cap.release()
    return out


def bench_background(video: Path, repeat: int) -> None:
    cfg = {"backend": "background"}
    p = detect.make_detector(cfg).params
    n = video_info(video).n_frames
    t_ours, df = best_of(lambda: detect.make_detector(cfg).detect_chunk(video, 0, n, "cam"), repeat)
    det = detect.make_detector(cfg)
    t_prime, _ = best_of(lambda: (det._cache.clear(), det.primed_model(video)), 1)
    t_steady, _ = best_of(lambda: det.detect_chunk(video, 0, n, "cam"), repeat)
    t_bare, bare = best_of(lambda: bare_mog2(video, p["min_area"], p["open_px"], p["close_px"]), repeat)
    grey = det.primed_model(video)[2]
    info = video_info(video)
    print(f"\n[background] {video.name}: {n} frames {info.width}x{info.height} "
          f"({'grey' if grey else 'BGR'} model)")
    print(f"  ours, fresh detector (priming {t_prime:.2f} s incl.): {n / t_ours:7.1f} frames/s"
          f"   ({len(df) / n:.1f} det/frame)")
    print(f"  ours, primed model cached                : {n / t_steady:7.1f} frames/s")
    print(f"  bare cv2 MOG2 + CC loop                  : {n / t_bare:7.1f} frames/s"
          f"   ({sum(len(b) for _, b in bare) / n:.1f} det/frame)")
    print(f"  ratio ours/bare: fresh {t_bare / t_ours:.2f}x, cached {t_bare / t_steady:.2f}x (>1 = ours faster)")


def bench_ultralytics(repeat: int) -> None:
    if not (TUD.exists() and YOLO_OV.exists()):
        print(f"\n[ultralytics] skipped: {TUD} or {YOLO_OV} not found (set MCTRACK_SHARED)")
        return
    cfg = {"backend": "ultralytics", "model": str(YOLO_OV), "classes": [0], "conf": 0.25, "batch": 8}
    det = detect.make_detector(cfg)
    n = video_info(TUD).n_frames
    det.detect_chunk(TUD, 0, 1, "tud")  # load + compile + warm up
    t_ours, df = best_of(lambda: det.detect_chunk(TUD, 0, n, "tud"), repeat)

    from ultralytics import YOLO  # environment already prepared by the backend

    model = YOLO(str(YOLO_OV), task="detect")

    def bare() -> int:
        cap = cv2.VideoCapture(str(TUD))
        total = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            r = model.predict(img, classes=[0], conf=0.25, imgsz=640, verbose=False)[0]
            total += len(r.boxes.xyxy.cpu().numpy())
        cap.release()
        return total

    first = cv2.VideoCapture(str(TUD)).read()[1]
    model.predict(first, classes=[0], conf=0.25, imgsz=640, verbose=False)  # warm up
    t_bare, n_bare = best_of(bare, repeat)
    print(f"\n[ultralytics] {TUD.name}: {n} frames, {YOLO_OV.name}, imgsz 640, batch {cfg['batch']} "
          f"(forward batch {det.forward_batch})")
    print(f"  ours detect_chunk        : {n / t_ours:7.1f} frames/s   ({len(df)} detections)")
    print(f"  bare YOLO.predict loop   : {n / t_bare:7.1f} frames/s   ({n_bare} detections)")
    print(f"  ratio ours/bare: {t_bare / t_ours:.2f}x (>1 = ours faster)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs (default 1)")
    args = ap.parse_args(argv)
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads, {os.cpu_count()} CPUs")
    t0 = time.perf_counter()
    videos = [v for v in BG_VIDEOS if v.exists()]
    with tempfile.TemporaryDirectory() as tmp:
        if not videos:
            print(f"shared data not found under {SHARED}: using a synthetic video")
            videos = [synthetic_video(Path(tmp) / "synthetic.mp4")]
        for v in videos:
            bench_background(v, args.repeat)
    bench_ultralytics(args.repeat)
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
