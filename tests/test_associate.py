import numpy as np
import pandas as pd
from conftest import make_tracklets

from mctrack.associate import AssociationConfig, associate, ray_distance


def _purity(assoc):
    """(targets split over several global ids, global ids mixing several targets)."""
    a = assoc.assign(target=(assoc["track_id"] // 10) % 100)
    split = (a.groupby("target")["global_id"].nunique() > 1).sum()
    mixed = (a.groupby("global_id")["target"].nunique() > 1).sum()
    return split, mixed


def test_ray_distance_known_geometry():
    o1, o2 = np.zeros(3), np.array([0.0, 0.0, 1.0])
    d1 = np.array([[1.0, 0.0, 0.0]])
    d2 = np.array([[0.0, 1.0, 0.0]])
    assert np.isclose(ray_distance(o1, d1, o2 + [1.0, -1.0, 0.0], d2)[0], 1.0)  # skew lines 1 apart
    # closest point behind the second camera -> inf
    assert np.isinf(ray_distance(o1, d1, o2 + [1.0, 1.0, 0.0], d2)[0])
    # parallel rays: distance of o2 to the first ray
    assert np.isclose(ray_distance(o1, d1, np.array([0.0, 0.3, 0.0]), d1)[0], 0.3)


def test_one_global_id_per_target(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    assoc, ev = associate(tr, cams, AssociationConfig(max_ray_distance=0.02))
    assert _purity(assoc) == (0, 0)
    assert assoc["global_id"].nunique() == pos.shape[1]
    assert (assoc["n_linked_cameras"] == 4).all()
    assert ev["linked"].any() and set(assoc["global_id"]) == set(range(pos.shape[1]))


def test_fragmented_tracklet_is_bridged_by_other_cameras(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    # camera c1 loses target 0 at frame 60 and restarts it with a new track id
    sel = (tr["camera_id"] == "c1") & (tr["track_id"] == 1) & (tr["frame"] >= 60)
    tr.loc[sel, "track_id"] = 1001
    assoc, _ = associate(tr, cams, AssociationConfig(max_ray_distance=0.02))
    g = assoc.set_index(["camera_id", "track_id"])["global_id"]
    assert g[("c1", 1)] == g[("c1", 1001)] == g[("c2", 1)]
    assert _purity(assoc) == (0, 0)


def test_same_camera_overlap_never_merged(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    # a duplicate tracklet of target 0 in c1 over frames 0-59 (e.g. a double detection): it overlaps
    # track 1 in time, so it must not share its global id even though its geometry agrees
    dup = tr[(tr["camera_id"] == "c1") & (tr["track_id"] == 1) & (tr["frame"] < 60)].copy()
    dup["track_id"] = 2001
    dup[["cx", "x1", "x2"]] += 0.5
    tr = pd.concat([tr, dup], ignore_index=True)
    assoc, _ = associate(tr, cams, AssociationConfig(max_ray_distance=0.02))
    g = assoc.set_index(["camera_id", "track_id"])["global_id"]
    assert g[("c1", 1)] != g[("c1", 2001)]


def test_swapped_identity_is_not_merged(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    # camera c2's track of target 1 actually follows target 2 in its second half (an ID switch):
    # it must not glue targets 1 and 2 into one global id
    t2 = tr[(tr["camera_id"] == "c2") & (tr["track_id"] == 21) & (tr["frame"] >= 60)].copy()
    keep = ~((tr["camera_id"] == "c2") & (tr["track_id"].isin([11, 21])) & (tr["frame"] >= 60))
    tr = pd.concat([tr[keep], t2.assign(track_id=11)], ignore_index=True)
    assoc, _ = associate(tr, cams, AssociationConfig(max_ray_distance=0.02))
    g = assoc.set_index(["camera_id", "track_id"])["global_id"]
    assert g[("c1", 11)] != g[("c1", 21)]


def test_uncalibrated_gives_one_id_per_tracklet(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos)
    assoc, ev = associate(tr, None)
    assert assoc["global_id"].nunique() == len(assoc) == tr.groupby(["camera_id", "track_id"]).ngroups
    assert ev.empty and (assoc["n_linked_cameras"] == 1).all()
    # ids are ranked by observations: id 0 has the most detected frames
    assert assoc.loc[assoc["global_id"] == 0, "n_frames"].iloc[0] == assoc["n_frames"].max()
