"""QC reductions, proxy metrics and plots (issue 9)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mctrack.qc import PLOTS, collect_qc_data, make_qc_plots, proxy_metrics
from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, RESIDUALS, TRACKLET2D, write_table


def _tracklets(cam, tid, frames, coasted=()):
    f = np.asarray(frames)
    st = np.where(np.isin(f, coasted), "coasted", "detected")
    return pd.DataFrame({"camera_id": cam, "track_id": tid, "frame": f, "x1": 0.0, "y1": 0.0, "x2": 5.0, "y2": 5.0,
                         "cx": 2.5, "cy": 2.5, "frame_status": st, "det_index": 0, "confidence": 0.9})


def _scene(tmp_path):
    tr = pd.concat([_tracklets("a", 1, list(range(0, 10)) + list(range(15, 20)), coasted=[3]),
                    _tracklets("b", 7, range(0, 20)), _tracklets("b", 8, range(30, 40))], ignore_index=True)
    tr = TRACKLET2D.coerce(tr)
    assoc = ASSOCIATION.coerce(pd.DataFrame({"camera_id": ["a", "b", "b"], "track_id": [1, 7, 8],
                                             "global_id": [0, 0, 1], "n_frames": [15, 20, 10],
                                             "n_linked_cameras": [2, 2, 1]}))
    # the workflow's chunk files: split at frame 5 (runs must be merged across the border)
    files = []
    for cam in ("a", "b"):
        for lo, hi in ((0, 5), (5, 50)):
            p = tmp_path / f"{cam}_{lo}.parquet"
            write_table(tr[(tr["camera_id"] == cam) & tr["frame"].between(lo, hi - 1)], TRACKLET2D, p)
            files.append(p)
    det = DETECTION.coerce(tr[tr["frame_status"] == "detected"].assign(class_id=0))
    pts = POINTS3D.coerce(pd.DataFrame({"frame": np.arange(10), "global_id": 0, "x": 0.0, "y": 0.0, "z": 0.0,
                                        "reprojection_error": np.arange(10, dtype=float), "n_cameras": 2,
                                        "position_std": 0.01, "confidence": 0.9, "std_x": 0.006, "std_y": 0.006,
                                        "std_z": 0.006}))
    res = RESIDUALS.coerce(pd.DataFrame({"frame": np.repeat(np.arange(10), 2), "global_id": 0,
                                         "camera_id": ["a", "b"] * 10, "u_obs": 0, "v_obs": 0, "u_proj": 0,
                                         "v_proj": 0, "residual_px": [1.0, 3.0] * 10}))
    write_table(res, RESIDUALS, tmp_path / "res.parquet")
    return tr, files, det, assoc, pts, res


def test_runs_lengths_and_proxy_metrics(tmp_path):
    tr, files, det, assoc, pts, _ = _scene(tmp_path)
    for source in (tr, files):
        qc = collect_qc_data(det, source, assoc, pts, tmp_path / "res.parquet", 50, ["a", "b"])
        runs = qc.runs.sort_values(["camera", "global_id", "start"]).values.tolist()
        # camera a: frame 3 coasted splits 0-9; gap 10-14; camera b: one run per tracklet
        assert runs == [[0, 0, 0, 3], [0, 0, 4, 10], [0, 0, 15, 20], [1, 0, 0, 20], [1, 1, 30, 40]]
        assert sorted(qc.track_lengths["length"]) == [10, 15, 20]
        m = proxy_metrics(qc)
        assert m["unassociated_tracklet_fraction"] == 1 / 3
        assert m["unassociated_row_fraction"] == 10 / 45
        assert m["global_ids"] == 2 and m["multi_camera_ids"] == 1 and m["ids_per_frame_max"] == 1
        assert m["coverage_median"] == 10 / 20  # global id 0: alive in 20 frames, triangulated in 10
        assert m["residual_px_p50[a]"] == 1.0 and m["residual_px_p50[b]"] == 3.0
        assert m["coasted_fraction"] == 1 / 45
        assert qc.det_per_frame.sum() == len(det)


def test_all_plots_and_summary_written(tmp_path):
    tr, files, det, assoc, pts, res = _scene(tmp_path)
    qc = collect_qc_data(det, files, assoc, pts, res, 50, ["a", "b"])
    outs = {n: tmp_path / f"{n}.png" for n in PLOTS}
    outs["summary"] = tmp_path / "summary.tsv"
    make_qc_plots(qc, outs, title="t")
    assert all(p.stat().st_size > 3000 for n, p in outs.items() if n != "summary")
    s = pd.read_csv(outs["summary"], sep="\t").set_index("metric")["value"]
    assert float(s["unassociated_tracklet_fraction"]) == round(1 / 3, 4)
    # an empty session still gives every plot
    empty = collect_qc_data(DETECTION.empty(), TRACKLET2D.empty(), ASSOCIATION.empty(), POINTS3D.empty(), None, 30,
                            ["a"])
    make_qc_plots(empty, {n: tmp_path / f"e_{n}.png" for n in PLOTS} | {"summary": tmp_path / "e.tsv"})
    assert np.isnan(proxy_metrics(empty)["unassociated_tracklet_fraction"])


def test_rows_without_a_detection_counted_by_status(tmp_path):
    tr, _, det, assoc, pts, _ = _scene(tmp_path)
    status = tr["frame_status"].astype(str).to_numpy()
    status[(tr["camera_id"] == "b").to_numpy() & tr["frame"].isin([2, 3, 4]).to_numpy()] = "interpolated"
    status[(tr["camera_id"] == "b").to_numpy() & (tr["frame"] == 35).to_numpy()] = "reprojected"
    tr = TRACKLET2D.coerce(tr.assign(frame_status=status))
    qc = collect_qc_data(det, tr, assoc, pts, None, 50, ["a", "b"])
    assert {k: v.tolist() for k, v in qc.by_status.items()} == {"coasted": [1, 0], "interpolated": [0, 3],
                                                                "reprojected": [0, 1]}
    assert qc.coasted.tolist() == [1, 4] and qc.rows.tolist() == [15, 30]
