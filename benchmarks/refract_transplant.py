"""Geometry-only check of association + triangulation through a refractive interface (issue 8).

The default session's own 2D tracklets (same tracker errors, same identity switches) are moved to where
the refractive tank's cameras image the same fish (each row keeps its offset from the nearest ground-truth
fish), then associated and triangulated through the interface; `pinhole` runs the untouched tracklets
with the pinhole calibration. Same tracklet structure in both, so the 3D IDF1 difference is the geometry's.
Needs `snakemake --cores 2` (results/synthetic) first.

    python benchmarks/refract_transplant.py pinhole
    python benchmarks/refract_transplant.py refract
    python benchmarks/refract_transplant.py refract virtual   # ray origins moved back by the air path
"""
import glob
import sys

import numpy as np
import pandas as pd
import yaml

from mctrack.associate import AssociationConfig, associate_session
from mctrack.calibration import load_calibration
from mctrack.calibration.refraction import RefractiveCamera, with_interface
from mctrack.evaluate import evaluate_3d_tracking, read_gt3d
from mctrack.simulate import SimulationConfig, tank_interface
from mctrack.tables import TRACKLET2D, read_tables
from mctrack.triangulate import TriangulationConfig, triangulate

mode = sys.argv[1]
if len(sys.argv) > 2:
    orig = RefractiveCamera.rays
    def rays(self, uv):
        o, d = orig(self, uv)
        return o - np.linalg.norm(o - self.center, axis=1)[:, None] * d, d
    RefractiveCamera.rays = rays
cfg = yaml.safe_load(open("config/config.yaml"))
tr = read_tables(sorted(glob.glob("results/synthetic/track_2d/cam?.parquet")), TRACKLET2D)
pin = load_calibration("results/synthetic/simulate/calibration.toml")
refr = with_interface(dict(pin), tank_interface(SimulationConfig(refraction=True)))
gt3 = read_gt3d("results/synthetic/simulate/gt3d.csv")
G = gt3.set_index(["frame", "target_id"])[["x", "y", "z"]]
out = []
for c, t in tr.groupby("camera_id"):
    t = t.copy()
    f = t["frame"].to_numpy()
    T = gt3["frame"].max() + 1
    Xall = gt3.sort_values(["frame", "target_id"])[["x", "y", "z"]].to_numpy().reshape(T, -1, 3)
    uvp = pin[c].project(Xall.reshape(-1, 3)).reshape(T, -1, 2)
    uvr = refr[c].project(Xall.reshape(-1, 3)).reshape(T, -1, 2)
    cxy = t[["cx", "cy"]].to_numpy()
    j = np.linalg.norm(uvp[f] - cxy[:, None], axis=2).argmin(1)  # GT fish nearest each row (pinhole image)
    delta = uvr[f, j] - uvp[f, j]
    if mode == "refract":
        for a, b in (("cx", 0), ("cy", 1), ("x1", 0), ("x2", 0), ("y1", 1), ("y2", 1)):
            t[a] = t[a] + delta[:, b]
    out.append(t)
tr2 = TRACKLET2D.coerce(pd.concat(out, ignore_index=True))
cams = refr if mode == "refract" else dict(pin)
res = associate_session(tr2, cams, AssociationConfig.from_dict(cfg["associate"]))
pts, _ = triangulate(res.tracklets, res.association, cams, TriangulationConfig.from_dict(cfg["triangulate"]))
m = evaluate_3d_tracking(pts, gt3, 0.02)
print(mode, {k: round(float(m[k]), 4) for k in ("IDF1", "HOTA", "median_error_m", "coverage", "n_global_ids_3d") if k in m})
