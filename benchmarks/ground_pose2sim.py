"""Issue 8 check: ground positions from the calibration's floor plane vs triangulated foot points (Pose2Sim).

Run the Pose2Sim session first (``snakemake --cores 2 --configfile config/pose2sim.yaml``), then
``python benchmarks/ground_pose2sim.py [results/pose2sim]``. Foot points are compared with foot points:
for every (frame, global id) of the session's association seen (detected) by >= 2 cameras,

- *ground*: each camera's foot point (bottom centre of its box) mapped to the world plane z = 0 with
  :func:`mctrack.ground.homography_from_camera`, averaged over the cameras (what ground-plane mode
  reports);
- *triangulated*: the same foot pixels triangulated with the full calibration
  (:func:`mctrack.triangulate.triangulate_points`, reprojection gate ``max_reprojection_error`` px).

Prints the median and 90th percentile horizontal distance (m) between the two, the median z of the
triangulated foot points (how far the feet are from the calibration's z = 0: the floor plane's offset),
and the old box-centre comparison (x, y of the triangulated box centres of ``points3d``) for reference.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mctrack.calibration import load_calibration
from mctrack.ground import foot_points, ground_positions, homography_from_camera
from mctrack.tables import ASSOCIATION, POINTS3D, TRACKLET2D, read_table
from mctrack.triangulate import triangulate_points


def compare_feet(res: Path, calibration: Path, names: dict[str, str], max_reprojection_error: float = 40.0) -> dict:
    """Foot-point agreement of ground-plane positions and triangulation on one session's results (see module doc).

    ``res``: the session's results folder; ``calibration``: its calibration file; ``names``: camera sheet
    name → name in the calibration file. Returns ``n``, ``median_m``, ``p90_m`` (horizontal distance),
    ``median_foot_z_m`` (triangulated foot height), ``centre_median_m`` (ground foot vs x, y of the box-centre
    3D points).
    """
    rig = load_calibration(calibration)
    cams = list(names)
    maps = {cam: homography_from_camera(rig[names[cam]]) for cam in cams}
    tr = read_table(res / "associate/tracklets.parquet", TRACKLET2D)
    tr = tr[tr["frame_status"].astype(str) == "detected"].reset_index(drop=True)
    a = read_table(res / "associate/association.parquet", ASSOCIATION)
    g = ground_positions(tr, maps)
    uv = foot_points(tr)
    rows = tr[["camera_id", "track_id", "frame"]].assign(gx=g[:, 0], gy=g[:, 1], u=uv[:, 0], v=uv[:, 1]).merge(
        a[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"])
    rows = rows[np.isfinite(rows[["gx", "gy"]]).all(axis=1)]
    rows = rows.drop_duplicates(["frame", "global_id", "camera_id"])
    rows = rows[rows.groupby(["frame", "global_id"])["camera_id"].transform("size") >= 2]
    keys = rows[["frame", "global_id"]].drop_duplicates().reset_index(drop=True)
    k = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(rows[["frame", "global_id"]]))
    c = pd.Index(cams).get_indexer(rows["camera_id"].astype(str))
    obs = np.full((len(keys), len(cams), 2), np.nan)
    obs[k, c] = rows[["u", "v"]].to_numpy()
    X, used, _ = triangulate_points(np.nan_to_num(obs), np.isfinite(obs[..., 0]),
                                    [rig[names[cam]] for cam in cams], max_reprojection_error)
    ground = rows.groupby(["frame", "global_id"])[["gx", "gy"]].mean().reindex(
        pd.MultiIndex.from_frame(keys)).to_numpy()
    ok = np.isfinite(X).all(axis=1)
    d = np.hypot(*(ground[ok] - X[ok, :2]).T)
    pts = read_table(res / "triangulate/points3d.parquet", POINTS3D)
    cen = keys.assign(gx=ground[:, 0], gy=ground[:, 1]).merge(pts[["frame", "global_id", "x", "y"]])
    out = {"n": int(ok.sum()), "median_m": float(np.median(d)), "p90_m": float(np.quantile(d, 0.9)),
           "median_foot_z_m": float(np.median(X[ok, 2])),
           "centre_median_m": float(np.median(np.hypot(cen["gx"] - cen["x"], cen["gy"] - cen["y"])))}
    return out


def main(res: Path, sheet_path: Path = Path("config/pose2sim_cameras.tsv")) -> dict:
    """Run :func:`compare_feet` with the calibration and names of a camera sheet; print and return the figures."""
    sheet = pd.read_csv(sheet_path, sep="\t", dtype=str)
    out = compare_feet(res, Path(sheet["calibration"].iloc[0]), dict(zip(sheet["camera"], sheet["calibration_name"])))
    print(out)
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/pose2sim"))
