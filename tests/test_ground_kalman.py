"""Ground-plane Kalman association (issue 8, ``ground.method: kalman``): identity by ground motion, handoff, clutter."""
import numpy as np
import pandas as pd
import pytest
from test_ground import _tracklet_rows

from mctrack.associate.ground import GroundConfig, ground_points, session_handoffs, track_ground
from mctrack.errors import InputError
from mctrack.ground import homography_from_camera
from mctrack.simulate_floor import FloorConfig, floor_rig

FPS = 30.0


def _rig(names=("cam1", "cam2", "cam3", "cam4")):
    cams = {c.name: c for c in floor_rig(list(names), FloorConfig())}
    return cams, {n: homography_from_camera(c) for n, c in cams.items()}


def _proj(cam, xy):
    return cam.project(np.c_[xy, np.zeros(len(xy))])


def _walker_of_rows(out, gxy, walkers, f):
    """Index of the walker nearest to each output row (walkers: list of functions frame -> (n, 2))."""
    d = np.stack([np.linalg.norm(gxy - w(out["frame"].to_numpy()), axis=1) for w in walkers])
    return d.argmin(0)


def test_kalman_keeps_identity_through_a_2d_tracker_switch():
    """One camera; two walkers pass each other 0.6 m apart and the 2D tracker swaps their ids at the crossing.

    Expected: two global ids, each following one walker through the whole clip (the swapped tracklets are
    split at the switch); a 2D tracker switch is exactly what grouping whole tracklets cannot undo.
    """
    cams, maps = _rig(["cam1"])
    f = np.arange(0, 60)
    a = lambda f: np.c_[-5.0 + 1.2 * f / FPS, np.full(len(f), 0.3)]  # noqa: E731  +x at 1.2 m/s
    b = lambda f: np.c_[-1.0 - 1.2 * f / FPS, np.full(len(f), -0.3)]  # noqa: E731  -x, crossing at frame 50
    sw = f >= 50
    xy1 = np.where(sw[:, None], b(f), a(f))  # 2D track 1: A, then B after the switch
    xy2 = np.where(sw[:, None], a(f), b(f))
    tr = pd.concat([_tracklet_rows("cam1", 1, f, _proj(cams["cam1"], xy1)),
                    _tracklet_rows("cam1", 2, f, _proj(cams["cam1"], xy2))], ignore_index=True)
    out, assoc, _, gxy = track_ground(tr, maps, GroundConfig(), fps=FPS)
    assert assoc["global_id"].nunique() == 2
    assert len(assoc) == 4  # both 2D tracklets split at the switch
    rows = out.merge(assoc[["camera_id", "track_id", "global_id"]])
    who = _walker_of_rows(rows, gxy, [a, b], f)
    assert (pd.Series(who).groupby(rows["global_id"].to_numpy()).nunique() == 1).all()
    assert sorted(assoc["parent_track_id"]) == [1, 1, 2, 2]


def test_kalman_handoff_across_a_gap_keeps_both_identities():
    """Two walkers 1.5 m apart cross from cam1's view into cam4's across 20 unseen frames.

    Expected: each keeps one global id across the gap (the coasting track continues in cam4) and each
    gets one handoff event cam1 -> cam4 at frame 80 with gap 21 frames.
    """
    cams, maps = _rig()
    f1, f2 = np.arange(0, 60), np.arange(80, 140)
    a = lambda f: np.c_[-3.0 + 1.2 * f / FPS, np.full(len(f), 0.5)]  # noqa: E731
    b = lambda f: np.c_[-3.0 + 1.2 * f / FPS, np.full(len(f), -1.0)]  # noqa: E731
    tr = pd.concat([_tracklet_rows("cam1", 1, f1, _proj(cams["cam1"], a(f1))),
                    _tracklet_rows("cam1", 2, f1, _proj(cams["cam1"], b(f1))),
                    _tracklet_rows("cam4", 5, f2, _proj(cams["cam4"], b(f2))),
                    _tracklet_rows("cam4", 6, f2, _proj(cams["cam4"], a(f2)))], ignore_index=True)
    cfg = GroundConfig(max_gap_frames=60)
    out, assoc, _, gxy = track_ground(tr, maps, cfg, fps=FPS)
    gid = {(r.camera_id, r.track_id): r.global_id for r in assoc.itertuples()}
    assert len(gid) == 4 and len(set(gid.values())) == 2
    assert gid["cam1", 1] == gid["cam4", 6] and gid["cam1", 2] == gid["cam4", 5]
    hand = session_handoffs(out, assoc, cfg)
    assert len(hand) == 2
    assert set(zip(hand["frame"], hand["from_camera"], hand["to_camera"], hand["gap_frames"])) == {
        (80, "cam1", "cam4", 21)}
    pts = ground_points(out, assoc, gxy)
    assert len(pts) == 2 * 120 and (pts["z"] == 0).all()


