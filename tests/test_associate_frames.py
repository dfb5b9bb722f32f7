"""associate.method = frames: per-frame 3D tracking of detections (mctrack.associate.frames).

Tracklets come from tests/conftest.py::make_tracklets (track id = 10·target + 1 on the
4-camera simulate rig, 5 targets, 120 frames), so every row's true target is known.
"""
import numpy as np
import pandas as pd
import pytest
from conftest import make_tracklets, restart_tracks

from mctrack.associate import AssociationConfig, associate_session
from mctrack.associate.data import TrackletIndex
from mctrack.associate.frames import _Projector, tracklet_pieces
from mctrack.calibration import Camera
from mctrack.tables import TRACKLET2D

FRAMES = AssociationConfig(method="frames")


def _target(track_id):
    return (np.asarray(track_id) % 1000) // 10


def _row_ids(res):
    """Detected rows with their global id and true target (target from the parent track id)."""
    tr = res.tracklets[res.tracklets["frame_status"] == "detected"]
    m = tr.merge(res.association[["camera_id", "track_id", "global_id", "parent_track_id"]],
                 on=["camera_id", "track_id"])
    return m.assign(target=_target(m["det_index"].where(m["det_index"] >= 0) * 10 + 1))


def _assert_one_id_per_target(res, n_targets):
    m = _row_ids(res)
    assert m.groupby("target")["global_id"].nunique().eq(1).all(), m.groupby("target")["global_id"].unique()
    assert m.groupby("global_id")["target"].nunique().eq(1).all()
    assert m["global_id"].nunique() == n_targets


def test_projector_matches_opencv():
    """The vectorised pinhole + (k1, k2, p1, p2, k3) projection equals cv2.projectPoints to 1e-6 px."""
    cams = [Camera("a", [[800, 0.5, 320], [0, 790, 240], [0, 0, 1]], [-0.2, 0.05, 0.001, -0.002, 0.01],
                   [0.1, -0.2, 0.05], [0.1, 0.0, 2.0], (640, 480)),
            Camera("b", [[600, 0, 330], [0, 600, 250], [0, 0, 1]], [0.1, -0.01, 0, 0],
                   [0.0, 0.3, 0.0], [-0.2, 0.1, 1.5], (640, 480))]
    X = np.random.default_rng(0).uniform([-0.3, -0.3, -0.2], [0.3, 0.3, 0.3], (200, 3))
    uv, depth = _Projector(cams)(X)
    for c, cam in enumerate(cams):
        ref = cam.project(X)
        ok = np.isfinite(uv[c]).all(1)
        assert ok.sum() > 150
        np.testing.assert_allclose(uv[c][ok], ref[ok], atol=1e-6)
        np.testing.assert_allclose(depth[c], cam.world_to_camera(X)[:, 2])


def test_fragments_joined_and_pure(rig_scene):
    """Every camera restarts every target once with a new id: one global id per target, every row pure."""
    cams, pos = rig_scene
    # every camera loses every target at a different frame and restarts it with a new id
    tr = restart_tracks(make_tracklets(cams, pos, noise_px=1.0))
    res = associate_session(tr, cams, FRAMES)
    _assert_one_id_per_target(res, pos.shape[1])


def test_identity_switch_inside_a_tracklet_is_cut(rig_scene):
    """c2's track 11 follows target 1, then target 2 from frame 85: the tracklet is cut at the switch
    (no split setting needed) and each piece carries its target's global id."""
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    t2 = tr[(tr["camera_id"] == "c2") & (tr["track_id"] == 21) & (tr["frame"] >= 85)]
    keep = ~((tr["camera_id"] == "c2") & tr["track_id"].isin([11, 21]) & (tr["frame"] >= 85))
    tr = TRACKLET2D.coerce(pd.concat([tr[keep], t2.assign(track_id=11)], ignore_index=True))
    res = associate_session(tr, cams, FRAMES)
    a = res.association
    pieces = a[(a["camera_id"] == "c2") & (a["parent_track_id"] == 11)]
    assert len(pieces) == 2
    _assert_one_id_per_target(res, pos.shape[1])
    late = pieces.loc[pieces["track_id"] != 11, "track_id"].iat[0]
    first_late = res.tracklets.loc[(res.tracklets["camera_id"] == "c2") & (res.tracklets["track_id"] == late),
                                   "frame"].min()
    assert first_late == 85  # cut exactly at the switch: identity is decided per frame


