"""3D identity accuracy of the two association methods on the same 2D tracklets (figures, not timings).

Reads finished runs (it runs no detection or tracking), re-associates their per-camera tracklets with
``associate.method: frames`` and ``tracklets`` and prints 3D IDF1 / HOTA / MOTA / ID switches / 3D
tracks (``mctrack.evaluate.evaluate_3d_tracking``, 2 cm radius) for:

- the synthetic default with all 4 cameras and with its 2- and 3-camera subsets
  (``snakemake --cores 2`` first);
- the hard scene (``snakemake --cores 2 --configfile config/synthetic_hard.yaml`` first);
- the FishPy tank, which has no identity ground truth: fish triangulated per frame, 3D tracks and
  median reprojection error (``snakemake --cores 2 --configfile config/fishpy.yaml`` first).

Sessions whose results are missing are skipped. These are the figures quoted in the README
("associate") and in ``mctrack.associate.AssociationConfig``.

Usage: ``python benchmarks/association_accuracy.py``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import yaml

from mctrack.associate import AssociationConfig, associate_session
from mctrack.calibration import find_camera, load_calibration
from mctrack.evaluate import evaluate_3d_tracking, read_gt3d
from mctrack.tables import TRACKLET2D, read_tables
from mctrack.triangulate import TriangulationConfig, triangulate

REPO = Path(__file__).resolve().parents[1]
METHODS = ("frames", "tracklets")
SYNTHETIC = [("synthetic", "config/config.yaml", cams) for cams in (
    ("cam1", "cam2", "cam3", "cam4"), ("cam1", "cam2"), ("cam2", "cam3"), ("cam1", "cam3"), ("cam2", "cam4"),
    ("cam1", "cam2", "cam3"))] + [("synthetic_hard", "config/synthetic_hard.yaml", ("cam1", "cam2", "cam3", "cam4"))]


def _run(tracklets, cameras, cfg_file: str, method: str):
    cfg = yaml.safe_load((REPO / cfg_file).read_text())
    assoc = dict(cfg.get("associate") or {}, method=method)
    res = associate_session(tracklets, cameras, AssociationConfig.from_dict(assoc))
    points, _ = triangulate(res.tracklets, res.association, cameras,
                            TriangulationConfig.from_dict(cfg.get("triangulate")))
    return points


def synthetic() -> None:
    for session, cfg_file, cams in SYNTHETIC:
        base = REPO / "results" / session
        if not (base / "eval" / "metrics.json").exists():
            print(f"[{session}] no finished run: skipped")
            continue
        tr = read_tables(sorted((base / "track_2d").glob("cam*.parquet")), TRACKLET2D)
        tr = tr[tr["camera_id"].isin(cams)]
        rig = load_calibration(base / "simulate" / "calibration.toml")
        cameras = {c: rig[c] for c in cams}
        gt = read_gt3d(base / "simulate" / "gt3d.csv")
        row = []
        for method in METHODS:
            m = evaluate_3d_tracking(_run(tr, cameras, cfg_file, method), gt, 0.02)
            row.append(f"{method} IDF1 {m['IDF1']:.3f} HOTA {m['HOTA']:.3f} MOTA {m['MOTA']:.3f} "
                       f"IDSW {m['IDSW']} tracks {m['n_tracks_3d']}")
        print(f"[{session}] {','.join(cams)}: " + " | ".join(row))


def fishpy() -> None:
    base = REPO / "results" / "fishpy"
    if not (base / "calibration.toml").exists():
        print("[fishpy] no finished run: skipped")
        return
    tr = read_tables(sorted((base / "track_2d").glob("*.parquet")), TRACKLET2D)
    rig = load_calibration(base / "calibration.toml")
    cameras = {c: find_camera(rig, c) for c in tr["camera_id"].unique()}
    for method in METHODS:
        p = _run(tr, cameras, "config/fishpy.yaml", method)
        print(f"[fishpy] {method}: median {p.groupby('frame').size().median():.0f} fish per frame triangulated, "
              f"{p['global_id'].nunique()} 3D tracks, median reprojection {p['reprojection_error'].median():.2f} px")


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    synthetic()
    fishpy()
