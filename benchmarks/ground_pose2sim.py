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

import pandas as pd

from mctrack.calibration import load_calibration
from mctrack.evaluate import ground_foot_agreement
from mctrack.tables import ASSOCIATION, POINTS3D, TRACKLET2D, read_table


def compare_feet(res: Path, calibration: Path, names: dict[str, str], max_reprojection_error: float = 40.0) -> dict:
    """:func:`mctrack.evaluate.ground_foot_agreement` on one session's results folder (see module doc).

    ``calibration``: its calibration file; ``names``: camera sheet name -> name in the calibration file.
    """
    rig = load_calibration(calibration)
    return ground_foot_agreement(read_table(res / "associate/tracklets.parquet", TRACKLET2D),
                                 read_table(res / "associate/association.parquet", ASSOCIATION),
                                 read_table(res / "triangulate/points3d.parquet", POINTS3D),
                                 {cam: rig[name] for cam, name in names.items()}, max_reprojection_error)


def main(res: Path, sheet_path: Path = Path("config/pose2sim_cameras.tsv")) -> dict:
    """Run :func:`compare_feet` with the calibration and names of a camera sheet; print and return the figures."""
    sheet = pd.read_csv(sheet_path, sep="\t", dtype=str)
    out = compare_feet(res, Path(sheet["calibration"].iloc[0]), dict(zip(sheet["camera"], sheet["calibration_name"])))
    print(out)
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/pose2sim"))
