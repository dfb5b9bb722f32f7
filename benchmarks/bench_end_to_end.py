"""End-to-end benchmark: `snakemake --cores N` on one person video vs a bare decode -> YOLO.predict -> boxmot loop.

Video: TUD-Campus (``$MCTRACK_SHARED/data/tud_campus``, 71 frames, 640x480, 25 fps) played forwards
and backwards in turn until about ``--frames`` (default 800) frames, written once with PyAV (H.264) to
``$MCTRACK_CACHE`` (default ``~/.cache/mctrack``; not in the repository). Model: the shared
``yolov8n_int8_openvino_model`` (class 0 = person, conf 0.3, iou 0.6, imgsz 640, CPU).

- **ours**: wall time of ``snakemake --cores N`` (N = ``--cores``, default 2) on a one-camera session of
  that video in a fresh directory, using the schema's defaults (one 1000-frame chunk), i.e. Snakefile
  parsing, input checks, detect, track_2d, refine_2d, assemble, qc (one camera: no associate,
  triangulate or smooth job; assemble and qc number the global ids themselves).
- **bare**: wall time of a fresh Python process that imports ultralytics and boxmot, loads the model
  and runs ``cv2.VideoCapture`` decode -> ``YOLO.predict`` (same thresholds) -> ``OcSort.update``
  over every frame, with ``torch.set_num_threads(N)``: what a user's hand-written script costs.

Prints both, and ``ratio = bare / ours`` (goal >= 0.8: the workflow's partial reruns, checks, HDF5 and
QC cost at most 25 % over the bare loop). Also times the synthetic default (``snakemake --cores N`` with
no config, 4 cameras x 300 frames, goal <= 45 s). ``results()`` returns the run_all entries.

Wall times are only comparable on an otherwise idle machine: every measurement prints the 1-minute load
average before it and the CPU time (user + sys of the process tree) it used, and the person video also
gets a CPU-time entry (bare CPU / our CPU), which waiting for a busy core does not change. ``--repeat R`` alternates
bare and ours R times and reports medians (the ratio is median bare / median ours).

Usage: ``python benchmarks/bench_end_to_end.py [--frames 800] [--cores 2] [--repeat 3] [--skip-synthetic]
[--skip-person] [--installed-only]`` (defaults: 3 alternating runs, plus our side as after ``pip install -e .``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_dryrun import EXTRA_PLUGINS, MAIN_INSTALL

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCTRACK_SHARED", REPO.parent / "shared"))
TUD = SHARED / "data" / "tud_campus" / "TUD-Campus.mp4"
MODEL = SHARED / "models" / "yolov8n_int8_openvino_model"
CACHE = Path(os.environ.get("MCTRACK_CACHE", Path.home() / ".cache" / "mctrack"))
DETECT = {"classes": [0], "conf": 0.3, "iou": 0.6, "imgsz": 640, "device": "cpu"}

BARE = r'''
import sys, time
t0 = time.perf_counter()
import cv2, numpy as np, torch
torch.set_num_threads({cores})
cv2.setNumThreads({cores})
from ultralytics import YOLO
from boxmot import OcSort
model = YOLO({model!r}, task="detect")
tracker = OcSort(det_thresh=0.3, max_age=30, min_hits=3)
cap = cv2.VideoCapture({video!r})
n = rows = 0
while True:
    ok, img = cap.read()
    if not ok:
        break
    r = model.predict(img, conf=0.3, iou=0.6, imgsz=640, classes=[0], device="cpu", verbose=False)[0]
    b = r.boxes
    dets = np.column_stack([b.xyxy.cpu().numpy(), b.conf.cpu().numpy(), b.cls.cpu().numpy()]).astype(np.float32)
    rows += len(tracker.update(dets.reshape(-1, 6), img))
    n += 1
print(n, rows, time.perf_counter() - t0)
'''


def person_video(n_frames: int = 800) -> Path:
    """TUD-Campus forwards/backwards until ``n_frames`` frames (H.264, cached); returns its path."""
    from mctrack.video import VideoWriter, read_frames, video_info

    out = CACHE / f"tud_pingpong_{n_frames}.mp4"
    if out.exists():
        return out
    info = video_info(TUD)
    frames = [img for _, img in read_frames(TUD, 0, info.n_frames)]
    CACHE.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out, info.fps, info.width, info.height) as w:
        k = 0
        while k < n_frames:
            for img in frames if (k // len(frames)) % 2 == 0 else frames[::-1]:
                if k == n_frames:
                    break
                w.write(img)
                k += 1
    return out


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("YOLO_OFFLINE", "1")
    env.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "mctrack-ultralytics"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _timed(cmd: list[str], label: str) -> tuple[float, float]:
    """Run ``cmd``; print and return its wall time and CPU time (user + sys of it and its children), s.

    Also prints the 1-minute load average before it."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-3000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  {label}: wall {dt:.2f} s, cpu {cpu:.2f} s, load before {load:.2f}", file=sys.stderr, flush=True)
    return dt, cpu


