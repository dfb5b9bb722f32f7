"""3D identity accuracy of the two association methods on the same 2D tracklets (figures, not timings).

Reads finished runs (it runs no detection or tracking), re-associates their per-camera tracklets with
``associate.method: frames`` (with and without appearance) and ``tracklets`` and prints 3D IDF1 /
HOTA / MOTA / ID switches / 3D tracks (``mctrack.evaluate.evaluate_3d_tracking``, 2 cm radius) for:

- the synthetic default with all 4 cameras and with its 2- and 3-camera subsets
  (``snakemake --cores 2`` first);
- the hard scene (``snakemake --cores 2 --configfile config/synthetic_hard.yaml`` first), and its seeds
  1 to 5 when run as sessions ``synthetic_hard_s1`` … ``synthetic_hard_s5`` (a copy of the config and
  camera sheet with ``simulate.seed`` and ``simulate.session`` changed), with the per-point ceiling
  (:func:`_ceiling`), the perfect-linking ceiling (:func:`_linking_ceiling`) and where the rest goes (:func:`_breakdown`: uncovered cells, identity, two-camera
  points off by a border-cut box; the runs need to have reached ``track_2d``). Seeds 0-2 were used
  to try changes of the association; seeds 3-5 were held out;
- every camera pair of the synthetic default and of its seeds 1-8 when run as sessions
  ``synthetic_s1`` … ``synthetic_s8`` (a copy of ``config/config.yaml`` and ``config/cameras.tsv``
  with ``simulate.seed`` and ``simulate.session`` changed): 3D IDF1 of the frames method on each of
  the 6 pairs, with ``pair_gate`` as configured and off, and the mean per seed group (seeds 0-4 were
  used to choose ``pair_gate``, 5-8 held out) — the proxy for two-view rigs; and the pair error
  of the tracker's correct and ghost two-camera pairings on those pairs (:func:`pair_errors`);
- the two-view top + front tank (``config/synthetic_topfront.yaml``: one camera above, one through the
  front glass, each refracted at its own face of the tank — the rig of the real-footage criterion) and
  its seeds when run as sessions ``synthetic_topfront_s1`` … ``synthetic_topfront_s7`` (6 fish) and
  ``synthetic_topfront_n10_s0`` … ``synthetic_topfront_n10_s3`` (10 fish; ``simulate.n_targets: 10``), each a
  copy of the config and camera sheet with ``simulate.seed`` / ``simulate.session`` changed: raw and
  smoothed (gap-filled) 3D IDF1 per seed and their means (:func:`top_front`); nothing was tuned on it;
- the FishPy tank, which has no identity ground truth: fish triangulated per frame, 3D tracks and
  median reprojection error (``snakemake --cores 2 --configfile config/fishpy.yaml`` first).

Sessions whose results are missing are skipped. These are the figures quoted in the README
("associate") and in ``mctrack.associate.AssociationConfig``.

Usage: ``python benchmarks/association_accuracy.py``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import yaml

from mctrack.associate import AssociationConfig, associate_session
from mctrack.calibration import find_camera, load_calibration
from mctrack.evaluate import evaluate_3d_tracking, read_gt3d
from mctrack.tables import TRACKLET2D, read_tables
from mctrack.triangulate import TriangulationConfig, triangulate

REPO = Path(__file__).resolve().parents[1]
METHODS = ("frames", "tracklets")
VARIANTS = (("frames", {}), ("frames", {"appearance_weight": 0.0}), ("tracklets", {}))
SYNTHETIC = [("synthetic", "config/config.yaml", cams) for cams in (
    ("cam1", "cam2", "cam3", "cam4"), ("cam1", "cam2"), ("cam2", "cam3"), ("cam1", "cam3"), ("cam2", "cam4"),
    ("cam1", "cam2", "cam3"))] + [(s, "config/synthetic_hard.yaml", ("cam1", "cam2", "cam3", "cam4"))
                                    for s in ("synthetic_hard", "synthetic_hard_s1", "synthetic_hard_s2",
                                              "synthetic_hard_s3", "synthetic_hard_s4", "synthetic_hard_s5")]


def _run(tracklets, cameras, cfg_file: str, method: str, extra: dict | None = None, full: bool = False):
    cfg = yaml.safe_load((REPO / cfg_file).read_text())
    assoc = dict(cfg.get("associate") or {}, method=method, **(extra or {}))
    res = associate_session(tracklets, cameras, AssociationConfig.from_dict(assoc))
    points, _ = triangulate(res.tracklets, res.association, cameras,
                            TriangulationConfig.from_dict(cfg.get("triangulate")))
    return (points, res) if full else points


def _breakdown(points, gt, res, cameras) -> str:
    """Where the hard scene's 3D IDF1 goes: coverage, identity, inaccurate points.

    - ``uncovered``: ground-truth (frame, target) cells with no triangulated point within 2 cm;
    - ``identity``: covered cells not counted for their target's matched id (covered − IDTP under the
      one-to-one matching of targets to ids by shared cells, as IDF1's), with the targets losing most;
    - ``2-cam off``: fraction of two-camera points beyond 2 cm of the nearest target, for points that
      use a box touching the image border (its centre is biased: part of the target is outside the
      image) and for the others.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree

    gid = [c for c in gt.columns if c not in ("frame", "x", "y", "z")][0]
    G = gt[["x", "y", "z"]].to_numpy()
    tree = cKDTree(np.column_stack([points[["x", "y", "z"]].to_numpy(), points["frame"].to_numpy() * 1e3]))
    d, j = tree.query(np.column_stack([G, gt["frame"].to_numpy() * 1e3]))
    hit = d < 0.02
    cells = pd.crosstab(gt[gid].to_numpy()[hit], points["global_id"].to_numpy()[j[hit]])
    r, c = linear_sum_assignment(-cells.to_numpy())
    lost = cells.sum(1).to_numpy().astype(int)
    lost[r] -= cells.to_numpy()[r, c]
    worst = sorted(zip(lost.tolist(), cells.index.tolist()), reverse=True)[:3]
    tr = res.tracklets[res.tracklets["frame_status"] == "detected"]
    tr = tr.merge(res.association[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"])
    size = np.array([cameras[k].size for k in tr["camera_id"]], float).reshape(-1, 2)
    edge = ((tr["x1"] <= 1) | (tr["y1"] <= 1) | (tr["x2"] >= size[:, 0] - 2) | (tr["y2"] >= size[:, 1] - 2))
    e = edge.groupby([tr["frame"], tr["global_id"]]).any()
    pe = e.reindex(pd.MultiIndex.from_arrays([points["frame"], points["global_id"]])).fillna(False).to_numpy(bool)
    dp, _ = cKDTree(np.column_stack([G, gt["frame"].to_numpy() * 1e3])).query(
        np.column_stack([points[["x", "y", "z"]].to_numpy(), points["frame"].to_numpy() * 1e3]))
    two = points["n_cameras"].to_numpy() == 2
    off = [float((dp[two & m] > 0.02).mean()) if (two & m).any() else float("nan") for m in (pe, ~pe)]
    return (f"uncovered {int((~hit).sum())} of {len(gt)} cells, identity {int(lost.sum())} "
            f"(targets {', '.join(f'{t}: {n}' for n, t in worst)}), 2-cam off >2 cm: "
            f"{off[0]:.2f} with a border box ({int((two & pe).sum())} points), {off[1]:.2f} without")


def _nearest_target(points, gt):
    """``(P,)`` column index (in ``gt``'s pivot order) of the true target within 2 cm of each point, -1 if none."""
    import numpy as np

    gid = [c for c in gt.columns if c not in ("frame", "x", "y", "z")][0]
    g = gt.pivot(index="frame", columns=gid, values=["x", "y", "z"])
    G = np.stack([g[c].reindex(points["frame"]).to_numpy() for c in ("x", "y", "z")], -1)   # (P, N, 3)
    d = np.linalg.norm(G - points[["x", "y", "z"]].to_numpy()[:, None], axis=2)
    return np.where(np.nanmin(d, 1) < 0.02, np.nanargmin(np.where(np.isfinite(d), d, np.inf), 1), -1)


def _ceiling(points, gt) -> float:
    """3D IDF1 if every triangulated point took the id of the nearest true target within 2 cm.

    What identity alone could reach with these points: the rest is lost to
    missed, merged or misplaced detections.
    """
    near = _nearest_target(points, gt)
    oracle = points.assign(global_id=near)[near >= 0].drop_duplicates(["frame", "global_id"])
    return float(evaluate_3d_tracking(oracle, gt, 0.02)["IDF1"])


def _linking_ceiling(points, gt) -> float:
    """3D IDF1 if every global id were renamed to the true fish most of its points lie within 2 cm of.

    What joining the fragments of one fish correctly (relinking, stitching) could reach with these
    ids: the rest is lost inside the ids (a swap the id carries on) or to missing points. Where two
    renamed ids overlap in a frame one point is kept.
    """
    import numpy as np

    near = _nearest_target(points, gt)
    ids = points["global_id"].to_numpy()
    cnt = pd.crosstab(ids[near >= 0], near[near >= 0])
    major = pd.Series(cnt.columns.to_numpy()[cnt.to_numpy().argmax(1)], index=cnt.index)
    new = major.reindex(ids).to_numpy()
    new = np.where(np.isfinite(new), new, ids + 10 ** 6).astype(np.int64)   # ids near no fish stay apart
    renamed = points.assign(global_id=new).drop_duplicates(["frame", "global_id"])
    return float(evaluate_3d_tracking(renamed, gt, 0.02)["IDF1"])


def synthetic() -> None:
    for session, cfg_file, cams in SYNTHETIC:
        base = REPO / "results" / session
        if not list((base / "track_2d").glob("cam*.parquet")):
            print(f"[{session}] no finished run: skipped")
            continue
        tr = read_tables(sorted((base / "track_2d").glob("cam*.parquet")), TRACKLET2D)
        tr = tr[tr["camera_id"].isin(cams)]
        rig = load_calibration(base / "simulate" / "calibration.toml")
        cameras = {c: rig[c] for c in cams}
        gt = read_gt3d(base / "simulate" / "gt3d.csv")
        row = []
        for method, extra in VARIANTS:
            points, res = _run(tr, cameras, cfg_file, method, extra, full=True)
            m = evaluate_3d_tracking(points, gt, 0.02)
            name = method + (" no appearance" if extra else "")
            row.append(f"{name} IDF1 {m['IDF1']:.3f} HOTA {m['HOTA']:.3f} MOTA {m['MOTA']:.3f} "
                       f"IDSW {m['IDSW']} tracks {m['n_tracks_3d']}")
            if method == "frames" and not extra and session.startswith("synthetic_hard"):
                row.append(f"per-point ceiling IDF1 {_ceiling(points, gt):.3f}")
                row.append(f"perfect-linking ceiling IDF1 {_linking_ceiling(points, gt):.3f}")
                row.append(_breakdown(points, gt, res, cameras))
        print(f"[{session}] {','.join(cams)}: " + " | ".join(row))


def _seed_sessions(seeds):
    """``(seed, session, tracklets, rig)`` of the default scene's finished seed runs (``synthetic``, ``synthetic_sN``)."""
    for seed in seeds:
        session = "synthetic" if seed == 0 else f"synthetic_s{seed}"
        base = REPO / "results" / session
        if not list((base / "track_2d").glob("cam*.parquet")):
            continue
        yield (seed, session, read_tables(sorted((base / "track_2d").glob("cam*.parquet")), TRACKLET2D),
               load_calibration(base / "simulate" / "calibration.toml"))


def two_view() -> None:
    import itertools

    import numpy as np

    from mctrack.smooth import SmoothConfig, smooth_tracks

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    smooth = SmoothConfig.from_dict(cfg.get("smooth"))
    groups: dict[str, list] = {}
    for seed, session, tr, rig in _seed_sessions(range(9)):
        gt = read_gt3d(REPO / "results" / session / "simulate" / "gt3d.csv")
        row = {"smoothed": []}
        for variant, extra in (("pair_gate", {}), ("off", {"pair_gate": None})):
            row[variant] = []
            for cams in itertools.combinations(sorted(rig), 2):
                pts = _run(tr[tr["camera_id"].isin(cams)], {c: rig[c] for c in cams}, "config/config.yaml", "frames",
                           extra)
                row[variant].append(evaluate_3d_tracking(pts, gt, 0.02)["IDF1"])
                if variant == "pair_gate":   # the smooth stage's output (gap-filled), as in the session file
                    row["smoothed"].append(evaluate_3d_tracking(smooth_tracks(pts, cfg["simulate"]["fps"], smooth),
                                                                gt, 0.02)["IDF1"])
        print(f"[{session}] 2-camera pairs {', '.join('+'.join(c[-1] for c in p) for p in itertools.combinations(sorted(rig), 2))}: "
              f"IDF1 {' '.join(f'{v:.3f}' for v in row['pair_gate'])} (pair_gate off: "
              f"{' '.join(f'{v:.3f}' for v in row['off'])})")
        groups.setdefault("seeds 0-4 (tuning)" if seed <= 4 else "seeds 5-8 (held out)", []).append(row)
    for name, rows in groups.items():
        on = np.array([r["pair_gate"] for r in rows])
        off = np.array([r["off"] for r in rows])
        sm = np.array([r["smoothed"] for r in rows])
        print(f"[two-view, {name}] mean 3D IDF1 {on.mean():.3f} (pair_gate off {off.mean():.3f}); pairs >= 0.95: "
              f"{(on >= 0.95).mean():.0%} (off {(off >= 0.95).mean():.0%}); worst {on.min():.3f} (off {off.min():.3f}); "
              f"smoothed and gap-filled: mean {sm.mean():.3f}, pairs >= 0.95: {(sm >= 0.95).mean():.0%}, "
              f"worst {sm.min():.3f}")


def pair_errors() -> None:
    """Pair error (``associate.pair_gate``'s measure) of correct and ghost two-camera pairings.

    On every camera pair of the synthetic default's seeds 0-4 (sessions ``synthetic``,
    ``synthetic_s1`` … ``synthetic_s4``), the frames tracker's (track, frame) pairs are labelled by the
    simulator's 2D ground truth (each row takes the target whose box centre is within 8 px): *correct*
    when both rows are one target, *ghost* when they are two. The pair error is the larger of the two
    rows' reprojection errors of the rays' midpoint over τ₀ = √((box_fraction·√(w·h))² +
    centroid_sigma²) (:func:`mctrack.associate.frames._pair_error`). These are the figures quoted for
    ``pair_gate`` in :class:`mctrack.associate.AssociationConfig` (tracker run with the check off,
    the pairings it was designed to catch) and those left with it on.
    """
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for gate in ("off", "as configured"):
        extra = {"pair_gate": None} if gate == "off" else {}
        ac = AssociationConfig.from_dict(dict(cfg.get("associate") or {}, method="frames", **extra))
        _pair_error_figures(ac, f"pair_gate {gate}")


def _pair_error_figures(ac: AssociationConfig, label: str) -> None:
    import itertools

    import numpy as np
    from scipy.spatial import cKDTree

    from mctrack.associate.data import TrackletIndex
    from mctrack.associate.evidence import closest_points
    from mctrack.associate.frames import appearance_sigma, track_detections

    out = {True: [], False: []}
    for _, session, trall, rig in _seed_sessions(range(5)):
        base = REPO / "results" / session
        gts = {}
        for c in rig:   # MOT ground truth: frame (1-based), id, left, top, width, height
            g = pd.read_csv(base / "simulate" / "gt" / f"{c}.txt", header=None).to_numpy()
            gts[c] = (cKDTree(np.column_stack([g[:, 2] + g[:, 4] / 2, g[:, 3] + g[:, 5] / 2, (g[:, 0] - 1) * 1e4])),
                      g[:, 1].astype(np.int64))
        for cams in itertools.combinations(sorted(rig), 2):
            idx = TrackletIndex.build(trall[trall["camera_id"].isin(cams)])
            cl = [rig[c] for c in idx.camera_names]
            track, _, _ = track_detections(idx, cl, ac, appearance_sigma(idx) if idx.appearance is not None else None)
            cam = idx.keys["cam"].to_numpy()[idx.tk]
            lab = np.full(len(track), -1, np.int64)
            for ci, c in enumerate(idx.camera_names):
                r = np.flatnonzero((cam == ci) & (track >= 0))
                d, k = gts[c][0].query(np.column_stack([idx.cx[r], idx.cy[r], idx.frame[r] * 1e4]),
                                       distance_upper_bound=8.0)
                lab[r[np.isfinite(d)]] = gts[c][1][k[np.isfinite(d)]]
            r = np.flatnonzero(track >= 0)
            r = r[np.lexsort((cam[r], track[r], idx.frame[r]))]
            key = idx.frame[r] * (int(track.max()) + 1) + track[r]
            two = np.flatnonzero((key[1:] == key[:-1]) & (cam[r[1:]] != cam[r[:-1]]))
            two = two[(np.r_[key[2:], -1][two] != key[two]) & (np.r_[-1, key[:-1]][two] != key[two])]  # exactly 2
            ra, rb = r[two], r[two + 1]
            ok = (lab[ra] >= 0) & (lab[rb] >= 0)
            ra, rb = ra[ok], rb[ok]
            o, dv = idx.row_rays(dict(zip(idx.camera_names, cl)))
            _, _, _, X = closest_points(o[ra], dv[ra], o[rb], dv[rb])
            e = np.zeros(len(ra))
            for rr in (ra, rb):
                for ci, cm in enumerate(cl):
                    m = cam[rr] == ci
                    uv = cm.project(X[m])
                    tau = np.hypot(ac.box_fraction * np.sqrt(idx.w[rr[m]] * idx.h[rr[m]]), ac.centroid_sigma)
                    e[m] = np.fmax(e[m], np.hypot(uv[:, 0] - idx.cx[rr[m]], uv[:, 1] - idx.cy[rr[m]]) / tau)
            same = lab[ra] == lab[rb]
            out[True].append(e[same])
            out[False].append(e[~same])
    for name, correct in (("correct", True), ("ghost", False)):
        e = np.concatenate(out[correct]) if out[correct] else np.zeros(0)
        if not len(e):
            continue
        q = np.quantile(e, [0.5, 0.9, 0.99, 0.999, 1.0])
        print(f"[pair error, camera pairs of seeds 0-4, {label}] {name} pairs: n {len(e)}, median {q[0]:.2f}, 90 % {q[1]:.2f}, "
              f"99 % {q[2]:.2f}, 99.9 % {q[3]:.2f}, max {q[4]:.2f} tau0; below 1.0: {(e < 1.0).mean():.1%}")


def top_front() -> None:
    """3D IDF1 (2 cm) of the two-view top + front tank's seeds, raw points and smoothed tracks."""
    import numpy as np

    from mctrack.simulate import SimulationConfig
    from mctrack.smooth import SmoothConfig, smooth_tracks

    cfg = yaml.safe_load((REPO / "config/synthetic_topfront.yaml").read_text())
    smooth = SmoothConfig.from_dict(cfg.get("smooth"))
    fps = cfg["simulate"].get("fps", SimulationConfig.fps)
    groups = {"6 fish": ["synthetic_topfront"] + [f"synthetic_topfront_s{k}" for k in range(1, 8)],
              "10 fish": [f"synthetic_topfront_n10_s{k}" for k in range(4)]}
    for name, sessions in groups.items():
        raw, sm = [], []
        for session in sessions:
            base = REPO / "results" / session
            if not list((base / "track_2d").glob("*.parquet")):
                continue
            tr = read_tables(sorted((base / "track_2d").glob("*.parquet")), TRACKLET2D)
            rig = load_calibration(base / "simulate" / "calibration.toml")
            gt = read_gt3d(base / "simulate" / "gt3d.csv")
            pts = _run(tr, dict(rig), "config/synthetic_topfront.yaml", "frames")
            m = evaluate_3d_tracking(pts, gt, 0.02)
            raw.append(m["IDF1"])
            sm.append(evaluate_3d_tracking(smooth_tracks(pts, fps, smooth), gt, 0.02)["IDF1"])
            print(f"[{session}] top + front: IDF1 {raw[-1]:.3f} (smoothed {sm[-1]:.3f}), HOTA {m['HOTA']:.3f}, "
                  f"{m['n_tracks_3d']} 3D tracks, ID switches {m['IDSW']}")
        if raw:
            print(f"[top + front, {name}, {len(raw)} seeds] mean 3D IDF1 {np.mean(raw):.3f} (smoothed "
                  f"{np.mean(sm):.3f}); seeds >= 0.95: {np.mean(np.array(raw) >= 0.95):.0%} (smoothed "
                  f"{np.mean(np.array(sm) >= 0.95):.0%}); worst {min(raw):.3f} (smoothed {min(sm):.3f})")


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
    two_view()
    pair_errors()
    top_front()
    fishpy()
