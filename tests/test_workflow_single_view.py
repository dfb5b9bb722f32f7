"""Sessions without 3D (one camera, or no calibration): no associate/triangulate/smooth jobs, same results.

assemble, qc and evaluate of such a session read the refined tracklets and build the one-global-id-per-
tracklet association themselves (mctrack.config.single_view_tables); this checks that the association is
the association package's, that the DAG has the expected shape, and (slow) that the session file and
metrics equal what the associate/triangulate/smooth route gives.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, shared_path

from mctrack.errors import InputError
from mctrack.tables import TRACKLET2D


def _tracklets() -> pd.DataFrame:
    """Two uncalibrated cameras; tracks with equal detected-row counts (ties) and coasted rows."""
    rows = []
    for cam, tracks in (("cam10", {3: (0, 10, 2), 1: (5, 15, 0), 7: (0, 10, 0)}), ("cam2", {4: (2, 12, 1), 9: (0, 3, 0)})):
        for tid, (a, b, n_coast) in tracks.items():
            for f in range(a, b):
                rows.append({"camera_id": cam, "track_id": tid, "frame": f, "x1": 10.0 + f, "y1": 20.0, "x2": 30.0 + f,
                             "y2": 60.0, "cx": 20.0 + f, "cy": 40.0, "det_index": 0, "confidence": 0.9,
                             "frame_status": "coasted" if f >= b - n_coast else "detected"})
    return TRACKLET2D.coerce(pd.DataFrame(rows).sample(frac=1, random_state=0))  # shuffled rows


def test_single_view_tables_equal_the_association_without_cameras(tmp_path):
    from mctrack.associate import associate_session
    from mctrack.config import single_view_tables
    from mctrack.tables import write_table

    tr = _tracklets()
    files = []
    for cam, part in tr.groupby("camera_id"):
        files.append(tmp_path / f"{cam}.parquet")
        write_table(part, TRACKLET2D, files[-1])
    ours_tr, ours = single_view_tables(files)
    ref = associate_session(tr, {})
    pd.testing.assert_frame_equal(ours, ref.association)
    pd.testing.assert_frame_equal(ours_tr, ref.tracklets)
    # keys (cam10: 1, 3, 7; cam2: 4, 9) have 10, 8, 10, 9, 3 detected rows: numbered by decreasing count,
    # the tie of cam10/1 and cam10/7 in key order
    assert ours["track_id"].tolist() == [1, 3, 7, 4, 9] and ours["global_id"].tolist() == [0, 3, 1, 2, 4]


def test_single_view_tables_reject_a_duplicated_chunk(tmp_path):
    from mctrack.config import single_view_tables
    from mctrack.tables import write_table

    write_table(_tracklets(), TRACKLET2D, tmp_path / "a.parquet")
    with pytest.raises(InputError, match="two rows in frame"):
        single_view_tables([tmp_path / "a.parquet", tmp_path / "a.parquet"])


def _snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(REPO / "Snakefile"), "--directory", str(wd),
           "--cores", "2", "--configfile", str(wd / "config.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _planned(wd: Path, *targets: str) -> dict[str, int]:
    out = _snakemake(wd, "-n", *targets, "--quiet", "rules").stdout
    return {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines()
            if len(ln.split()) == 2 and ln.split()[1].isdigit() and ln.split()[0] != "total"}


def _precomputed_session(wd: Path, cameras: int, gt_lines: list[str] | None = None, frames: int = 71) -> None:
    """``cameras`` uncalibrated cameras with precomputed detections (``gt_lines`` as detections and GT, or
    three synthetic boxes per frame), 40-frame chunks."""
    lines = gt_lines or [f"{f},{i + 1},{50 + 100 * i + f},{80 + 20 * i},40,90,1,-1,-1,-1"
                         for f in range(1, frames + 1) for i in range(3)]
    (wd / "gt.txt").write_text("\n".join(lines) + "\n")
    dets = [",".join([ln.split(",")[0], "-1", *ln.split(",")[2:6], "0.9"]) for ln in lines]
    (wd / "det.txt").write_text("\n".join(dets) + "\n")
    rows = ["session\tcamera\tdetections\tgt\tfps\tn_frames"]
    rows += [f"solo\tcam{c}\tdet.txt\tgt.txt\t25\t{frames}" for c in range(cameras)]
    (wd / "cameras.tsv").write_text("\n".join(rows) + "\n")
    (wd / "config.yaml").write_text("cameras: cameras.tsv\nchunk_frames: 40\ndetect:\n  backend: precomputed\n")


@pytest.mark.parametrize("cameras", [1, 2])
def test_dag_of_a_session_without_3d(tmp_path, cameras):
    """One camera, or two without calibration: detect/track per chunk, refine per camera, then only the
    session's assemble, qc and evaluate (no associate/triangulate/smooth job)."""
    _precomputed_session(tmp_path, cameras)
    jobs = _planned(tmp_path)
    assert jobs == {"detect": 2 * cameras, "track_2d": 2 * cameras, "refine_2d": cameras, "assemble": 1, "qc": 1,
                    "evaluate": 1, "all": 1}, jobs
    # the association's rules still serve an explicit request (e.g. the render target)
    assert _planned(tmp_path, "results/solo/associate/association.parquet")["associate"] == 1