def time_ours(video: Path, cores: int, main_install: bool = False) -> tuple[float, float]:
    """(wall, CPU) time (s) of ``snakemake --cores`` on a one-camera session of ``video`` in a fresh directory.

    ``main_install``: with the extras' executor plugins hidden from Snakemake (as after the README's
    ``pip install -e .``; see ``bench_dryrun.EXTRA_PLUGINS``)."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="mctrack-e2e-") as wd:
        wd = Path(wd)
        (wd / "cameras.tsv").write_text(f"session\tcamera\tvideo\nperson\tcam\t{video}\n")
        cfg = {"cameras": "cameras.tsv", "detect": {"backend": "ultralytics", "threads": cores,
                                                    "ultralytics": {"model": str(MODEL), **DETECT}}}
        (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
        entry = (["-c", MAIN_INSTALL.format(hidden=set(EXTRA_PLUGINS))] if main_install else ["-m", "snakemake"])
        dt = _timed([sys.executable, *entry, "--snakefile", str(REPO / "Snakefile"), "--directory", str(wd),
                     "--cores", str(cores), "--configfile", str(wd / "config.yaml"), "--quiet", "all"],
                    "ours (as after pip install -e .)" if main_install else "ours")
        if not (wd / "results/person/person.h5").exists():
            raise RuntimeError("no HDF5 written")
    return dt


def time_bare(video: Path, cores: int) -> tuple[float, float]:
    """(wall, CPU) time (s) of a fresh process running the bare decode -> predict -> OcSort loop."""
    code = BARE.format(cores=cores, model=str(MODEL), video=str(video))
    return _timed([sys.executable, "-c", code], "bare")


def time_synthetic(cores: int) -> float:
    """Wall time (s) of the synthetic default (no config) end to end in a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="mctrack-syn-") as wd:
        (Path(wd) / "config").mkdir()
        (Path(wd) / "config" / "cameras.tsv").write_text((REPO / "config" / "cameras.tsv").read_text())
        return _timed([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", wd,
                       "--cores", str(cores), "--quiet", "all"], "synthetic")[0]


def results(frames: int = 800, cores: int = 2, synthetic: bool = True, repeat: int = 3,
            person: bool = True, main_install: bool = True) -> list[dict]:
    """Benchmark entries for ``benchmarks/run_all.py`` (skips the person video if shared data is absent).

    With ``repeat`` > 1, bare and ours alternate ``repeat`` times and the medians are reported (``run_all.py``
    calls it with the defaults: 3 alternating runs, wall times on this kind of shared machine vary with
    the page cache). With ``main_install``, ours is also timed as after the README's ``pip install -e .``
    (an extra entry).
    """
    med = f", median of {repeat} alternating runs" if repeat > 1 else ""
    out = []
    if person and TUD.exists() and MODEL.exists():
        video = person_video(frames)
        bares, ourss, mains = [], [], []
        for _ in range(repeat):
            bares.append(time_bare(video, cores))
            ourss.append(time_ours(video, cores))
            if main_install:
                mains.append(time_ours(video, cores, main_install=True))
        bare, ours = statistics.median(w for w, _ in bares), statistics.median(w for w, _ in ourss)
        bare_cpu, ours_cpu = statistics.median(c for _, c in bares), statistics.median(c for _, c in ourss)
        out.append({"name": f"end_to_end_person_{frames}f_{cores}cores (wall{med})", "ours": round(ours, 2),
                    "baseline": round(bare, 2), "unit": "s", "ratio": round(bare / ours, 3)})
        out.append({"name": f"end_to_end_person_{frames}f_{cores}cores CPU time (user + sys{med}; robust to a "
                            "shared machine's load)", "ours": round(ours_cpu, 2), "baseline": round(bare_cpu, 2),
                    "unit": "s CPU", "ratio": round(bare_cpu / ours_cpu, 3)})
        if mains:
            main = statistics.median(w for w, _ in mains)
            out.append({"name": f"end_to_end_person_{frames}f_{cores}cores as after `pip install -e .` (no SLURM "
                                f"executor plugin; wall{med})", "ours": round(main, 2), "baseline": round(bare, 2), "unit": "s",
                        "ratio": round(bare / main, 3)})
    if synthetic:
        ours = statistics.median([time_synthetic(cores) for _ in range(repeat)])
        out.append({"name": f"synthetic_default_{cores}cores (baseline = 45 s budget{med.replace(' alternating', '')})",
                    "ours": round(ours, 2),
                    "baseline": 45.0, "unit": "s", "ratio": round(45.0 / ours, 3)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=800)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="alternate bare/ours this many times; report medians")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-person", action="store_true")
    ap.add_argument("--installed-only", action="store_true",
                    help="do not also time ours with the extras' SLURM executor plugin hidden (as after pip install -e .)")
    args = ap.parse_args()
    res = results(args.frames, args.cores, not args.skip_synthetic, args.repeat, not args.skip_person,
                  not args.installed_only)
    for r in res:
        print(f"{r['name']}: ours {r['ours']:.1f} s, baseline {r['baseline']:.1f} s, ratio baseline/ours {r['ratio']:.2f}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