def test_kalman_gap_longer_than_max_gap_is_not_linked():
    cams, maps = _rig()
    f1, f2 = np.arange(0, 40), np.arange(140, 180)
    w = lambda f: np.c_[-3.0 + 1.2 * f / FPS, np.zeros(len(f))]  # noqa: E731
    tr = pd.concat([_tracklet_rows("cam1", 1, f1, _proj(cams["cam1"], w(f1))),
                    _tracklet_rows("cam4", 1, f2, _proj(cams["cam4"], w(f2)))], ignore_index=True)
    _, assoc, _, _ = track_ground(tr, maps, GroundConfig(max_gap_frames=90), fps=FPS)
    assert assoc["global_id"].nunique() == 2
    _, assoc, _, _ = track_ground(tr, maps, GroundConfig(max_gap_frames=120), fps=FPS)
    assert assoc["global_id"].nunique() == 1


def test_kalman_drops_clutter_shorter_than_n_init():
    """A 3-frame flicker (e.g. a background ghost) never confirms a track: its rows are dropped."""
    cams, maps = _rig(["cam1"])
    f = np.arange(0, 30)
    w = lambda f: np.c_[-4.0 + 1.0 * f / FPS, np.zeros(len(f))]  # noqa: E731
    fl = np.arange(10, 13)
    tr = pd.concat([_tracklet_rows("cam1", 1, f, _proj(cams["cam1"], w(f))),
                    _tracklet_rows("cam1", 9, fl, _proj(cams["cam1"], np.tile([[-3.0, 2.5]], (3, 1))))],
                   ignore_index=True)
    out, assoc, _, _ = track_ground(tr, maps, GroundConfig(n_init=5), fps=FPS)
    assert set(out["track_id"].map(dict(zip(assoc["track_id"], assoc["parent_track_id"])))) == {1}
    assert len(out) == 30 and assoc["global_id"].nunique() == 1
    out, assoc, _, _ = track_ground(tr, maps, GroundConfig(n_init=3), fps=FPS)
    assert assoc["global_id"].nunique() == 2 and len(out) == 33


def test_kalman_settings_are_checked():
    with pytest.raises(InputError, match="ground.method"):
        GroundConfig(method="hungarian")
    with pytest.raises(InputError, match="ground.acceleration_std"):
        GroundConfig(acceleration_std=0)
    with pytest.raises(InputError, match="ground.n_init"):
        GroundConfig(n_init=0)
    with pytest.raises(InputError, match="ground.appearance_weight"):
        GroundConfig(appearance_weight=-1)
    with pytest.raises(InputError, match="ground.handoff_appearance_weight"):
        GroundConfig(handoff_appearance_weight=-0.5)


def _bounce(sign, v=1.0, meet=45):
    """A walker on y = 0 coming towards x = 0 at ``v`` m/s, turning back 0.2 m short of it at frame ``meet``."""
    return lambda f: np.c_[-sign * (0.2 + v * np.abs(f - meet) / FPS), np.zeros(len(f))]


