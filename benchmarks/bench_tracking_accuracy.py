"""Side-by-side tracking accuracy: every bare boxmot tracker vs mctrack's track_2d stage, same detections.

TUD-Campus (``../shared/data/tud_campus``, 71 frames, 25 fps, MOT GT) with the
shared YOLOv8n INT8 OpenVINO model (person class, conf >= 0.1, ultralytics'
other predict defaults). Detections (and OSNet ReID embeddings of every box) are
computed once and cached under ``$TMPDIR/mctrack-bench-cache/``; every tracker
then sees exactly the same boxes. Rows:

- ``bare <Tracker>``: boxmot's tracker with its own defaults, fed per-frame
  ``(N, 6)`` arrays and (for trackers that need it) the frame; its ``update()``
  output is scored as is. Trackers that need ReID weights get
  ``osnet_x0_25_msmt17.onnx`` via boxmot's own ReID backend when it can load
  it (a failing one is listed with the reason).
- ``mctrack ...``: :class:`mctrack.track2d.Tracker2D` (probation with backfill,
  coasted rows) with the shipped defaults (BoT-SORT, det_thresh 0.6, 1 s
  coasting), optionally ReID (``reid``) and tracklet refinement
  (:func:`mctrack.track2d.refine_tracklets`); scored with the workflow's
  default ``include_coasted="bridged"``.

All scored by :func:`mctrack.evaluate.evaluate_2d` (TrackEval HOTA / CLEAR /
Identity). ``--walkers N`` adds the mean over N synthetic pedestrian sequences
(``benchmarks/walkers.py``; 25/30/50/60 fps) as a second table. Usage::

    python benchmarks/bench_tracking_accuracy.py [--walkers 4] [--no-reid]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from mctrack.evaluate import evaluate_2d, read_mot_gt
from mctrack.tables import DETECTION, TRACKLET2D
from mctrack.track2d import RefineConfig, Tracker2D, TrackerConfig, refine_tracklets

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCTRACK_SHARED", REPO.parent / "shared"))
TUD = SHARED / "data" / "tud_campus"
MODEL = SHARED / "models" / "yolov8n_int8_openvino_model"
REID = SHARED / "models" / "osnet_x0_25_msmt17.onnx"
CACHE = Path(tempfile.gettempdir()) / "mctrack-bench-cache"

#: bare boxmot trackers: name -> (class name, kwargs); ReID ones need the ONNX weights
BARE = {
    "ByteTrack": ("ByteTrack", {}),
    "BotSort (no ReID)": ("BotSort", {"use_embeddings": False, "use_cmc": False}),
    "OcSort": ("OcSort", {}),
    "BoostTrack (no ReID)": ("BoostTrack", {"use_embeddings": False, "use_cmc": False}),
    "SFSORT": ("SFSORT", {}),
    "BotSort + ReID": ("BotSort", {"use_cmc": False, "reid": True}),
    "DeepOcSort + ReID": ("DeepOcSort", {"reid": True}),
    "StrongSort + ReID": ("StrongSort", {"reid": True}),
    "HybridSort + ReID": ("HybridSort", {"reid": True}),
}


def tud_data(reid: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, float, int]:
    """Cached (detections, gt, embeddings or None, fps, n_frames) of TUD-Campus."""
    from mctrack.detect import run_detect

    CACHE.mkdir(parents=True, exist_ok=True)
    video = TUD / "TUD-Campus.mp4"
    det_path = CACHE / "tud_yolov8n_conf0.1.parquet"
    if not det_path.exists():
        run_detect({"backend": "ultralytics", "model": str(MODEL), "classes": [0], "conf": 0.1}, video, 0, 71,
                   "cam", 0, det_path)
    det = pd.read_parquet(det_path)
    emb = None
    if reid:
        emb_path = CACHE / "tud_yolov8n_conf0.1_osnet.parquet"
        if not emb_path.exists():
            from mctrack.track2d.reid import ReIDEmbedder, embed_detections

            embed_detections(ReIDEmbedder(REID), video, det, 0, 71).to_parquet(emb_path)
        emb = pd.read_parquet(emb_path)
    return DETECTION.coerce(det), read_mot_gt(TUD / "gt.txt"), emb, 25.0, 71


def frames_of(video: Path | None, n: int, shape: tuple[int, int, int]):
    """BGR frames of ``video`` (or black images of ``shape`` when None)."""
    if video is None:
        img = np.zeros(shape, np.uint8)
        return [img] * n
    from mctrack.video import read_frames

    return [img for _, img in read_frames(video, 0, n)]


def run_bare(cls_name: str, kw: dict, det: pd.DataFrame, gt: pd.DataFrame, images: list) -> dict:
    """Score one bare boxmot tracker (its defaults) on the cached detections."""
    import boxmot

    kw = dict(kw)
    if kw.pop("reid", False):
        kw.update(reid_weights=REID, device="cpu", half=False)
    trk = getattr(boxmot, cls_name)(**kw)
    fr = det["frame"].to_numpy()
    arr = np.column_stack([det[["x1", "y1", "x2", "y2", "confidence"]].to_numpy(np.float32),
                           det["class_id"].to_numpy(np.float32)])
    rows = []
    for f, img in enumerate(images):
        out = np.asarray(trk.update(arr[fr == f], img)).reshape(-1, 8)
        rows += [(int(o[4]), f, *o[:4]) for o in out]
    df = pd.DataFrame(rows, columns=["track_id", "frame", "x1", "y1", "x2", "y2"])
    df = df.assign(camera_id="cam", cx=0.0, cy=0.0, frame_status="detected", det_index=0, confidence=1.0)
    return evaluate_2d(TRACKLET2D.coerce(df), {"cam": gt}, "all")["cam"]


def run_ours(tcfg: dict, refine: bool, det, gt, emb, fps: float, n: int) -> dict:
    """Score mctrack's stage (Tracker2D + optional refinement) with config ``tcfg``."""
    cfg = TrackerConfig.from_dict(tcfg, fps=fps)
    tr = Tracker2D(cfg, "cam").run(det, 0, n, emb if cfg.reid else None)
    if refine:
        tr = refine_tracklets(tr, fps, RefineConfig(), emb if cfg.reid else None)
    return evaluate_2d(tr, {"cam": gt})["cam"]


