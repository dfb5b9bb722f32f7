import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import make_tracklets

from mctrack.associate import associate
from mctrack.session import TRACKING_FIELDS, read_session, tracks_3d, write_session
from mctrack.triangulate import triangulate


@pytest.fixture(scope="module")
def stage_tables(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    # a coasted row and a single-camera target (never dropped)
    tr.loc[(tr["camera_id"] == "c2") & (tr["frame"] == 7) & (tr["track_id"] == 1), ["frame_status", "det_index"]] = ["coasted", -1]
    lone = tr[(tr["camera_id"] == "c3") & (tr["track_id"] == 1)].head(10).copy()
    lone[["track_id", "cx", "x1", "x2"]] = [999, 5.0, 1.0, 9.0]
    tr = pd.concat([tr, lone], ignore_index=True)
    assoc, _ = associate(tr, cams)
    pts, _ = triangulate(tr, assoc, cams)
    return cams, pos, tr, assoc, pts


def test_schema_and_round_trip(tmp_path, stage_tables):
    cams, pos, tr, assoc, pts = stage_tables
    T, K = pos.shape[0], assoc["global_id"].nunique()
    path = tmp_path / "s.h5"
    write_session(path, T, list(cams), tr, assoc, pts, session="s", fps=30.0, chunk_frames=32)
    with h5py.File(path) as f:
        trk = f["tracking"]
        assert list(trk.attrs["camera_names"]) == list(cams)
        for name, (tail, dtype, _) in TRACKING_FIELDS.items():
            ds = trk[name]
            assert ds.shape == (T, K) + tail and ds.dtype == np.dtype(dtype), name
            assert ds.chunks[0] == 32 and ds.compression == "gzip" and ds.maxshape[0] is None
        assert trk["bboxes/c1"].shape == (T, K, 4)
    s = read_session(path)
    assert s["attrs"]["session"] == "s" and s["attrs"]["fps"] == 30.0
    np.testing.assert_array_equal(s["frame_index"], np.arange(T))
    # 3D round trip: every point lands in its (frame, global id) cell
    back = tracks_3d(s).sort_values(["frame", "global_id"]).reset_index(drop=True)
    ref = pts.sort_values(["frame", "global_id"]).reset_index(drop=True)
    np.testing.assert_allclose(back[["x", "y", "z"]].to_numpy(), ref[["x", "y", "z"]].to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(back["n_cameras"], ref["n_cameras"])
    # per-camera boxes and detection indices
    row = tr[(tr["camera_id"] == "c1") & (tr["frame"] == 50)].iloc[0]
    gid = assoc.set_index(["camera_id", "track_id"]).loc[("c1", row["track_id"]), "global_id"]
    np.testing.assert_allclose(s["bboxes"]["c1"][50, gid], row[["x1", "y1", "x2", "y2"]].astype(float), atol=1e-4)
    assert s["camera_assignments"]["c1"][50, gid] == row["det_index"]
    # coasted box is stored, with no detection index
    g0 = assoc.set_index(["camera_id", "track_id"]).loc[("c2", 1), "global_id"]
    assert s["camera_assignments"]["c2"][7, g0] == -1 and np.isfinite(s["bboxes"]["c2"][7, g0]).all()
    # the single-camera target has a column, no 3D, and is confirmed where detected
    glone = assoc.set_index(["camera_id", "track_id"]).loc[("c3", 999), "global_id"]
    assert (s["global_id"][:, glone] == glone).sum() == 10
    assert np.isnan(s["centroid_3d"][:, glone]).all() and s["is_confirmed"][:, glone].sum() == 10
    # fill values where nothing is seen
    empty = s["global_id"] == -1
    assert np.isnan(s["centroid_3d"][empty]).all() and (s["n_cameras"][empty] == 0).all()


def test_block_size_does_not_change_content(tmp_path, stage_tables):
    cams, pos, tr, assoc, pts = stage_tables
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_session(a, pos.shape[0], list(cams), tr, assoc, pts, chunk_frames=7)
    write_session(b, pos.shape[0], list(cams), tr, assoc, pts, chunk_frames=4096)
    sa, sb = read_session(a), read_session(b)
    for k in TRACKING_FIELDS:
        np.testing.assert_array_equal(sa[k], sb[k])
    for cam in cams:
        np.testing.assert_array_equal(sa["bboxes"][cam], sb["bboxes"][cam])


def test_nothing_half_written(tmp_path, stage_tables):
    cams, pos, tr, assoc, pts = stage_tables
    bad = assoc[assoc["global_id"] != 0]  # tracklets of global id 0 lose their id
    path = tmp_path / "s.h5"
    with pytest.raises(ValueError, match="without a global id"):
        write_session(path, pos.shape[0], list(cams), tr, bad, pts)
    assert list(tmp_path.iterdir()) == []
