"""DAG-building benchmark: ``snakemake -n`` on 8 cameras x 100 chunks (precomputed detections, no videos).

Each camera has a MOTChallenge ``det.txt`` (3 boxes per frame, 100 frames) and the sheet's ``fps`` and
``n_frames``; ``chunk_frames: 1`` gives 100 chunks per camera: 800 detect + 800 track_2d jobs plus the
session rules (about 1 600 jobs). ``ours`` is the wall time of the dry run (parsing, input checks, DAG),
the baseline is the issue's budget of 10 s (``ratio = 10 s / ours``; >= 1 meets it). CPU time of the
dry run is printed too, since wall time on a shared machine includes waiting for the CPU.

Usage: ``python benchmarks/bench_dag.py [--cameras 8] [--chunks 100]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 10.0


def make_session(wd: Path, cameras: int, frames: int) -> None:
    rows = ["session\tcamera\tdetections\tfps\tn_frames"]
    for c in range(cameras):
        lines = [f"{f},-1,{50 + 100 * i + f:.1f},{80 + 20 * i:.1f},40,90,0.9" for f in range(1, frames + 1)
                 for i in range(3)]
        (wd / f"det{c}.txt").write_text("\n".join(lines) + "\n")
        rows.append(f"big\tcam{c}\tdet{c}.txt\t25\t{frames}")
    (wd / "cameras.tsv").write_text("\n".join(rows) + "\n")
    (wd / "config.yaml").write_text("cameras: cameras.tsv\nchunk_frames: 1\ndetect:\n  backend: precomputed\n")


def time_dry_run(cameras: int = 8, chunks: int = 100) -> tuple[float, float, int]:
    """(wall s, CPU s, jobs) of ``snakemake -n`` on ``cameras`` x ``chunks`` one-frame chunks."""
    with tempfile.TemporaryDirectory(prefix="mctrack-dag-") as wd:
        wd = Path(wd)
        make_session(wd, cameras, chunks)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                               "--directory", str(wd), "--cores", "2", "--configfile", str(wd / "config.yaml"),
                               "--quiet", "rules"], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        jobs = next(int(ln.split()[1]) for ln in proc.stdout.splitlines() if ln.startswith("total"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, jobs


def _entry(wall: float, cpu: float, jobs: int, cameras: int, chunks: int) -> dict:
    return {"name": f"dag_dry_run_{cameras}cams_x_{chunks}chunks ({jobs} jobs, {cpu:.1f} s CPU; baseline = budget)",
            "ours": round(wall, 2), "baseline": BUDGET_S, "unit": "s", "ratio": round(BUDGET_S / wall, 3)}


def results(cameras: int = 8, chunks: int = 100) -> list[dict]:
    """run_all entries: the dry run's wall time against the 10 s budget."""
    return [_entry(*time_dry_run(cameras, chunks), cameras, chunks)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--chunks", type=int, default=100)
    args = ap.parse_args()
    wall, cpu, jobs = time_dry_run(args.cameras, args.chunks)
    print(f"{args.cameras} cameras x {args.chunks} chunks: {jobs} jobs planned in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(budget {BUDGET_S:.0f} s)")
    print(json.dumps([_entry(wall, cpu, jobs, args.cameras, args.chunks)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