def test_kalman_appearance_decides_where_motion_is_ambiguous():
    """Two walkers meet head-on, are unseen for 10 frames (occluded) and walk back where they came from.

    The 2D tracker gives new ids after the occlusion, so only the ground tracks carry identity. Constant
    velocity predicts that they walked through each other: without appearance (weight 0) both identities
    swap; their colours (chromaticity 0.40/0.33 vs 0.30/0.36, row noise 0.005) differ, and with the default
    appearance weight each global id follows one walker through the clip.
    """
    cams, maps = _rig(["cam1"])
    rng = np.random.default_rng(0)
    f = np.arange(0, 90)
    a, b = _bounce(1), _bounce(-1)
    pre, post = f < 40, f > 50
    rows = []
    for tid, (w, col, sel) in enumerate([(a, (0.40, 0.33), pre), (b, (0.30, 0.36), pre),
                                         (a, (0.40, 0.33), post), (b, (0.30, 0.36), post)]):
        r = _tracklet_rows("cam1", tid + 1, f[sel], _proj(cams["cam1"], w(f[sel])))
        rows.append(r.assign(chroma_r=col[0] + rng.normal(0, 0.005, len(r)),
                             chroma_g=col[1] + rng.normal(0, 0.005, len(r))))
    tr = pd.concat(rows, ignore_index=True)
    n_walkers = {}
    for weight in (0.0, GroundConfig().appearance_weight):
        out, assoc, _, gxy = track_ground(tr, maps, GroundConfig(appearance_weight=weight), fps=FPS)
        assert assoc["global_id"].nunique() == 2
        r = out.merge(assoc[["camera_id", "track_id", "global_id"]])
        n_walkers[weight] = pd.Series(_walker_of_rows(r, gxy, [a, b], f)).groupby(r["global_id"].to_numpy()).nunique()
    assert (n_walkers[0.0] == 2).all()      # motion alone: both ground tracks swap walkers at the meeting
    assert (n_walkers[GroundConfig().appearance_weight] == 1).all()
    # no chromaticity at all (grey video): the same as weight 0, no error
    _, assoc, _, _ = track_ground(tr.drop(columns=["chroma_r", "chroma_g"]), maps, GroundConfig(), fps=FPS)
    assert assoc["global_id"].nunique() == 2


def test_appearance_zscores_remove_a_camera_colour_cast():
    """Per-camera z-scores: the same three targets seen by two cameras, one with a colour cast (shift + gain).

    Expected: raw chromaticities of a target differ between the cameras by the cast, their z-scores agree
    (to the row noise), and rows of cameras with fewer than 3 tracklets get NaN.
    """
    from mctrack.associate.ground import _appearance_zscores

    rng = np.random.default_rng(1)
    base = np.array([[0.40, 0.33], [0.30, 0.36], [0.34, 0.30]])
    app, cam, tk = [], [], []
    for c, (gain, shift) in enumerate([(1.0, 0.0), (0.7, 0.05)]):
        for t in range(3):
            app.append(base[t] * gain + shift + rng.normal(0, 1e-4, (20, 2)))
            cam += [c] * 20
            tk += [3 * c + t] * 20
    app.append(np.full((20, 2), 0.33))  # a third camera with one tracklet: no population
    cam += [2] * 20
    tk += [6] * 20
    app, cam, tk = np.concatenate(app), np.array(cam), np.array(tk)
    z = _appearance_zscores(app, cam, tk, np.ones(len(app), bool))
    assert np.abs(app[:60] - app[60:120]).max() > 0.05
    np.testing.assert_allclose(z[:60], z[60:120], atol=0.02)
    assert np.isnan(z[120:]).all()


def test_in_view_of_the_floor_cameras():
    from mctrack.associate.ground import in_view

    cams, maps = _rig()
    xy = np.array([[-4.2, 0.0], [4.2, 0.0], [-4.2, -30.0]])
    # cam1 watches the x < 0 part from y < 0: the first point, not the right part, not 30 m behind it
    assert in_view(maps["cam1"], xy).tolist() == [True, False, False]
    assert in_view(maps["cam3"], xy).tolist() == [False, True, False]


