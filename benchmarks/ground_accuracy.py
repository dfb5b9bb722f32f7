"""Issue 8: where the synthetic floor scene loses accuracy and identity, stage by stage.

Run the floor session first (``snakemake --cores 2 --configfile config/synthetic_ground.yaml``), then
``python benchmarks/ground_accuracy.py [results/synthetic_ground] [--config config/synthetic_ground.yaml]``.
Prints one JSON object:

``detection``  per camera: recall / precision (IoU >= 0.5, GT boxes with visibility >= 0.25), merged
               detections (one box over two GT boxes), and the ground error (cm) of the foot points of
               detections matched to a GT box whose bottom is inside the image (``foot_error_cm``: median
               distance to the GT foot point; ``foot_bias_cm``: median signed error along the viewing
               direction, + = too far from the camera), next to the same for the GT boxes themselves
               (``gt_box_foot_error_cm``, the floor of the foot-point model).
``track2d``    per camera IDF1 of the per-camera tracker before association (metrics.json ``cameras_track2d``).
``pipeline``   ground error median (cm), ground IDF1 and handoff recall / precision of the run (metrics.json).
``oracle_gt_boxes``  the same three figures when the ground association and handoff stage gets the GT boxes
               as tracklets (per camera, a new track id whenever a target re-enters after more than
               ``max_coast`` frames out of view, as a perfect 2D tracker would): the ceiling of the ground
               stage, so pipeline minus oracle is what detection + 2D tracking lose.
``handoff_definitions``  handoff recall / precision of the run with predicted and ground-truth events each
               observation-only or view-entry (``ground.handoff_min_outside`` / ``handoff_min_visible``), at 15
               and 30 frames tolerance.
``appearance`` whether the tracklets' chromaticity separates targets within a camera and across cameras (raw
               and per-camera z-scores; AUC, 0.5 = chance), and ``replay_appearance_W_handoff_H``: the ground
               stage replayed on the run's tracklets with ``appearance_weight`` W and
               ``handoff_appearance_weight`` H.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import linear_sum_assignment

from mctrack.associate.ground import (
    GroundConfig,
    associate_ground,
    evaluate_handoffs,
    ground_gid_targets,
    ground_points,
    gt_handoffs,
    session_handoffs,
    track_ground,
    weak_rows,
)
from mctrack.calibration import load_calibration
from mctrack.evaluate import box_iou, evaluate_3d_tracking, read_gt3d, read_mot_gt
from mctrack.ground import ground_positions, homography_from_camera
from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, TRACKLET2D, read_table, read_tables


def gt_tracklets(gts: dict[str, pd.DataFrame], max_coast: int = 15, min_vis: float = 0.25) -> pd.DataFrame:
    """TRACKLET2D rows from per-camera MOT GT: a perfect 2D tracker (new id after > ``max_coast`` frames unseen)."""
    rows = []
    for cam, g in gts.items():
        g = g[(g["conf"] > 0) & (g["visibility"] >= min_vis)].sort_values(["id", "frame"])
        new = (g["frame"].diff() > max_coast + 1) | (g["id"] != g["id"].shift())
        tid = new.cumsum().to_numpy()
        rows.append(pd.DataFrame({"camera_id": cam, "track_id": tid, "frame": g["frame"].to_numpy(),
                                  "x1": g["x1"], "y1": g["y1"], "x2": g["x2"], "y2": g["y2"],
                                  "cx": (g["x1"] + g["x2"]) / 2, "cy": (g["y1"] + g["y2"]) / 2,
                                  "frame_status": "detected", "det_index": 0, "confidence": 1.0}))
    return TRACKLET2D.coerce(pd.concat(rows, ignore_index=True))


def ground_scores(tracklets: pd.DataFrame, maps: dict, cfg: GroundConfig, gts: dict, gt3d: pd.DataFrame,
                  fps: float, radius: float) -> dict:
    """Ground error median (cm), ground IDF1 and handoff recall/precision of one set of tracklets."""
    if cfg.method == "kalman":
        tracklets, association, _, gxy = track_ground(tracklets, maps, cfg, fps=fps)
    else:
        association, _, gxy = associate_ground(tracklets, maps, cfg, fps=fps)
    points = ground_points(tracklets, association, gxy, weak=weak_rows(tracklets, maps, cfg))
    t3 = evaluate_3d_tracking(points, gt3d, radius)
    ho = evaluate_handoffs(session_handoffs(tracklets, association, cfg, maps, points),
                           gt_handoffs(gts, cfg.min_absence, gt3d=gt3d, maps=maps, min_outside=cfg.handoff_min_outside),
                           ground_gid_targets(points, gt3d, radius))
    pairs = points[["frame", "global_id", "x", "y"]].merge(gt3d.rename(columns={"x": "gx", "y": "gy"}), on="frame")
    d = (np.hypot(pairs["x"] - pairs["gx"], pairs["y"] - pairs["gy"]) * 100).groupby(
        [pairs["frame"], pairs["global_id"]]).min()
    return {"ground_median_error_cm": float(np.median(d)), "ground_IDF1": t3["IDF1"],
            "n_global_ids": int(association["global_id"].nunique()), "handoff_recall": ho["recall"],
            "handoff_precision": ho["precision"]}


def detection_stage(dets: pd.DataFrame, gts: dict, maps: dict, cfg: GroundConfig, gt3d: pd.DataFrame) -> dict:
    """Per camera recall, precision, merged boxes and foot-point ground error of detections vs GT."""
    out = {}
    foot = gt3d.set_index(["frame", "target_id"])[["x", "y"]]
    for cam, gt in gts.items():
        H = maps[cam].size[1]
        g = gt[(gt["conf"] > 0) & (gt["visibility"] >= 0.25)]
        d = dets[dets["camera_id"] == cam]
        by_f = dict(tuple(d.groupby("frame")))
        tp = merged = 0
        pairs = []
        for f, gg in g.groupby("frame"):
            dd = by_f.get(f)
            if dd is None:
                continue
            iou = box_iou(dd[["x1", "y1", "x2", "y2"]].to_numpy(), gg[["x1", "y1", "x2", "y2"]].to_numpy())
            r, c = linear_sum_assignment(-np.where(iou >= 0.5, iou, 0))
            ok = iou[r, c] >= 0.5
            tp += int(ok.sum())
            merged += int(((iou > 0.1).sum(1) >= 2).sum())
            pairs.append(pd.DataFrame({"frame": f, "target_id": gg["id"].to_numpy()[c[ok]],
                                       **{k: dd[k].to_numpy()[r[ok]] for k in ("x1", "y1", "x2", "y2")},
                                       **{"g" + k: gg[k].to_numpy()[c[ok]] for k in ("x1", "y1", "x2", "y2")}}))
        p = pd.concat(pairs, ignore_index=True)
        p = p[(p["y2"] < H - 2) & (p["gy2"] < H - 2)].reset_index(drop=True)
        true = foot.reindex(pd.MultiIndex.from_frame(p[["frame", "target_id"]])).to_numpy()
        res = {"det_recall": tp / max(len(g), 1), "det_precision": tp / max(len(d), 1), "merged_detections": merged,
               "n_detections": int(len(d)), "n_gt": int(len(g))}
        for tag, cols in (("", ("x1", "y1", "x2", "y2")), ("gt_box_", ("gx1", "gy1", "gx2", "gy2"))):
            rows = p[list(cols)].set_axis(["x1", "y1", "x2", "y2"], axis=1).assign(camera_id=cam)
            est = ground_positions(rows, {cam: maps[cam]}, cfg.foot_point, cfg.foot_offset)
            err = est - true
            ray = true - maps[cam].camera.center[:2]
            ray /= np.linalg.norm(ray, axis=1, keepdims=True)
            res[f"{tag}foot_error_cm"] = float(np.nanmedian(np.linalg.norm(err, axis=1)) * 100)
            res[f"{tag}foot_bias_cm"] = float(np.nanmedian(np.sum(err * ray, axis=1)) * 100)
        out[cam] = res
    return out


def _auc(same: np.ndarray, diff: np.ndarray) -> float:
    """P(a same-target distance < a different-target distance) (ties 1/2): 1 = appearance separates, 0.5 = chance."""
    if not len(same) or not len(diff):
        return float("nan")
    s, d = np.asarray(same)[:, None], np.asarray(diff)[None, :]
    return float(((s < d).sum() + 0.5 * (s == d).sum()) / (s.size * d.size))


def appearance_stage(tracklets: pd.DataFrame, maps: dict, cfg: GroundConfig, gt3d: pd.DataFrame,
                     radius: float) -> dict:
    """Does chromaticity tell targets apart, within one camera and across cameras (raw vs per-camera z-score)?

    Each 2D tracklet (>= 10 detected rows with chroma) is labelled with the GT target whose foot point is
    nearest its rows' ground positions (majority within ``radius`` m, >= 80 % of its labelled rows) and
    summarised by its median chromaticity, raw and as per-camera z-scores
    (:func:`mctrack.associate.ground._appearance_zscores`). Per pair of such tracklets: within one camera
    (not alive together) and across two cameras, the AUC of "same target closer than a different one"
    (1 = separates, 0.5 = chance) and the median distances.
    """
    from mctrack.associate.ground import _appearance_zscores

    tr = tracklets[tracklets["frame_status"].astype(str) == "detected"].reset_index(drop=True)
    if not {"chroma_r", "chroma_g"} <= set(tr.columns) or not np.isfinite(tr["chroma_r"]).any():
        return {"note": "no chromaticity in the tracklets (re-run detect)"}
    gxy = ground_positions(tr, maps, cfg.foot_point, cfg.foot_offset)
    app = tr[["chroma_r", "chroma_g"]].to_numpy(np.float64)
    cam = tr["camera_id"].astype(str).to_numpy()
    ucam, cam_i = np.unique(cam, return_inverse=True)
    tk, _ = pd.factorize(pd.MultiIndex.from_arrays([cam, tr["track_id"].to_numpy()]))
    z = _appearance_zscores(app, cam_i, tk, np.isfinite(gxy).all(1))
    pairs = pd.DataFrame({"i": np.arange(len(tr)), "frame": tr["frame"], "x": gxy[:, 0], "y": gxy[:, 1]}).merge(
        gt3d[["frame", "target_id", "x", "y"]].rename(columns={"x": "gx", "y": "gy"}), on="frame")
    pairs = pairs.assign(d=np.hypot(pairs["x"] - pairs["gx"], pairs["y"] - pairs["gy"])).dropna(subset=["d"])
    near = pairs.loc[pairs.groupby("i")["d"].idxmin()]
    near = near[near["d"] < radius]
    target = np.full(len(tr), -1)
    target[near["i"].to_numpy()] = near["target_id"].to_numpy()
    d = pd.DataFrame({"tk": tk, "cam": cam, "t": target, "frame": tr["frame"], "r": app[:, 0], "g": app[:, 1],
                      "zr": z[:, 0], "zg": z[:, 1]}).dropna()
    d = d[d["t"] >= 0]
    per = d.groupby("tk").agg(cam=("cam", "first"), first=("frame", "min"), last=("frame", "max"), n=("t", "size"),
                              t=("t", lambda x: x.mode().iloc[0]), share=("t", lambda x: (x == x.mode().iloc[0]).mean()),
                              r=("r", "median"), g=("g", "median"), zr=("zr", "median"), zg=("zg", "median"))
    per = per[(per["n"] >= 10) & (per["share"] >= 0.8)].reset_index(drop=True)
    a, b = np.triu_indices(len(per), 1)
    P = per.iloc[a].reset_index(drop=True).join(per.iloc[b].reset_index(drop=True), rsuffix="_b")
    same = (P["t"] == P["t_b"]).to_numpy()
    one_cam = (P["cam"] == P["cam_b"]).to_numpy()
    apart = ((P["last"] < P["first_b"]) | (P["last_b"] < P["first"])).to_numpy()
    raw = np.hypot(P["r"] - P["r_b"], P["g"] - P["g_b"]).to_numpy()
    zd = np.hypot(P["zr"] - P["zr_b"], P["zg"] - P["zg_b"]).to_numpy()
    out = {"n_tracklets": int(len(per))}
    for tag, sel in (("within_camera", one_cam & apart), ("across_cameras", ~one_cam)):
        for name, dist in (("raw", raw), ("zscore", zd)):
            ok = sel & np.isfinite(dist)
            out[f"{tag}_{name}"] = {"auc": round(_auc(dist[ok & same], dist[ok & ~same]), 3),
                                    "median_same": round(float(np.median(dist[ok & same])), 4) if (ok & same).any() else None,
                                    "median_different": round(float(np.median(dist[ok & ~same])), 4) if (ok & ~same).any() else None,
                                    "n_same": int((ok & same).sum()), "n_different": int((ok & ~same).sum())}
    return out


def handoff_definitions(res: Path, maps: dict, cfg: GroundConfig, gts: dict, gt3d: pd.DataFrame, radius: float) -> dict:
    """Handoff recall / precision of the run for each pairing of event definitions, at 15 and 30 frames tolerance.

    Predicted and ground-truth events either ``observation``-only (every run restart after ``min_absence`` frames
    is a handoff; GT "in view" = visibility >= 0.25) or ``view_entry`` (the configured ``handoff_min_outside`` /
    ``handoff_min_visible``: a run counts only after the target's ground position was outside the camera's
    view; predicted slivers below the visible fraction are not "in view"). ``pred_view_entry_gt_observation``
    shows the prediction's gain on the old ground truth, i.e. not only a change of the evaluation.
    """
    tracklets = read_table(res / "associate/tracklets.parquet", TRACKLET2D)
    association = read_table(res / "associate/association.parquet", ASSOCIATION)
    points = read_table(res / "triangulate/points3d.parquet", POINTS3D)
    mapping = ground_gid_targets(points, gt3d, radius)
    obs = dataclasses.replace(cfg, handoff_min_outside=0, handoff_min_visible=0.0)
    pred = {"observation": session_handoffs(tracklets, association, obs, maps, points),
            "view_entry": session_handoffs(tracklets, association, cfg, maps, points)}
    gt = {"observation": gt_handoffs(gts, cfg.min_absence),
          "view_entry": gt_handoffs(gts, cfg.min_absence, gt3d=gt3d, maps=maps, min_outside=cfg.handoff_min_outside)}
    out = {}
    for pk, p in pred.items():
        for gk, g in gt.items():
            for tol in (15, 30):
                r = evaluate_handoffs(p, g, mapping, tol)
                out[f"pred_{pk}_gt_{gk}_tol{tol}"] = {k: r[k] for k in ("recall", "precision", "n_gt", "n_pred")}
    return out


def main(res: Path, config: Path) -> dict:
    cfg_all = yaml.safe_load(config.read_text())
    cfg = GroundConfig.from_dict(cfg_all.get("ground"))
    radius = float(cfg_all.get("evaluate", {}).get("match_distance_3d", 0.5))
    fps = float(cfg_all.get("simulate", {}).get("fps", 30.0))
    sim = res / "simulate"
    rig = load_calibration(sim / "calibration.toml")
    maps = {name: homography_from_camera(cam) for name, cam in rig.items()}
    gts = {p.stem: read_mot_gt(p) for p in sorted((sim / "gt").glob("*.txt"))}
    gt3d = read_gt3d(sim / "gt3d.csv")
    dets = pd.concat([read_table(p, DETECTION) for p in sorted((res / "detect").glob("*/*.parquet"))],
                     ignore_index=True)
    max_coast = int(cfg_all.get("track_2d", {}).get("max_coast_frames", 15))
    metrics = json.loads((res / "eval/metrics.json").read_text())
    out = {"detection": detection_stage(dets, gts, maps, cfg, gt3d),
           "track2d": {c: {"IDF1": m["IDF1"], "IDSW": m["IDSW"]} for c, m in metrics.get("cameras_track2d", {}).items()},
           "pipeline": {"ground_median_error_cm": metrics["handoffs"]["ground_median_error_cm"],
                        "ground_IDF1": metrics["tracking_3d"]["IDF1"],
                        "n_global_ids": metrics["tracking_3d"]["n_tracks_3d"],
                        "handoff_recall": metrics["handoffs"]["recall"],
                        "handoff_precision": metrics["handoffs"]["precision"]},
           "oracle_gt_boxes": ground_scores(gt_tracklets(gts, max_coast), maps, cfg, gts, gt3d, fps, radius)}
    tracklets = read_tables(sorted((res / "track_2d").glob("*.parquet")), TRACKLET2D)
    other = "tracklets" if cfg.method == "kalman" else "kalman"
    out[f"replay_method_{cfg.method}"] = ground_scores(tracklets, maps, cfg, gts, gt3d, fps, radius)
    out["appearance"] = appearance_stage(tracklets, maps, cfg, gt3d, radius)
    for w, wh in ((0.0, 0.0), (cfg.appearance_weight, 0.0), (cfg.appearance_weight, 1.0)):
        out[f"replay_appearance_{w:g}_handoff_{wh:g}"] = ground_scores(
            tracklets, maps, dataclasses.replace(cfg, appearance_weight=w, handoff_appearance_weight=wh), gts, gt3d,
            fps, radius)
    out["handoff_definitions"] = handoff_definitions(res, maps, cfg, gts, gt3d, radius)
    cfg_other = dataclasses.replace(cfg, method=other)
    out[f"replay_method_{other}"] = ground_scores(tracklets, maps, cfg_other, gts, gt3d, fps, radius)
    out[f"oracle_gt_boxes_method_{other}"] = ground_scores(gt_tracklets(gts, max_coast), maps, cfg_other, gts, gt3d,
                                                           fps, radius)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default="results/synthetic_ground", type=Path)
    ap.add_argument("--config", default="config/synthetic_ground.yaml", type=Path)
    a = ap.parse_args()
    print(json.dumps(main(a.results, a.config), indent=1))