def test_two_camera_target_and_gap_in_all_cameras(rig_scene):
    """Target 3 is seen by c1 and c2 only; target 0 vanishes from every camera for frames 50-57 and
    comes back with new track ids: both keep one global id (births from two cameras; 3D stitching)."""
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    tr = tr[~((tr["track_id"] == 31) & tr["camera_id"].isin(["c3", "c4"]))]
    tr = tr[~((tr["track_id"] == 1) & tr["frame"].between(50, 57))].copy()
    tr.loc[(tr["track_id"] == 1) & (tr["frame"] > 57), "track_id"] = 1001
    res = associate_session(tr, cams, FRAMES)
    _assert_one_id_per_target(res, pos.shape[1])
    a = res.association
    assert a.loc[_target(a["track_id"]) == 3, "n_linked_cameras"].eq(2).all()


def test_row_order_does_not_change_ids(rig_scene):
    """Chunks concatenated in reverse order and shuffled rows give the same association."""
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    one = associate_session(tr, cams, FRAMES).association
    chunks = [tr[(tr["frame"] >= s) & (tr["frame"] < s + 40)] for s in range(0, len(pos), 40)]
    two = associate_session(pd.concat(chunks[::-1]).sample(frac=1.0, random_state=3), cams, FRAMES).association
    key = ["camera_id", "track_id"]
    pd.testing.assert_frame_equal(one.sort_values(key).reset_index(drop=True),
                                  two.sort_values(key).reset_index(drop=True))


def test_false_positives_do_not_make_targets(rig_scene):
    """Uniform random false detections (one per camera and frame) create no confirmed 3D track:
    tentative tracks from chance ray crossings die before n_init frames."""
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos, noise_px=1.0)
    rng = np.random.default_rng(5)
    fp = []
    for name, cam in cams.items():
        u = rng.uniform(0, cam.size[0], len(pos))
        v = rng.uniform(0, cam.size[1], len(pos))
        fp.append(pd.DataFrame({"camera_id": name, "track_id": 9000 + np.arange(len(pos)), "frame": np.arange(len(pos)),
                                "x1": u - 6, "y1": v - 6, "x2": u + 6, "y2": v + 6, "cx": u, "cy": v,
                                "frame_status": "detected", "det_index": -1, "confidence": 0.5}))
    tr = TRACKLET2D.coerce(pd.concat([tr, *fp], ignore_index=True))
    res = associate_session(tr, cams, FRAMES)
    a = res.association
    real = a[a["track_id"] < 9000]
    assert real["global_id"].nunique() == pos.shape[1]
    multi_fp = a[(a["track_id"] >= 9000) & (a["n_linked_cameras"] >= 2)]
    assert not multi_fp["global_id"].isin(real["global_id"]).any()
    assert multi_fp["global_id"].nunique() == 0


def test_pieces_fill_unassigned_and_absorb_short_runs():
    """Unassigned (-1) and coasted (-2) rows take the track of the rows before them; runs shorter than
    min_run are absorbed; a tracklet no track claimed is one unclaimed piece."""
    n = 12
    tr = pd.DataFrame({"camera_id": "c", "track_id": np.r_[np.full(n, 1), np.full(3, 2)],
                       "frame": np.r_[np.arange(n), np.arange(3)], "x1": 0.0, "y1": 0.0, "x2": 4.0, "y2": 4.0,
                       "cx": 2.0, "cy": 2.0, "frame_status": "detected", "det_index": 0, "confidence": 1.0})
    idx = TrackletIndex.build(TRACKLET2D.coerce(tr))
    track = np.array([-1, 5, 5, -2, 5, 7, 5, 5, 8, 8, 8, 8, -1, -1, -1])
    piece, ptrack = tracklet_pieces(idx, track, min_run=2)
    assert ptrack.tolist() == [5, 8, -1]
    assert piece.tolist() == [0] * 8 + [1] * 4 + [2] * 3


