"""associate_session on synthetic rig tracklets with known targets (track id = 10·target + 1)."""
import logging

import numpy as np
import pandas as pd
import pytest
from conftest import make_tracklets, restart_tracks

from mctrack.associate import AssociationConfig, associate, associate_session
from mctrack.errors import InputError
from mctrack.tables import FRAME_STATUS, TRACKLET2D


def _target(track_id):
    return (np.asarray(track_id) % 1000) // 10


def _check_cannot_links(tr, assoc):
    """No two tracklets of one camera with one global id share a frame."""
    m = tr.merge(assoc[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"])
    m = m[m["frame_status"].isin(["detected", "coasted"])]
    assert not m.duplicated(["camera_id", "global_id", "frame"]).any()


def test_fragments_joined_and_pure(rig_scene):
    cams, pos = rig_scene
    # every camera loses every target at a different frame and restarts it with a new id
    tr = restart_tracks(make_tracklets(cams, pos, noise_px=1.0))
    res = associate_session(tr, cams)
    a = res.association.assign(target=_target(res.association["track_id"]))
    assert (a.groupby("target")["global_id"].nunique() == 1).all()  # fragments joined
    assert (a.groupby("global_id")["target"].nunique() == 1).all()  # pure
    assert a["global_id"].nunique() == pos.shape[1]
    _check_cannot_links(res.tracklets, res.association)
    sup = a.drop_duplicates("global_id")["support"]
    assert ((sup > 0.5) & (sup <= 1)).all()  # clean data: every link well supported


def test_coasted_overlap_is_a_cannot_link(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    # c1 track 1 coasts over frames 41-60 between detections; a second c1 tracklet of the same
    # target detected in frames 45-55 lies inside that coasted stretch: they must not share an id
    sel = (tr["camera_id"] == "c1") & (tr["track_id"] == 1)
    dup = tr[sel & tr["frame"].between(45, 55)].assign(track_id=2001)
    tr.loc[sel & tr["frame"].between(41, 60), ["frame_status", "det_index"]] = ["coasted", -1]
    tr = TRACKLET2D.coerce(pd.concat([tr, dup], ignore_index=True))
    assoc, _ = associate(tr, cams)
    g = assoc.set_index(["camera_id", "track_id"])["global_id"]
    assert g[("c1", 1)] != g[("c1", 2001)]
    assert g[("c1", 1)] == g[("c2", 1)]


def test_identity_switch_is_split_and_regrouped(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    # c2's track 11 follows target 1 until frame 84, then target 2 (an ID switch); c2 has no other
    # track of target 2 after that, so the piece must join target 2's global id
    t2 = tr[(tr["camera_id"] == "c2") & (tr["track_id"] == 21) & (tr["frame"] >= 85)]
    keep = ~((tr["camera_id"] == "c2") & tr["track_id"].isin([11, 21]) & (tr["frame"] >= 85))
    tr = TRACKLET2D.coerce(pd.concat([tr[keep], t2.assign(track_id=11)], ignore_index=True))
    res = associate_session(tr, cams, AssociationConfig(split=True))
    a = res.association
    pieces = a[(a["camera_id"] == "c2") & (a["parent_track_id"] == 11)]
    assert len(pieces) == 2
    g = a.set_index(["camera_id", "track_id"])["global_id"]
    late = pieces.loc[pieces["track_id"] != 11, "track_id"].iat[0]
    assert g[("c2", 11)] == g[("c1", 11)]  # first half stays with target 1
    assert g[("c2", late)] == g[("c1", 21)]  # second half regrouped with target 2
    first_late = res.tracklets.loc[(res.tracklets["camera_id"] == "c2") & (res.tracklets["track_id"] == late),
                                   "frame"].min()
    assert 77 <= first_late <= 93  # cut near the switch (within split_min_frames)
    _check_cannot_links(res.tracklets, a)


def test_missed_detections_are_reprojected_not_detected(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=0.5)
    gap = (tr["camera_id"] == "c1") & (tr["track_id"] == 1) & tr["frame"].between(30, 40)
    truth = tr[gap].set_index("frame")[["cx", "cy"]]
    res = associate_session(tr[~gap], cams)
    out = res.tracklets
    rep = out[(out["camera_id"] == "c1") & (out["track_id"] == 1) & out["frame"].between(30, 40)]
    assert len(rep) == 11 and (rep["frame_status"] == "reprojected").all()
    err = np.hypot(rep.set_index("frame")["cx"] - truth["cx"], rep.set_index("frame")["cy"] - truth["cy"])
    assert err.max() < 3.0  # px: 0.5 px noise triangulated from three other views
    assert (out["frame_status"] == "detected").sum() == (~gap).sum()  # nothing new marked detected
    assert "reprojected" in FRAME_STATUS


def test_gap_in_all_cameras_is_stitched(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    # every camera loses target 0 over frames 50-57 and restarts it with new ids
    t0 = tr["track_id"] == 1
    tr = tr[~(t0 & tr["frame"].between(50, 57))].copy()
    tr.loc[(tr["track_id"] == 1) & (tr["frame"] > 57), "track_id"] = 1001
    assoc, _ = associate(tr, cams)
    assert assoc.loc[_target(assoc["track_id"]) == 0, "global_id"].nunique() == 1
    assert assoc["global_id"].nunique() == pos.shape[1]
    no_stitch, _ = associate(tr, cams, AssociationConfig(stitch_max_gap=0))
    assert no_stitch.loc[_target(no_stitch["track_id"]) == 0, "global_id"].nunique() == 2


def test_chunk_concatenation_and_row_order_do_not_change_ids(rig_scene):
    """Global ids depend on the tracklets only: 100-frame chunks concatenated in any order == one chunk."""
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    one, _ = associate(tr, cams)
    chunks = [tr[(tr["frame"] >= s) & (tr["frame"] < s + 100)] for s in range(0, len(pos), 100)]
    shuffled = pd.concat(chunks[::-1], ignore_index=True).sample(frac=1.0, random_state=3)
    two, _ = associate(shuffled, cams)
    key = ["camera_id", "track_id"]
    pd.testing.assert_frame_equal(one.sort_values(key).reset_index(drop=True),
                                  two.sort_values(key).reset_index(drop=True))


def test_doubtful_merge_is_logged(rig_scene, caplog):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    with caplog.at_level(logging.WARNING, logger="mctrack.associate"):
        associate(tr, cams, AssociationConfig(doubtful_support=0.99))
    assert "doubtful merge" in caplog.text


def test_bad_inputs_raise(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos)
    with pytest.raises(InputError, match="two rows"):
        associate(pd.concat([tr, tr.iloc[:5]], ignore_index=True), cams)
    with pytest.raises(InputError, match="cx"):
        associate(tr.drop(columns="cx"), cams)
    bad = tr.copy()
    bad.loc[0, "cx"] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        associate(bad, cams)
    with pytest.raises(InputError, match="unknown setting"):
        AssociationConfig.from_dict({"max_ray_distanse": 0.1})
    with pytest.raises(InputError, match="box_fraction"):
        AssociationConfig(box_fraction=0)