def test_dag_of_an_800_frame_single_camera_session_with_default_chunks(tmp_path):
    """The person-video shape of bench_end_to_end.py (one camera, ~800 frames, the schema's 1000-frame chunks):
    one detection job and one tracking job (no per-chunk start-up to pay), then refine, assemble, qc, evaluate."""
    _precomputed_session(tmp_path, 1, frames=800)
    (tmp_path / "config.yaml").write_text("cameras: cameras.tsv\ndetect:\n  backend: precomputed\n")
    assert _planned(tmp_path) == {"detect": 1, "track_2d": 1, "refine_2d": 1, "assemble": 1, "qc": 1, "evaluate": 1,
                                  "all": 1}


def test_dag_of_the_calibrated_default_keeps_the_3d_stages(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "cameras.tsv").write_text((REPO / "config" / "cameras.tsv").read_text())
    (tmp_path / "config.yaml").write_text(f"cameras: {tmp_path / 'config' / 'cameras.tsv'}\n"
                                          "simulate: {session: synthetic, n_frames: 60}\n")
    jobs = _planned(tmp_path)
    assert jobs["associate"] == jobs["triangulate"] == jobs["smooth"] == jobs["assemble"] == 1, jobs


def _datasets(h5: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(h5) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.slow
def test_session_without_3d_gives_the_associate_route_results(tmp_path):
    """TUD-Campus ground truth boxes as precomputed detections of one camera: the session file, metrics and QC
    summary equal those assembled/evaluated from the associate -> triangulate -> smooth outputs (which the
    workflow no longer runs for such a session)."""
    from mctrack.evaluate import evaluate_session
    from mctrack.io.session import assemble_session
    from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, TRACK3D, read_table, read_tables

    gt = shared_path("data", "tud_campus", "gt.txt").read_text().split()
    _precomputed_session(tmp_path, 1, gt)
    _snakemake(tmp_path, "all", "--quiet")
    res = tmp_path / "results/solo"
    assert not (res / "associate").exists() and not (res / "triangulate").exists()
    _snakemake(tmp_path, "results/solo/associate/association.parquet", "results/solo/triangulate/points3d.parquet",
               "results/solo/smooth/tracks3d.parquet", "--quiet")
    # what assemble / evaluate read before (the associate route), from the rules that are still there
    with h5py.File(res / "solo.h5") as f:
        cfg = json.loads(f.attrs["config"])
    dets = sorted(str(p) for p in (res / "detect/cam0").glob("*.parquet"))
    assoc = read_table(res / "associate/association.parquet", ASSOCIATION)
    assemble_session(tmp_path / "old.h5", 71, ["cam0"], [str(res / "associate/tracklets.parquet")], assoc,
                     str(res / "triangulate/points3d.parquet"), detections=dets, session="solo", fps=25.0,
                     config=cfg, chunk_frames=cfg["hdf5"]["chunk_frames"],
                     tracks3d=str(res / "smooth/tracks3d.parquet"))
    ours = {k: v for k, v in _datasets(res / "solo.h5").items() if not k.startswith("provenance/")}
    old = _datasets(tmp_path / "old.h5")  # no provenance passed here
    assert sorted(ours) == sorted(old) and "cameras/cam0/tracklets/track_id" in old and len(assoc) > 5
    for key in old:
        np.testing.assert_array_equal(ours[key], old[key], err_msg=key)
    # metrics: evaluate on the associate route's tables
    ev = dict(cfg["evaluate"], gt_ids_shared=False if cfg["evaluate"].get("gt_ids_shared") is None
              else cfg["evaluate"]["gt_ids_shared"])
    metrics = evaluate_session(read_tables([res / "associate/tracklets.parquet"], TRACKLET2D),
                               {"cam0": str(tmp_path / "gt.txt")}, assoc,
                               read_table(res / "triangulate/points3d.parquet", POINTS3D), None, ev,
                               detections=read_tables(dets, DETECTION),
                               tracks3d=read_table(res / "smooth/tracks3d.parquet", TRACK3D),
                               frame_offsets={"cam0": 0}, n_frames=71,
                               raw_tracklets=read_tables([res / "track_2d/cam0.parquet"], TRACKLET2D))
    written = json.loads((res / "eval/metrics.json").read_text())
    assert written["cameras"]["cam0"]["IDF1"] > 0.5
    assert json.loads(json.dumps(metrics, default=float).replace("NaN", "null")) == written
