"""Issue 8 check: ground positions from the calibration's floor plane vs the triangulated 3D tracks (Pose2Sim).

Run the Pose2Sim session first (``snakemake --cores 2 --configfile config/pose2sim.yaml``), then
``python benchmarks/ground_pose2sim.py [results/pose2sim]``. For every (frame, global id) with a
triangulated point, each camera's detected box of that id gives a ground position (bottom centre of
the box through ``mctrack.ground.homography_from_camera``, world plane z = 0); their mean is compared
with the x, y of the triangulated point. The triangulated point is the box *centre* (hip height); its
x, y is the person's ground position when the person stands upright, so the two should agree to about
the foot-to-hip lean and the box-bottom-to-footprint-centre offset (~0.1-0.2 m).
Prints the median and 90th percentile distance (m) and the median z of the 3D points.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mctrack.calibration import load_calibration
from mctrack.ground import ground_positions, homography_from_camera
from mctrack.tables import ASSOCIATION, POINTS3D, TRACKLET2D, read_table


def main(res: Path, calibration: Path, names: dict[str, str]) -> dict:
    rig = load_calibration(calibration)
    maps = {cam: homography_from_camera(rig[name]) for cam, name in names.items()}
    tr = read_table(res / "associate/tracklets.parquet", TRACKLET2D)
    tr = tr[tr["frame_status"].astype(str) == "detected"].reset_index(drop=True)
    a = read_table(res / "associate/association.parquet", ASSOCIATION)
    pts = read_table(res / "triangulate/points3d.parquet", POINTS3D)
    g = ground_positions(tr, maps)
    rows = tr[["camera_id", "track_id", "frame"]].assign(gx=g[:, 0], gy=g[:, 1]).merge(
        a[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"])
    per = rows.groupby(["frame", "global_id"])[["gx", "gy"]].mean().reset_index()
    m = per.merge(pts[["frame", "global_id", "x", "y", "z"]], on=["frame", "global_id"]).dropna()
    d = np.hypot(m["gx"] - m["x"], m["gy"] - m["y"])
    out = {"n": int(len(d)), "median_m": float(np.median(d)), "p90_m": float(np.quantile(d, 0.9)),
           "median_point_z_m": float(m["z"].median())}
    print(out)
    return out


if __name__ == "__main__":
    res = Path(sys.argv[1] if len(sys.argv) > 1 else "results/pose2sim")
    sheet = pd.read_csv("config/pose2sim_cameras.tsv", sep="\t", dtype=str)
    main(res, Path(sheet["calibration"].iloc[0]), dict(zip(sheet["camera"], sheet["calibration_name"])))