def table(title: str, results: dict[str, dict]) -> str:
    lines = [title, f"{'tracker':<42} {'HOTA':>6} {'IDF1':>6} {'MOTA':>6} {'IDSW':>6}"]
    for name, m in results.items():
        if isinstance(m, str):
            lines.append(f"{name:<42} {m}")
        else:
            lines.append(f"{name:<42} {100 * m['HOTA']:6.1f} {100 * m['IDF1']:6.1f} {100 * m['MOTA']:6.1f} "
                         f"{m['IDSW']:6.1f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--walkers", type=int, default=0, help="also run N synthetic pedestrian sequences")
    ap.add_argument("--no-reid", action="store_true", help="skip everything that needs the ReID model")
    args = ap.parse_args()
    logging.getLogger("boxmot").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    reid = not args.no_reid and REID.exists()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        reid = False

    det, gt, emb, fps, n = tud_data(reid)
    images = frames_of(TUD / "TUD-Campus.mp4", n, (480, 640, 3))
    res: dict[str, dict | str] = {}
    for name, (cls_name, kw) in BARE.items():
        if kw.get("reid") and not reid:
            res[f"bare {name}"] = "skipped (no ReID model / onnxruntime)"
            continue
        try:
            res[f"bare {name}"] = run_bare(cls_name, kw, det, gt, images)
        except Exception as e:  # noqa: BLE001 - report and continue with the other trackers
            res[f"bare {name}"] = f"failed: {type(e).__name__}: {str(e)[:60]}"
    ours = {"mctrack botsort (default)": {}, "mctrack bytetrack": {"kind": "bytetrack"},
            "mctrack ocsort": {"kind": "ocsort"}}
    if reid:
        ours["mctrack botsort + ReID"] = {"reid": str(REID)}
    for name, tcfg in ours.items():
        res[name] = run_ours(tcfg, False, det, gt, emb, fps, n)
        res[f"{name} + refinement"] = run_ours(tcfg, True, det, gt, emb, fps, n)
    print(table(f"TUD-Campus, YOLOv8n INT8 detections (conf >= 0.1, {len(det)} boxes), TrackEval:", res))

    if args.walkers:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from walkers import walkers

        seqs = [(s, fps_) for s, fps_ in zip(range(1, args.walkers + 1), [25.0, 30.0, 50.0, 60.0] * args.walkers)]
        data = [(walkers(s, n_frames=int(10 * f), fps=f), f) for s, f in seqs]
        acc: dict[str, list[dict]] = {}
        for (g, d), f in data:
            nn = int(d["frame"].max()) + 1
            black = frames_of(None, nn, (540, 960, 3))
            for name, (cls_name, kw) in BARE.items():
                if not kw.get("reid"):
                    acc.setdefault(f"bare {name}", []).append(run_bare(cls_name, kw, d, g, black))
            for name, tcfg in ours.items():
                if "reid" in tcfg:
                    continue
                acc.setdefault(name, []).append(run_ours(tcfg, False, d, g, None, f, nn))
                acc.setdefault(f"{name} + refinement", []).append(run_ours(tcfg, True, d, g, None, f, nn))
        mean = {k: {m: float(np.mean([r[m] for r in v])) for m in ("HOTA", "IDF1", "MOTA", "IDSW")}
                for k, v in acc.items()}
        print()
        print(table(f"Synthetic walkers, mean of {len(data)} sequences (fps {sorted({f for _, f in seqs})}):", mean))


if __name__ == "__main__":
    main()