def test_pieces_never_give_a_track_two_rows_of_one_camera_frame():
    """The tracker gave track 5 rows of two tracklets of one camera (1 in frames 0 and 2, 2 in frame 6).
    Filling both tracklets' other rows with 5 would give the global id two rows in one camera-frame:
    the row nearer (in frames) to the row it is filled from keeps 5, a tie keeps neither, and a filled
    row never displaces one the tracker assigned."""
    n = 8
    tr = pd.DataFrame({"camera_id": "c", "track_id": np.repeat([1, 2], n), "frame": np.tile(np.arange(n), 2),
                       "x1": 0.0, "y1": 0.0, "x2": 4.0, "y2": 4.0, "cx": 2.0, "cy": 2.0,
                       "frame_status": "detected", "det_index": 0, "confidence": 1.0})
    idx = TrackletIndex.build(TRACKLET2D.coerce(tr))
    track = np.array([5, -1, 5, -1, -1, -1, -1, -1] + [-1, -1, -1, -1, -1, -1, 5, -1])
    piece, ptrack = tracklet_pieces(idx, track, min_run=1)
    lab = ptrack[piece]
    # frame 4: 2 frames from tracklet 1's row 2 and from tracklet 2's row 6 (a tie)
    assert lab.tolist() == [5, 5, 5, 5, -1, -1, -1, -1] + [-1, -1, -1, -1, -1, 5, 5, 5]


@pytest.mark.parametrize("bad", [{"method": "clusters"}, {"gate": 0}, {"n_init": 0}])
def test_bad_settings_raise(bad):
    from mctrack.errors import InputError

    with pytest.raises(InputError, match="associate"):
        AssociationConfig.from_dict(bad)


# ---- block-wise association (mctrack.associate.blocks) ----------------------------------------------------

def _split(tr, size):
    """Zero-argument callable yielding the rows of frames [0, size), [size, 2 size), ..."""
    f = tr["frame"].to_numpy()
    return lambda: (tr[(f >= lo) & (f < lo + size)] for lo in range(0, int(f.max()) + 1, size))


