"""Print the calibration figures of issue 7 from finished runs of the shipped configs.

Run after ``snakemake --cores 2 --configfile config/{fishpy,mouse_arena,pose2sim,pose2sim_qca}.yaml``::

    python benchmarks/calibration_figures.py

FishPy: calibration report (squares, reprojection per camera), fish per frame in >= 2 cameras, 3D tracks,
median reprojection. Mouse arena: calibration report; proofread SLEAP keypoints triangulated with the
calibrated rig; the mouse's global ids and 3D track against the keypoint centroid, from the run's HDF5 and
from tracklets made of the keypoint boxes (association + triangulation without the detector). Pose2Sim:
camera centres of Calib.qca.txt vs Calib_scene.toml, identities and reprojection of the two runs.
Accuracy figures, not timings.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mctrack.calibration import find_camera, load_calibration
from mctrack.session import read_session
from mctrack.triangulate import triangulate_points

SHARED = Path(os.environ.get("MCTRACK_SHARED", "../shared"))
VIEWS = ("back", "mid", "side", "top")


def calib_report(session: str) -> None:
    rep = json.loads(Path(f"results/{session}/calibrate/report.json").read_text())
    print(f"[{session}] calibration ({rep['mode']}):")
    for k, m in rep["cameras"].items():
        print(f"  {k}: bundle median {m['bundle_median_px']:.3f} px, triangulated-corner median "
              f"{m['triangulated_median_px']:.3f} px, {m['views']} views")
    for v, m in rep["views"].items():
        print(f"  view {v}: {m['n_cameras']} cameras, square {1000 * m['square_mean_m']:.3f} mm "
              f"({100 * m['square_rel_error']:+.3f}%)")
    print(f"  worst view square error {100 * rep['square_rel_error_max']:.3f}%; reversed corner orders {rep['flips']}")


def session_figures(session: str) -> dict:
    s = read_session(f"results/{session}/{session}.h5")
    tri = s["n_cameras"] >= 2
    out = {"frames": len(s["frame_index"]), "targets_per_frame_ge2_median": float(np.median(tri.sum(1))),
           "tracks_3d": int(tri.any(0).sum()), "median_reprojection_px": float(np.nanmedian(s["reprojection_residual"][tri]))
           if tri.any() else None}
    print(f"[{session}] {out}")
    return out


def sleap_keypoints() -> np.ndarray:
    import h5py

    uv = []
    for v in VIEWS:
        with h5py.File(SHARED / "data/sleap_anipose_minimal" / v / f"minimal_{v}_proofread.analysis.h5") as f:
            uv.append(f["tracks"][0])  # (2, nodes, frames)
    return np.array(uv).transpose(3, 2, 0, 1)  # (frames, nodes, views, 2)


def mouse_figures() -> None:
    import yaml

    from mctrack.associate import AssociationConfig, associate
    from mctrack.tables import TRACKLET2D
    from mctrack.triangulate import TriangulationConfig, triangulate

    calib_report("mouse_arena")
    rig = load_calibration("results/mouse_arena/calibration.toml")
    cams = [rig[v] for v in VIEWS]
    kp = sleap_keypoints()
    T, N = kp.shape[:2]
    uv = kp.reshape(-1, 4, 2)
    mask = np.isfinite(uv).all(2)
    for thr in (np.inf, 15.0):
        X, used, proj = triangulate_points(uv, mask, cams, max_reprojection_error=thr)
        err = np.linalg.norm(proj - uv, axis=2)[used]
        print(f"  SLEAP keypoints, max_reprojection_error={thr}: median reprojection {np.median(err):.2f} px "
              f"({used.sum()} of {mask.sum()} observations kept)")
    X, _, _ = triangulate_points(uv, mask, cams, max_reprojection_error=np.inf)
    centroid = np.nanmean(X.reshape(T, N, 3), axis=1)  # (T, 3) m
    cfg = yaml.safe_load(Path("config/mouse_arena.yaml").read_text())

    def mouse_stats(points: pd.DataFrame, ids_per_frame: np.ndarray, label: str) -> None:
        one = float(np.mean(ids_per_frame == 1))
        d = []
        for f, g in points.groupby("frame"):
            d.append(np.linalg.norm(g[["x", "y", "z"]].to_numpy() - centroid[f], axis=1).min())
        d = np.array(d)
        print(f"  {label}: one global id in {100 * one:.1f}% of frames; 3D track in {len(d)} frames, distance to "
              f"keypoint centroid median {100 * np.median(d):.1f} cm, 90th pct {100 * np.percentile(d, 90):.1f} cm"
              if len(d) else f"  {label}: one global id in {100 * one:.1f}% of frames; no 3D point")

    # (a) the workflow's run (background subtraction)
    s = read_session("results/mouse_arena/mouse_arena.h5")
    tri = s["n_cameras"] >= 2
    fr, k = np.nonzero(tri)
    pts = pd.DataFrame({"frame": fr, "x": s["centroid_3d"][fr, k, 0], "y": s["centroid_3d"][fr, k, 1],
                        "z": s["centroid_3d"][fr, k, 2]})
    import glob

    chunks = sorted(glob.glob("results/mouse_arena/track_2d/*/[0-9][0-9][0-9][0-9].parquet"))
    trk = pd.concat([pd.read_parquet(f) for f in chunks])
    asc = pd.read_parquet("results/mouse_arena/associate/association.parquet")
    rows = trk[trk.frame_status == "detected"].merge(asc, on=["camera_id", "track_id"])
    ids = rows.groupby("frame")["global_id"].nunique().reindex(range(T), fill_value=0).to_numpy()
    print(f"  workflow run: detections in {rows.frame.nunique()} of {T} frames ({len(rows)} rows)")
    mouse_stats(pts, ids, "workflow run (background subtraction)")
    # (b) tracklets = boxes around the proofread keypoints (association + triangulation without the detector)
    rows = []
    for c, v in enumerate(VIEWS):
        p = kp[:, :, c]
        x1, y1 = np.nanmin(p[..., 0], 1), np.nanmin(p[..., 1], 1)
        x2, y2 = np.nanmax(p[..., 0], 1), np.nanmax(p[..., 1], 1)
        rows.append(pd.DataFrame({"camera_id": v, "track_id": 1, "frame": np.arange(T), "x1": x1, "y1": y1, "x2": x2,
                                  "y2": y2, "cx": (x1 + x2) / 2, "cy": (y1 + y2) / 2, "frame_status": "detected",
                                  "det_index": 0, "confidence": 1.0}))
    trk = TRACKLET2D.coerce(pd.concat(rows, ignore_index=True))
    rigd = {v: rig[v] for v in VIEWS}
    a, _ = associate(trk, rigd, AssociationConfig.from_dict(cfg["associate"]))
    p, _ = triangulate(trk, a, rigd, TriangulationConfig.from_dict(cfg["triangulate"]))
    ids = p.groupby("frame")["global_id"].nunique().reindex(range(T), fill_value=0).to_numpy()
    mouse_stats(p, ids, "keypoint-box tracklets")
    print(f"  keypoint-box tracklets: {a['global_id'].nunique()} global id(s); median reprojection "
          f"{p['reprojection_error'].median():.2f} px")


def pose2sim_figures() -> None:
    toml = load_calibration(SHARED / "data/pose2sim_multiperson/Calib_scene.toml")
    qca = load_calibration(SHARED / "data/pose2sim_multiperson/Calib.qca.txt")
    d = {k: float(np.linalg.norm(q.center - find_camera(toml, k).center)) for k, q in qca.items()}
    print("[pose2sim] camera centre distance qca vs toml (cm):", {k: round(100 * v, 1) for k, v in d.items()})
    a = session_figures("pose2sim")
    b = session_figures("pose2sim_qca")
    pa = pd.read_parquet("results/pose2sim/associate/association.parquet")
    pb = pd.read_parquet("results/pose2sim_qca/associate/association.parquet")
    print(f"  global ids: toml {pa['global_id'].nunique()}, qca {pb['global_id'].nunique()}; median reprojection "
          f"difference {abs(a['median_reprojection_px'] - b['median_reprojection_px']):.2f} px")
    # same identities: the same tracklets (same detections) grouped into the same global ids
    m = pa.merge(pb, on=["camera_id", "track_id"], suffixes=("_toml", "_qca"))

    def groups(col):
        return {frozenset(zip(g["camera_id"], g["track_id"])) for _, g in m.groupby(col)}

    print(f"  identical tracklet -> global id partition: {groups('global_id_toml') == groups('global_id_qca')} "
          f"({len(m)} tracklets)")
    pts = {k: pd.read_parquet(f"results/{k}/triangulate/points3d.parquet") for k in ("pose2sim", "pose2sim_qca")}
    j = pts["pose2sim"].merge(pts["pose2sim_qca"], on=["frame", "global_id"], suffixes=("_t", "_q"))
    if len(j):
        d = np.linalg.norm(j[["x_t", "y_t", "z_t"]].to_numpy() - j[["x_q", "y_q", "z_q"]].to_numpy(), axis=1)
        print(f"  same (frame, global id) points: {len(j)}, 3D distance toml vs qca median {100 * np.median(d):.1f} cm")


if __name__ == "__main__":
    for name, fn in (("fishpy", lambda: (calib_report("fishpy"), session_figures("fishpy"))),
                     ("mouse_arena", mouse_figures), ("pose2sim", pose2sim_figures)):
        try:
            fn()
        except FileNotFoundError as exc:
            print(f"[{name}] skipped: {exc}")
