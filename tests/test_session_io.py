"""The complete session file, its reader and the exports (issue 9)."""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import make_tracklets

import mctrack
from mctrack.associate import associate
from mctrack.io.export import export_mot, export_movement, export_session, export_tracks_3d, movement_dataset
from mctrack.io.session import assemble_session, collect_provenance, read_session
from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, TRACKLET2D, write_table
from mctrack.triangulate import triangulate


@pytest.fixture(scope="module")
def tables(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    tr.loc[(tr["camera_id"] == "c2") & (tr["frame"].between(20, 24)) & (tr["track_id"] == 11),
           ["frame_status", "det_index", "confidence"]] = ["coasted", -1, np.nan]
    tr["confidence"] = tr["confidence"].astype(np.float32) * np.float32(0.97)
    assoc, _ = associate(tr, cams)
    assoc["support"] = np.linspace(0.1, 1.0, len(assoc))  # the column helper "assoc" adds; kept when present
    pts, _ = triangulate(tr, assoc, cams)
    pts.loc[pts.index[:3], "position_std"] = np.nan  # a NaN-quality point is stored but never returned by tracks_3d
    det = tr[tr["frame_status"] == "detected"].assign(class_id=0)[list(DETECTION.columns)]
    det = DETECTION.coerce(det)
    handoffs = pd.DataFrame({"frame": [10, 40], "global_id": [0, 1], "from_camera": ["c1", "c2"],
                             "to_camera": ["c2", "c3"]})
    return cams, pos, tr, det, assoc, pts, handoffs


def _write(path, tables, files_dir=None, chunk=50, **kw):
    cams, pos, tr, det, assoc, pts, handoffs = tables
    src_tr, src_det, src_pts = tr, det, pts
    if files_dir is not None:  # the workflow's layout: one parquet per camera and chunk
        src_tr, src_det = [], []
        for cam in cams:
            for k, t0 in enumerate(range(0, pos.shape[0], chunk)):
                sel = (tr["camera_id"] == cam) & tr["frame"].between(t0, t0 + chunk - 1)
                p = files_dir / f"tr_{cam}_{k}.parquet"
                write_table(tr[sel], TRACKLET2D, p)
                src_tr.append(p)
                sel = (det["camera_id"] == cam) & det["frame"].between(t0, t0 + chunk - 1)
                p = files_dir / f"det_{cam}_{k}.parquet"
                write_table(det[sel], DETECTION, p)
                src_det.append(p)
        src_pts = files_dir / "points.parquet"
        write_table(pts, POINTS3D, src_pts)
    assemble_session(path, pos.shape[0], list(cams), src_tr, assoc, src_pts, detections=src_det, session="s",
                     fps=25.0, config={"evaluate": {"include_coasted": "bridged"}, "chunk_frames": chunk},
                     chunk_frames=32, rig=cams, rig_attrs={"unit": "m", "calibration_file": "cal.toml"},
                     handoffs=handoffs, tracks3d=_smoothed(pts), **kw)


def _smoothed(pts):
    from mctrack.tables import TRACK3D

    return TRACK3D.coerce(pts.assign(x_raw=pts["x"], y_raw=pts["y"], z_raw=pts["z"], filled=False))


def _sorted(df, keys):
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("from_files", [False, True])
def test_round_trip_everything(tmp_path, tables, from_files):
    cams, pos, tr, det, assoc, pts, handoffs = tables
    from mctrack.video import VideoWriter

    video = tmp_path / "c1.mp4"
    with VideoWriter(video, 25.0, 64, 48) as w:
        for _ in range(7):
            w.write(np.zeros((48, 64, 3), np.uint8))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really a model")
    prov = collect_provenance({"c1": (video, 0), "c2": ("", 3)}, model=model, detector_backend="ultralytics")
    path = tmp_path / "s.h5"
    _write(path, tables, tmp_path if from_files else None, provenance=prov)

    s = mctrack.read_session(path)
    assert s.session == "s" and s.fps == 25.0 and s.n_frames == pos.shape[0] and s.camera_names == list(cams)
    assert s.config == {"evaluate": {"include_coasted": "bridged"}, "chunk_frames": 50}
    pd.testing.assert_frame_equal(_sorted(s.detections, ["camera_id", "frame", "det_index"]),
                                  _sorted(det, ["camera_id", "frame", "det_index"]))
    pd.testing.assert_frame_equal(_sorted(s.tracklets, ["camera_id", "frame", "track_id"]),
                                  _sorted(tr, ["camera_id", "frame", "track_id"]))
    pd.testing.assert_frame_equal(s.association, ASSOCIATION.coerce(assoc))  # support, parent_track_id included
    pd.testing.assert_frame_equal(s.points3d, _sorted(POINTS3D.coerce(pts), ["frame"]))
    pd.testing.assert_frame_equal(s.handoffs, handoffs)
    pd.testing.assert_frame_equal(s.tracks3d_smoothed, _sorted(_smoothed(pts), ["frame"]))
    for name, cam in cams.items():
        back = s.rig[name]
        for k in ("K", "dist", "rvec", "tvec"):
            np.testing.assert_array_equal(getattr(back, k), getattr(cam, k))
        assert back.size == cam.size and back.fisheye == cam.fisheye
    assert s.rig_attrs["unit"] == "m" and s.rig_attrs["calibration_file"] == "cal.toml"
    v = s.videos.set_index("camera")
    assert v.loc["c1", "n_frames"] == 7 and v.loc["c1", "size_bytes"] == video.stat().st_size
    assert v.loc["c2", "n_frames"] == -1 and v.loc["c2", "frame_offset"] == 3
    assert s.versions["model_file"] == "model.onnx" and len(s.versions["model_sha256"]) == 64
    assert {"mctrack", "snakemake", "python"} <= set(s.versions)
    # dense block agrees with the tables
    trk = s.tracking
    T, K = trk["global_id"].shape
    assert (T, K) == (pos.shape[0], assoc["global_id"].max() + 1)
    row = tr[(tr["camera_id"] == "c2") & (tr["frame"] == 22) & (tr["track_id"] == 11)].iloc[0]
    g = assoc.set_index(["camera_id", "track_id"]).loc[("c2", 11), "global_id"]
    assert trk["camera_assignments"]["c2"][22, g] == -1  # coasted: box kept, no detection index
    np.testing.assert_array_equal(trk["bboxes"]["c2"][22, g], row[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
    # tracks_3d: exactly the finite-quality points, with time in seconds
    t3 = s.tracks_3d()
    good = pts[np.isfinite(pts["position_std"])]
    assert len(t3) == len(good) and np.isfinite(t3[["x", "y", "z", "position_std", "reprojection_error"]]).all().all()
    np.testing.assert_allclose(t3["time_s"], t3["frame"] / 25.0)
    # one target's trajectory from the dense block equals its rows of tracks_3d (float32 storage)
    k = int(t3["global_id"].iloc[0])
    traj = s.trajectory(k)
    ref = t3[t3["global_id"] == k]
    np.testing.assert_array_equal(traj["frame"], ref["frame"])
    np.testing.assert_allclose(traj[["x", "y", "z"]], ref[["x", "y", "z"]], rtol=1e-6)
    # old dict-style access keeps working
    np.testing.assert_array_equal(s["n_cameras"], trk["n_cameras"])


def test_attributes_document_units_and_fill(tmp_path, tables):
    path = tmp_path / "s.h5"
    _write(path, tables)
    with h5py.File(path) as f:
        assert f.attrs["format"] == "mctrack-session"
        assert f["tracking/centroid_3d"].attrs["units"] == "m"
        assert np.isnan(f["tracking/centroid_3d"].attrs["fill_value"])
        assert f["tracking/global_id"].attrs["fill_value"] == -1
        assert f["cameras/c1/tracklets/x1"].attrs["units"] == "px"
        assert "categories" in f["cameras/c1/tracklets/frame_status"].attrs
        assert f["cameras/c1/tracklets/x1"].compression == "gzip"


def test_one_target_reads_few_chunks_with_thousands_of_ids(tmp_path):
    T, K = 300, 2000
    assoc = ASSOCIATION.coerce(pd.DataFrame({"camera_id": "c1", "track_id": np.arange(K), "global_id": np.arange(K),
                                             "n_frames": T, "n_linked_cameras": 1}))
    f, g = np.meshgrid(np.arange(T), np.arange(0, K, 7), indexing="ij")
    f, g = f.ravel(), g.ravel()
    tr = TRACKLET2D.coerce(pd.DataFrame({"camera_id": "c1", "track_id": g, "frame": f, "x1": g, "y1": f,
                                         "x2": g + 5, "y2": f + 5, "cx": g + 2.5, "cy": f + 2.5,
                                         "frame_status": "detected", "det_index": 0, "confidence": 1.0}))
    path = tmp_path / "big.h5"
    assemble_session(path, T, ["c1"], tr, assoc, None, chunk_frames=128)
    with h5py.File(path) as h:
        ds = h["tracking/bboxes/c1"]
        assert ds.chunks == (128, 16, 4)  # one global id touches 16 of 2000 columns per chunk
        n_chunks_one_id = sum(1 for i in range(ds.id.get_num_chunks())
                              if ds.id.get_chunk_info(i).chunk_offset[1] == 16 * (700 // 16))
        assert n_chunks_one_id == -(-T // 128)
    s = read_session(path)
    np.testing.assert_array_equal(s.tracking["bboxes"]["c1"][:, 700, 0], np.full(T, 700, np.float32))


def test_empty_session_gives_valid_file_and_exports(tmp_path):
    path = tmp_path / "empty.h5"
    assemble_session(path, 40, ["a", "b"], TRACKLET2D.empty(), ASSOCIATION.empty(), POINTS3D.empty(),
                     detections=DETECTION.empty(), session="empty", fps=30.0)
    s = read_session(path)
    assert s.n_global_ids == 0 and s.tracking["centroid_3d"].shape == (40, 0, 3)
    assert s.tracking["bboxes"]["a"].shape == (40, 0, 4) and len(s.tracking["frame_index"]) == 40
    assert s.detections.empty and s.tracklets.empty and s.association.empty and s.tracks_3d().empty
    out = export_session(s, tmp_path / "export")
    assert [p.read_text() for p in out["mot"].values()] == ["", ""]
    assert list(pd.read_csv(out["csv"]).columns)[:3] == ["frame", "time_s", "global_id"]
    assert len(pd.read_csv(out["csv"])) == 0 and len(pd.read_parquet(out["parquet"])) == 0
    import xarray as xr

    with xr.open_dataset(out["movement"]) as ds:
        assert ds["position"].shape[0] == 40 and ds["position"].shape[-1] == 0


def test_missing_global_id_writes_nothing(tmp_path, tables):
    cams, pos, tr, det, assoc, pts, _ = tables
    with pytest.raises(ValueError, match="without a global id"):
        assemble_session(tmp_path / "s.h5", pos.shape[0], list(cams), tr, assoc[assoc["global_id"] != 0], pts)
    assert list(tmp_path.iterdir()) == []


def test_mot_export_follows_the_mot_convention(tmp_path, tables):
    from mctrack.io.mot import read_mot

    cams, pos, tr, det, assoc, pts, _ = tables
    path = tmp_path / "s.h5"
    _write(path, tables)
    for ids in ("track", "global"):
        files = export_mot(path, tmp_path / ids, ids=ids, include_coasted="all")
        raw = np.loadtxt(files["c2"], delimiter=",", ndmin=2)
        back = read_mot(files["c2"], kind="result")
        ref = tr[tr["camera_id"] == "c2"]
        if ids == "global":
            gid = assoc.set_index(["camera_id", "track_id"])["global_id"]
            ref = ref.assign(track_id=gid.loc[list(zip(ref["camera_id"], ref["track_id"]))].to_numpy())
        ref = ref.sort_values(["frame", "track_id"])
        np.testing.assert_array_equal(raw[:, 0], ref["frame"] + 1)  # 1-based frames
        np.testing.assert_allclose(raw[:, 2], ref["x1"] + 1, atol=6e-4)  # 1-based pixels, 1/1000 px
        np.testing.assert_array_equal(back["frame"], ref["frame"])
        np.testing.assert_array_equal(back["id"], ref["track_id"])
        np.testing.assert_allclose(back[["x1", "y1", "x2", "y2"]], ref[["x1", "y1", "x2", "y2"]], atol=1e-3)
    # the coasted rows of c2 track 11 are bridged (between detections): kept by the default
    n_all = len(read_mot(tmp_path / "track/c2.txt", kind="result"))
    n_det = len(read_mot(export_mot(path, tmp_path / "none", include_coasted="none")["c2"], kind="result"))
    assert n_all - n_det == 5


def test_3d_exports_and_movement_kinematics(tmp_path, tables):
    pytest.importorskip("movement")
    import xarray as xr
    from movement.kinematics import compute_speed

    path = tmp_path / "s.h5"
    _write(path, tables)
    s = read_session(path)
    csv = pd.read_csv(export_tracks_3d(s, tmp_path / "t.csv"))
    pq_ = pd.read_parquet(export_tracks_3d(s, tmp_path / "t.parquet"))
    assert list(csv.columns[:10]) == ["frame", "time_s", "global_id", "x", "y", "z", "position_std", "n_cameras",
                                      "reprojection_error", "confidence"]
    pd.testing.assert_frame_equal(csv, pq_, check_dtype=False)
    np.testing.assert_allclose(pq_[["x", "y", "z"]], s.tracks_3d()[["x", "y", "z"]])
    nc = export_movement(s, tmp_path / "m.nc")
    ds = xr.open_dataset(nc)
    kp = "keypoints" if "keypoints" in ds.dims else "keypoint"
    ind = "individuals" if "individuals" in ds.dims else "individual"
    assert ds.attrs["fps"] == 25.0 and ds.attrs["source_software"] == "mctrack" and ds.attrs["ds_type"] == "poses"
    assert list(ds[kp].values) == ["centroid"] and list(ds["space"].values) == ["x", "y", "z"]
    # movement's own validation accepts the arrays (raises on a malformed poses dataset)
    from movement.io import load_poses

    load_poses.from_numpy(ds["position"].values, ds["confidence"].values, list(ds[ind].values), ["centroid"],
                          fps=ds.attrs["fps"], source_software="mctrack")
    speed = compute_speed(ds["position"])
    assert speed.sizes[ind] == s.n_global_ids
    triangulated = np.isfinite(ds["position"]).all("space").squeeze(kp).sum("time") >= 3
    for name in ds[ind].values[triangulated.values]:
        v = speed.sel({ind: name}).squeeze().values
        assert np.isfinite(v).any() and np.nanmax(v) < 5.0, name  # m/s: simulated fish swim ~0.1-0.3 m/s
    np.testing.assert_allclose(movement_dataset(s)["position"].values, ds["position"].values)


def test_session_wide_tracklet_table_streams_in_frame_buckets(tmp_path, tables, monkeypatch):
    """The association's tracklet table (all cameras, sorted by camera and track) is streamed through frame
    buckets on disk; the file equals the one written from in-memory tables."""
    import mctrack.io.session as S

    cams, pos, tr, det, assoc, pts, handoffs = tables
    big = tmp_path / "tracklets.parquet"
    write_table(tr.sort_values(["camera_id", "track_id", "frame"]), TRACKLET2D, big)
    monkeypatch.setattr(S, "_BATCH_ROWS", 97)  # so this small table counts as "large"
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assemble_session(a, pos.shape[0], list(cams), [big], assoc, pts, chunk_frames=16)
    assemble_session(b, pos.shape[0], list(cams), tr, assoc, pts, chunk_frames=16)
    sa, sb = read_session(a), read_session(b)
    pd.testing.assert_frame_equal(sa.tracklets, sb.tracklets)
    for k in ("global_id", "is_confirmed"):
        np.testing.assert_array_equal(sa.tracking[k], sb.tracking[k])
    for cam in cams:
        np.testing.assert_array_equal(sa.tracking["bboxes"][cam], sb.tracking["bboxes"][cam])