def _sorted(df):
    return df.sort_values(["camera_id", "track_id", "frame"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("size,appearance", [(37, False), (100, False), (37, True)])
def test_blocks_give_the_whole_session_result(rig_scene, size, appearance):
    """Blocks of 37 and 100 frames with carried state: the same pieces, global ids, support and refined
    rows (reprojected ones included) as associating the whole session at once. The scene has restarts
    in every camera, an identity switch inside one tracklet (cut at frame 85), a target seen by two
    cameras only and a gap in all cameras (stitching), so every carried state is exercised; with
    appearance also the per-camera appearance spread and the encounter relinking's appearance costs."""
    from mctrack.associate.blocks import BlockAssociation

    cams, pos = rig_scene
    tr = restart_tracks(make_tracklets(cams, pos, noise_px=1.0))
    t2 = tr[(tr["camera_id"] == "c2") & (tr["track_id"] == 21) & (tr["frame"] >= 85)]
    keep = ~((tr["camera_id"] == "c2") & tr["track_id"].isin([11, 21]) & (tr["frame"] >= 85))
    tr = pd.concat([tr[keep], t2.assign(track_id=11)], ignore_index=True)
    tr = tr[~((tr["track_id"] == 31) & tr["camera_id"].isin(["c3", "c4"]))]
    tr = TRACKLET2D.coerce(tr[~((tr["track_id"] == 1) & tr["frame"].between(50, 57))])
    if appearance:  # per-target colour + noise: the appearance spread and costs are summed over blocks
        rng = np.random.default_rng(2)
        base = rng.uniform(0.28, 0.38, (10, 2))
        a = base[tr["det_index"].to_numpy()] + rng.normal(0, 0.004, (len(tr), 2))
        tr = tr.assign(chroma_r=a[:, 0].astype(np.float32), chroma_g=a[:, 1].astype(np.float32))
    whole = associate_session(tr, cams, FRAMES)
    with BlockAssociation(_split(tr, size), cams, FRAMES) as ba:
        rows = pd.concat(list(ba.tracklets()), ignore_index=True)
        pd.testing.assert_frame_equal(ba.association, whole.association)
    pd.testing.assert_frame_equal(TRACKLET2D.coerce(_sorted(rows)), whole.tracklets)
    assert (whole.tracklets["frame_status"] == "reprojected").any()
    assert whole.association["parent_track_id"].ne(whole.association["track_id"]).any()   # pieces exist


def test_blocks_out_of_order_or_overlapping_raise(rig_scene):
    from mctrack.associate.blocks import BlockAssociation
    from mctrack.associate.frames import FrameTracker
    from mctrack.errors import InputError

    cams, pos = rig_scene
    tr = make_tracklets(cams, pos)
    f = tr["frame"]
    early, late = tr[f < 60], tr[f >= 60]
    with pytest.raises(InputError, match="block 1.*overlap or precede"):
        BlockAssociation(lambda: iter([late, early]), cams, FRAMES)
    with pytest.raises(InputError, match="block 1.*overlap or precede"):
        BlockAssociation(lambda: iter([tr[f < 60], tr[f >= 50]]), cams, FRAMES)
    tracker = FrameTracker(list(cams.values()), FRAMES)
    idx = TrackletIndex.build(late)
    tracker.feed(idx, idx.tk)
    idx = TrackletIndex.build(early)
    with pytest.raises(InputError, match="not after the last frame"):
        tracker.feed(idx, idx.tk)
    with pytest.raises(ValueError, match="frames"):
        BlockAssociation(lambda: iter([tr]), cams, AssociationConfig(method="tracklets"))


def _tiled_blocks(cams, pos, n_frames, size):
    """Blocks of a long session: the scene's trajectory tiled back and forth, generated block by block."""
    L = len(pos)

    def gen():
        for lo in range(0, n_frames, size):
            t = np.arange(lo, min(lo + size, n_frames))
            k, i = np.divmod(t, L)
            tr = make_tracklets(cams, pos[np.where(k % 2 == 0, i, L - 1 - i)], seed=lo)
            yield tr.assign(frame=t[tr["frame"].to_numpy()], track_id=tr["track_id"] + 100 * (t[tr["frame"]] // 300))
    return gen


@pytest.mark.slow
def test_block_memory_does_not_grow_with_frames(rig_scene):
    """Peak traced memory (numpy and pandas allocations, tracemalloc) of BlockAssociation over 300 and
    1200 frames in blocks of 100: 4x the rows, at most 1.5x the peak (measured 2.01 -> 2.25 MB; the
    per-frame 3D points, kept for stitching, and the per-piece tables are the part that grows)."""
    import tracemalloc

    from mctrack.associate.blocks import BlockAssociation

    cams, pos = rig_scene
    peaks = []
    for n in (300, 1200):
        tracemalloc.start()
        with BlockAssociation(_tiled_blocks(cams, pos, n, 100), cams, FRAMES) as ba:
            assert ba.association["global_id"].nunique() >= pos.shape[1]
            for _ in ba.tracklets():
                pass
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    print("peak traced bytes", peaks)
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_camera_ids_need_not_equal_calibration_names(rig_scene):
    """The session's camera ids key the cameras; a calibration whose Camera.name differs (Pose2Sim:
    sheet 'cam01' vs calibration 'int_cam01_img') associates the same (whole session and blocks)."""
    from mctrack.associate.blocks import BlockAssociation

    cams, pos = rig_scene
    renamed = {f"view{i}": cam for i, cam in enumerate(cams.values())}
    assert not set(renamed) & {c.name for c in renamed.values()}
    tr = make_tracklets(renamed, pos)
    res = associate_session(tr, renamed, FRAMES)
    _assert_one_id_per_target(res, pos.shape[1])
    with BlockAssociation(_split(tr, 50), renamed, FRAMES) as ba:
        pd.testing.assert_frame_equal(ba.association, res.association)


def _lap_per_camera(rc, ok, c2, d2, act):
    """Reference for frames._assign: one linear_sum_assignment per camera over all its rows and tracks."""
    from scipy.optimize import linear_sum_assignment

    from mctrack.associate.frames import _BIG
    assigned, dn = np.full(len(rc), -1), np.full(len(rc), np.nan)
    for c in np.unique(rc):
        r = np.flatnonzero(rc == c)
        M = np.where(ok[r], c2[r], _BIG)
        ri, ki = linear_sum_assignment(M)
        keep = M[ri, ki] < _BIG
        assigned[r[ri[keep]]] = act[ki[keep]]
        dn[r[ri[keep]]] = np.sqrt(d2[r[ri[keep]], ki[keep]])
    return assigned, dn


@pytest.mark.parametrize("density", [0.1, 0.3, 0.6])
def test_assign_fast_path_equals_the_lap(density):
    """_assign (mutual-best fast path, direct matches, solver on the rest) == per-camera LAP on random problems;
    the fast path must take most sparse problems and leave conflicting ones to the solver."""
    from mctrack.associate.frames import _BIG, _assign, _assign_mutual
    rng = np.random.default_rng(int(density * 100))
    fast = 0
    for _trial in range(300):
        C, A = int(rng.integers(1, 5)), int(rng.integers(1, 12))
        rc = np.sort(rng.integers(0, C, int(rng.integers(1, 20))))
        act = np.sort(rng.choice(100, A, replace=False))
        d2 = rng.uniform(0, 9, (len(rc), A))
        ok = rng.random((len(rc), A)) < density
        cont = rng.random((len(rc), A)) < 0.2
        c2 = np.where(ok, d2 - 2.0 * cont, _BIG)
        want = _lap_per_camera(rc, ok, c2, d2, act)
        got = np.full(len(rc), -1), np.full(len(rc), np.nan)
        if ok.any():
            fast += _assign_mutual(rc, c2, d2, act, ok.sum(1), np.full(len(rc), -1), np.full(len(rc), np.nan))
            _assign(rc, ok, c2, d2, act, *got)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert fast > {0.1: 100, 0.3: 40, 0.6: 5}[density]


def test_assign_fast_path_declines_conflicts_and_near_ties():
    """Two rows of one camera whose cheapest track is the same, or a row with two near-equal tracks, go to the
    solver (which may prefer the second-cheapest track for one of them)."""
    from mctrack.associate.frames import _BIG, _assign, _assign_mutual
    rc, act = np.array([0, 0]), np.array([3, 7])
    d2 = np.array([[1.0, 2.0], [1.5, 9.0]])
    ok = np.ones((2, 2), bool)
    a, dn = np.full(2, -1), np.full(2, np.nan)
    assert not _assign_mutual(rc, d2, d2, act, ok.sum(1), a, dn)
    _assign(rc, ok, d2, d2, act, a, dn)
    np.testing.assert_array_equal(a, [7, 3])             # row 0 yields track 3 to row 1: total 3.5 < 10
    d2 = np.array([[1.0, 1.0 + 1e-9], [_BIG, _BIG]])
    assert not _assign_mutual(np.array([0, 1]), d2, d2, act, np.array([2, 0]), a, dn)


def test_intersect_equals_the_written_out_solution():
    """_intersect (stacked cofactors) gives bit for bit the written-out adjugate formula, and the least-squares
    point of np.linalg.solve on the normal equations to 1e-9."""
    from mctrack.associate.frames import _intersect, _ray_weights
    rng = np.random.default_rng(5)
    for C in (3, 4, 9):
        G = 50
        g = np.repeat(np.arange(G), C)
        cam = np.tile(np.arange(C), G)
        keep = rng.random(len(g)) < 0.8
        g, cam = g[keep], cam[keep]
        o = rng.normal(size=(len(g), 3))
        d = rng.normal(size=(len(g), 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        X, n = _intersect(g, cam, o, d, G, C)
        # written out (the form before the stacked one)
        if C < 8:
            s = np.bincount((g[:, None] * 9 + np.arange(9)).ravel(), weights=_ray_weights(o, d).ravel(),
                            minlength=G * 9).reshape(G, 9)
            a, e, i, bq, c, f, b = n - s[:, 0], n - s[:, 1], n - s[:, 2], -s[:, 3], -s[:, 4], -s[:, 5], s[:, 6:]
            A0, A1, A2 = e * i - f * f, c * f - bq * i, bq * f - c * e
            B1, B2, C2 = a * i - c * c, bq * c - a * f, a * e - bq * bq
            det = a * A0 + bq * A1 + c * A2
            Xw = np.stack([A0 * b[:, 0] + A1 * b[:, 1] + A2 * b[:, 2], A1 * b[:, 0] + B1 * b[:, 1] + B2 * b[:, 2],
                           A2 * b[:, 0] + B2 * b[:, 1] + C2 * b[:, 2]], 1) / det[:, None]
            Xw[n < 2] = np.nan
            np.testing.assert_array_equal(X, Xw)
        for k in np.flatnonzero(n >= 2)[:20]:
            r = g == k
            M = sum(np.eye(3) - np.outer(dd, dd) for dd in d[r])
            rhs = sum((np.eye(3) - np.outer(dd, dd)) @ oo for oo, dd in zip(o[r], d[r]))
            np.testing.assert_allclose(X[k], np.linalg.solve(M, rhs), rtol=1e-9, atol=1e-9)
        assert np.isnan(X[n < 2]).all()


def test_predict_and_projection_equal_the_written_out_formulas():
    """_predict's stacked covariance update and _Projector's pairwise distortion give bit for bit the
    per-element formulas (constant-velocity white-noise-acceleration model; OpenCV's 5-coefficient model)."""
    from mctrack.associate.frames import _predict, _Tracks
    rng = np.random.default_rng(2)
    for dt in (1, 2, 5):
        T = _Tracks(cap=16)
        T.n = 16
        T.X, T.V, T.size = rng.normal(size=(16, 3)), rng.normal(size=(16, 3)), rng.uniform(0.01, 0.1, 16)
        L = rng.normal(size=(16, 2, 2))
        T.P = L @ L.transpose(0, 2, 1)
        act = np.array([1, 2, 5, 9, 10])
        X0, V0, P = T.X.copy(), T.V.copy(), T.P[act].copy()
        for idx in (act, np.arange(3, 8)):       # scattered and contiguous live tracks
            T.X, T.P = X0.copy(), np.ascontiguousarray(T.P)
            P = T.P[idx].copy()
            _predict(T, idx, dt, 0.3)
            qa = (0.3 * T.size[idx]) ** 2
            d = float(dt)
            np.testing.assert_array_equal(T.X[idx], X0[idx] + V0[idx] * d)
            np.testing.assert_array_equal(T.P[idx, 0, 0], P[:, 0, 0] + 2 * d * P[:, 0, 1] + d * d * P[:, 1, 1] +
                                          qa * d ** 4 / 4)
            np.testing.assert_array_equal(T.P[idx, 0, 1], P[:, 0, 1] + d * P[:, 1, 1] + qa * d ** 3 / 2)
            np.testing.assert_array_equal(T.P[idx, 1, 0], T.P[idx, 0, 1])
            np.testing.assert_array_equal(T.P[idx, 1, 1], P[:, 1, 1] + qa * d * d)
    cams = [Camera("a", [[800, 0.5, 320], [0, 790, 240], [0, 0, 1]], [-0.2, 0.05, 0.001, -0.002, 0.01],
                   [0.1, -0.2, 0.05], [0.1, 0.0, 1.5], (640, 480)),
            Camera("b", [[600, 0, 330], [0, 600, 250], [0, 0, 1]], [0.1, -0.01, 0, 0],
                   [0.0, 0.3, 0.0], [-0.2, 0.1, 1.5], (640, 480))]
    proj = _Projector(cams)
    X = rng.normal(size=(500, 3)) * 0.4
    uv, _ = proj(X)
    Xc = np.einsum("cij,mj->cmi", proj.R, X) + proj.t[:, None, :]
    x, y = Xc[..., 0] / Xc[..., 2], Xc[..., 1] / Xc[..., 2]
    r2 = x * x + y * y
    rad = 1 + r2 * (proj.k1 + r2 * (proj.k2 + r2 * proj.k3))
    xd = x * rad + 2 * proj.p1 * x * y + proj.p2 * (r2 + 2 * x * x)
    yd = y * rad + proj.p1 * (r2 + 2 * y * y) + 2 * proj.p2 * x * y
    u, v = proj.fx[:, None] * xd + proj.cx[:, None], proj.fy[:, None] * yd + proj.cy[:, None]
    inside = np.isfinite(uv[..., 0])
    assert inside.sum() > 100
    np.testing.assert_array_equal(uv[..., 0][inside], u[inside])
    np.testing.assert_array_equal(uv[..., 1][inside], v[inside])


def _two_camera_frame():
    """Two cameras 1 m apart looking at two targets 0.1 m apart; rows (camera order) and their rays."""
    from mctrack.associate.frames import _Projector
    K = [[800, 0, 320], [0, 800, 240], [0, 0, 1]]
    cams = [Camera("a", K, [], [0.0, 0.0, 0.0], [0.5, 0.0, 2.0], (640, 480)),
            Camera("b", K, [], [0.0, -0.5, 0.0], [0.0, 0.0, 2.0], (640, 480))]
    P = np.array([[0.0, 0.0, 0.0], [0.0, 0.1, 0.05]])             # targets A, B (m)
    uv = np.concatenate([c.project(P) for c in cams])              # rows: a:A, a:B, b:A, b:B
    rc = np.array([0, 0, 1, 1])
    o = np.concatenate([c.center[None].repeat(2, 0) for c in cams])
    d = P[[0, 1, 0, 1]] - o
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return cams, _Projector(cams), P, uv, rc, o, d


def test_crossed_two_camera_pairings_are_exchanged():
    """Two tracks holding one row of each target (a ghost pair each, rays 0.1 m apart) get their rows of one
    camera exchanged: each ends with both rows of one target, the one nearer its prediction."""
    from mctrack.associate.frames import _repair_pairs, _Tracks
    cams, proj, P, uv, rc, o, d = _two_camera_frame()
    T = _Tracks(n_cams=2)
    T.add(P + 0.01, np.array([0.05, 0.05]), 0, np.eye(2) * 1e-4)   # track 0 predicted near A, 1 near B
    act = np.array([0, 1])
    assigned = np.array([0, 1, 1, 0])                             # crossed: (a:A, b:B) and (a:B, b:A)
    dn = np.zeros(4)
    d2 = np.array([[0.1, 9.0], [9.0, 0.1], [0.1, 9.0], [9.0, 0.1]])
    tau0_sq = np.full(4, 4.0 ** 2)
    _repair_pairs(T, act, rc, assigned, dn, d2, uv, o, d, proj, tau0_sq, 1.0)
    np.testing.assert_array_equal(assigned, [0, 1, 0, 1])   # camera b's rows moved (track 0 stays near A)
    np.testing.assert_allclose(dn, [0.0, 0.0, np.sqrt(0.1), np.sqrt(0.1)])   # their distances to the new track
    # consistent pairs are left alone
    _repair_pairs(T, act, rc, assigned, dn, d2, uv, o, d, proj, tau0_sq, 1.0)
    np.testing.assert_array_equal(assigned, [0, 1, 0, 1])


def test_lone_inconsistent_pairing_drops_the_row_far_from_the_prediction():
    """A track holding a:A and b:B (no second ghost to exchange with, no free partner rows: the frame has
    only these two rows) drops the row farther from its prediction when the pair error exceeds twice
    pair_gate; below that nothing changes."""
    from mctrack.associate.frames import _pair_error, _repair_pairs, _Tracks
    cams, proj, P, uv, rc, o, d = _two_camera_frame()
    keep = np.array([0, 3])                                       # rows a:A and b:B only
    uv, rc, o, d = uv[keep], rc[keep], o[keep], d[keep]
    T = _Tracks(n_cams=2)
    T.add(P[:1], np.array([0.05]), 0, np.eye(2) * 1e-4)
    act = np.array([0])
    tau0_sq = np.full(2, 4.0 ** 2)
    e, _ = _pair_error(np.array([0]), np.array([1]), rc, uv, o, d, proj, tau0_sq)
    assert e[0] > 1.0                                             # a ghost: 0.1 m apart is several tau
    d2 = np.array([[0.2], [2.0]])
    # dropped when the error exceeds twice the gate (frames._PAIR_DROP); kept below that
    for gate, expect in ((float(e[0]) / 2.2, [0, -1]), (float(e[0]) / 1.8, [0, 0]), (float(e[0]) * 1.01, [0, 0])):
        assigned = np.array([0, 0])
        dn = np.array([0.4, 1.4])
        _repair_pairs(T, act, rc, assigned, dn, d2, uv, o, d, proj, tau0_sq, gate)
        np.testing.assert_array_equal(assigned, expect)


def test_inconsistent_pairing_with_free_partner_rows_is_repaired():
    """A track holding a:A and b:B while a:B and b:A are free (the other half of a crossing went
    unassigned): the track keeps the row of the target its prediction is near and takes that target's
    free partner row; the released row is left free for a birth with its own partner. With only one of
    the two partner rows free, nothing changes below the drop threshold."""
    from mctrack.associate.frames import _pair_error, _repair_pairs, _Tracks
    cams, proj, P, uv, rc, o, d = _two_camera_frame()
    tau0_sq = np.full(4, 4.0 ** 2)
    e, _ = _pair_error(np.array([0, 0, 1]), np.array([3, 2, 3]), rc, uv, o, d, proj, tau0_sq)
    gate = float(e[0]) / 1.5           # the crossed pair (a:A, b:B) is inconsistent but below twice the gate
    assert e[1] < 0.1 * gate and e[2] < 0.1 * gate  # (a:A, b:A) and (a:B, b:B) are consistent
    d2 = np.array([[0.2], [9.0], [9.0], [2.0]])
    for near, expect in ((0, [0, -1, 0, -1]), (1, [-1, 0, -1, 0])):   # prediction near A, resp. near B
        T = _Tracks(n_cams=2)
        T.add(P[near:near + 1] + 0.005, np.array([0.05]), 0, np.eye(2) * 1e-4)
        assigned, dn = np.array([0, -1, -1, 0]), np.array([0.4, np.nan, np.nan, 1.4])
        _repair_pairs(T, np.array([0]), rc, assigned, dn, d2, uv, o, d, proj, tau0_sq, gate)
        np.testing.assert_array_equal(assigned, expect)
        assert np.isfinite(dn[np.array(expect) == 0]).all() and np.isnan(dn[np.array(expect) < 0]).all()
    # b:A taken by another track: a:B alone cannot make both pairs consistent -> the crossed pair stays
    T = _Tracks(n_cams=2)
    T.add(np.vstack([P[:1], P[:1] + 0.3]), np.array([0.05, 0.05]), 0, np.eye(2) * 1e-4)
    assigned = np.array([0, -1, 1, 0])
    _repair_pairs(T, np.array([0, 1]), rc, assigned, np.zeros(4), np.full((4, 2), 9.0), uv, o, d, proj, tau0_sq,
                  gate)
    np.testing.assert_array_equal(assigned, [0, -1, 1, 0])


def test_crossed_pairings_within_the_gate_are_exchanged_after_a_few_frames():
    """Crossed pairs that pass pair_gate (0.4 tau0 each, a merged blob's aftermath) are exchanged once their
    running mean error is doubtful (the second frame here, not the first); correct pairs never are."""
    from mctrack.associate.frames import _pair_error, _repair_pairs, _Tracks
    cams, proj, P, uv, rc, o, d = _two_camera_frame()
    tau0_sq = np.full(4, 50.0 ** 2)   # crossed pairs 0.1 m apart are 5 tau at 4 px: 0.4 tau here
    e, _ = _pair_error(np.array([0, 1]), np.array([3, 2]), rc, uv, o, d, proj, tau0_sq)
    assert np.all((e > 0.3) & (e < 0.5))
    d2 = np.array([[0.1, 9.0], [9.0, 0.1], [0.1, 9.0], [9.0, 0.1]])
    T = _Tracks(n_cams=2)
    T.add(P, np.array([0.05, 0.05]), 0, np.eye(2) * 1e-4)
    act = np.array([0, 1])
    seen = []
    for t in (1, 2):
        assigned, dn = np.array([0, 1, 1, 0]), np.zeros(4)             # crossed again each frame
        _repair_pairs(T, act, rc, assigned, dn, d2, uv, o, d, proj, tau0_sq, 1.0, t)
        seen.append(assigned.tolist())
    assert seen == [[0, 1, 1, 0], [0, 1, 0, 1]]                          # one frame is not enough; two are
    # a correct pairing with a doubtful history is left alone (the exchange would be worse)
    T.pe2[:2], T.pe_t[:2] = 0.5, 2
    assigned = np.array([0, 1, 0, 1])
    _repair_pairs(T, act, rc, assigned, np.zeros(4), d2, uv, o, d, proj, tau0_sq, 1.0, 3)
    np.testing.assert_array_equal(assigned, [0, 1, 0, 1])


def test_exchanged_pairings_take_identities_from_the_state_before_the_crossing():
    """After a crossing the predictions follow the ghosts; the exchange gives each track the target that
    continues its state from before the pairing became doubtful (T.cX at T.ct), whichever camera's rows
    that takes."""
    from mctrack.associate.frames import _repair_pairs, _Tracks
    cams, proj, P, uv, rc, o, d = _two_camera_frame()
    tau0_sq = np.full(4, 50.0 ** 2)
    d2 = np.array([[0.1, 9.0], [9.0, 0.1], [0.1, 9.0], [9.0, 0.1]])
    act = np.array([0, 1])
    for before, expect in ((P, [0, 1, 0, 1]), (P[::-1], [1, 0, 1, 0])):
        T = _Tracks(n_cams=2)
        T.add(P[::-1] + 0.005, np.array([0.05, 0.05]), 0, np.eye(2) * 1e-4)   # predictions swapped by the drift
        T.pe2[:2], T.pe_t[:2] = 0.2, 9
        T.cX[:2], T.cV[:2], T.ct[:2] = before, 0.0, 5
        assigned = np.array([0, 1, 1, 0])
        _repair_pairs(T, act, rc, assigned, np.zeros(4), d2, uv, o, d, proj, tau0_sq, 1.0, 10)
        np.testing.assert_array_equal(assigned, expect)   # track 0: both rows of A, resp. of B
        assert T.pe2[0] == T.pe2[1] == 0.0