def test_kalman_drops_a_track_that_a_second_camera_viewing_it_never_sees():
    """A static blob in cam2 only (a background ghost) where cam1 also looks; a walker both cameras see.

    Expected with min_view_support 0.6: the ghost (seen in 1 of 2 viewing cameras, 50 %) is clutter,
    the walker is kept; with 0 (off) both are kept; one camera alone never drops anything.
    """
    cams, maps = _rig(["cam1", "cam2"])
    f = np.arange(0, 60)
    w = lambda f: np.c_[-4.5 + 1.0 * f / FPS, np.full(len(f), 0.5)]  # noqa: E731
    ghost = np.tile([[-3.0, -1.0]], (len(f), 1))
    assert in_view_both(maps, ghost[:1]) and in_view_both(maps, w(f))
    tr = pd.concat([_tracklet_rows("cam1", 1, f, _proj(cams["cam1"], w(f))),
                    _tracklet_rows("cam2", 1, f, _proj(cams["cam2"], w(f))),
                    _tracklet_rows("cam2", 2, f, _proj(cams["cam2"], ghost))], ignore_index=True)
    out, assoc, _, _ = track_ground(tr, maps, GroundConfig(min_view_support=0.6), fps=FPS)
    assert assoc["global_id"].nunique() == 1 and set(out["track_id"]) == {1}
    _, assoc, _, _ = track_ground(tr, maps, GroundConfig(min_view_support=0.0), fps=FPS)
    assert assoc["global_id"].nunique() == 2
    one = tr[tr["camera_id"] == "cam2"]
    _, assoc, _, _ = track_ground(one, {"cam2": maps["cam2"]}, GroundConfig(min_view_support=0.6), fps=FPS)
    assert assoc["global_id"].nunique() == 2


def in_view_both(maps, xy):
    from mctrack.associate.ground import in_view

    return bool(in_view(maps["cam1"], xy).all() and in_view(maps["cam2"], xy).all())


def test_box_ground_width_and_merged_boxes_are_no_observations():
    """A box spanning two walkers (bottom edge 1.5 m of floor) is no observation with max_ground_width 1.2."""
    from mctrack.associate.ground import box_ground_width

    cams, maps = _rig(["cam1"])
    cam = cams["cam1"]
    f = np.arange(0, 30)
    w = lambda f: np.c_[-4.0 + 1.0 * f / FPS, np.zeros(len(f))]  # noqa: E731
    tr = _tracklet_rows("cam1", 1, f, _proj(cam, w(f)))
    left, right = _proj(cam, w(f) - [0.75, 0.0]), _proj(cam, w(f) + [0.75, 0.0])
    wide = tr.copy()
    wide.loc[10:14, "x1"] = np.minimum(left[10:15, 0], right[10:15, 0])
    wide.loc[10:14, "x2"] = np.maximum(left[10:15, 0], right[10:15, 0])
    width = box_ground_width(wide, maps)
    assert np.allclose(width[10:15], 1.5, atol=0.05) and (width[:10] < 0.3).all()
    out, assoc, _, gxy = track_ground(wide, maps, GroundConfig(max_ground_width=1.2), fps=FPS)
    assert len(out) == 30 and assoc["global_id"].nunique() == 1  # the wide rows stay, labelled by their tracklet
    with pytest.raises(InputError, match="ground.max_ground_width"):
        GroundConfig(max_ground_width=-1)


def test_ground_points_use_weak_rows_only_without_a_strong_one():
    """A merged (weak) row of cam2 is ignored where cam1 has a clean row, used where it is alone."""
    tr = pd.DataFrame({"camera_id": ["cam1", "cam2", "cam2"], "track_id": [1, 1, 1], "frame": [0, 0, 1],
                       "frame_status": "detected", "confidence": 1.0})
    assoc = pd.DataFrame({"camera_id": ["cam1", "cam2"], "track_id": [1, 1], "global_id": [0, 0]})
    gxy = np.array([[1.0, 2.0], [1.8, 2.0], [3.0, 2.0]])
    weak = np.array([False, True, True])
    p = ground_points(tr, assoc, gxy, weak=weak).set_index("frame")
    assert p.loc[0, "x"] == 1.0 and p.loc[0, "n_cameras"] == 1
    assert p.loc[1, "x"] == 3.0
    p = ground_points(tr, assoc, gxy).set_index("frame")
    assert p.loc[0, "x"] == pytest.approx(1.4) and p.loc[0, "n_cameras"] == 2
