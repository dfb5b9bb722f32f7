"""Identity through close encounters (mctrack.associate.encounters) and appearance in association.

The points are built by hand (two targets on straight lines or turning back), so the right answer is
known exactly; the end-to-end effect on the hard synthetic scene is in the slow workflow test.
"""
import numpy as np
from conftest import make_tracklets

from mctrack.associate.data import TrackletIndex
from mctrack.associate.encounters import cut_plan, link_fragments
from mctrack.associate.frames import appearance_sigma

V = 0.005  # m per frame


def _line(x0, v, frames, y=0.0):
    f = np.asarray(frames)
    return np.column_stack([x0 + v * (f - f[0]), np.full(len(f), y), np.full(len(f), 0.2)])


def _points(parts):
    """parts: list of (tid, frames, X) -> sorted (tid, frame, X)."""
    tid = np.concatenate([np.full(len(f), t) for t, f, _ in parts]).astype(np.int64)
    fr = np.concatenate([np.asarray(f) for _, f, _ in parts]).astype(np.int64)
    X = np.concatenate([x for *_, x in parts])
    o = np.lexsort((fr, tid))
    return tid[o], fr[o], X[o]


def test_cut_plan_releases_ambiguous_encounters_only():
    f = np.arange(100)
    a, b = _line(-0.25, V, f), _line(0.25, -V, f, y=0.01)   # they pass 1 cm apart at frame 50
    # unambiguous: both tracks have a point in every frame of the encounter -> nothing released
    tid, fr, X = _points([(0, f, a), (1, f, b)])
    rel, starts = cut_plan(tid, fr, X, radius_m=0.05, pad=2)
    assert rel.size == 0 and len(starts) == 2
    # ambiguous: track 0 lost its multi-camera point in frames 49-51 (a merged blob)
    keep = (f < 49) | (f > 51)
    tid, fr, X = _points([(0, f[keep], a[keep]), (1, f, b)])
    rel, starts = cut_plan(tid, fr, X, radius_m=0.05, pad=2)
    S = 99 + 2 + 2  # keys are track·S + frame, S = last frame + 2 + pad (cut_plan docstring)
    cells = {(int(k // S), int(k % S)) for k in rel}
    assert {(0, 45), (1, 45), (1, 55)} <= cells and (0, 40) not in cells and (1, 60) not in cells
    st = {(int(k // S), int(k % S)) for k in starts}
    assert {(0, 0), (1, 0)} <= st and any(t == 0 and 50 < g < 60 for t, g in st)
    assert any(t == 1 and 50 < g < 60 for t, g in st)
    # a coast: multi-camera points 20 frames apart start a new fragment
    tid, fr, X = _points([(0, np.r_[0:40, 60:100], _line(0, V, np.r_[0:40, 60:100]))])
    _, starts = cut_plan(tid, fr, X, radius_m=0.05, pad=2)
    assert sorted(int(k % S) for k in starts) == [0, 60]


def test_a_track_that_passes_through_another_tracks_gap_is_cut_too():
    """Track 0 has no point in frames 46-54 (its rows merged with track 1's) and track 1 passes 1 cm from
    its path at frame 50, while their points in the frames either side (45, 55) are 5 cm apart, beyond the
    3 cm radius: the meeting is found on track 0's interpolated path, so track 1 is cut there as well (it
    may have taken the other target through the merge) and both are relinked by motion from both sides."""
    f = np.arange(100)
    a, b = _line(-0.25, V, f), _line(0.25, -V, f, y=0.01)
    keep = (f < 46) | (f > 54)
    tid, fr, X = _points([(0, f[keep], a[keep]), (1, f, b)])
    rel, starts = cut_plan(tid, fr, X, radius_m=0.03, pad=2)
    S = 99 + 2 + 2
    cells = {(int(k // S), int(k % S)) for k in rel}
    assert {(1, 47), (1, 50), (1, 53)} <= cells and (1, 40) not in cells and (1, 60) not in cells
    st = {(int(k // S), int(k % S)) for k in starts}
    assert any(t == 1 and 50 < g < 60 for t, g in st)   # track 1: a new fragment after the meeting
    assert any(t == 0 and g >= 55 for t, g in st)       # track 0: after its gap


def test_link_fragments_follows_motion_and_forces_nothing():
    pre = np.arange(0, 45)
    post = np.arange(56, 100)
    # fragments 0, 1 before a crossing; after it, fragment 2 continues target 1's line and 3 target 0's
    # fragment 2: x = 0.25 - V·f (target 1's line), fragment 3: x = -0.25 + V·f (target 0's)
    parts = [(0, pre, _line(-0.25, V, pre)), (1, pre, _line(0.25, -V, pre, 0.01)),
             (2, post, _line(0.25 - V * 56, -V, post, 0.01)), (3, post, _line(-0.25 + V * 56, V, post))]
    # fragment 4: far away, no plausible predecessor within the gate
    parts.append((4, post, _line(3.0, V, post, 2.0)))
    tid, fr, X = _points(parts)
    frags, rep, sup, _ = link_fragments(tid, fr, X, sigma_m=0.005, max_gap=30)
    r = dict(zip(frags.tolist(), rep.tolist()))
    assert r[3] == 0 and r[2] == 1 and r[4] == 4 and r[0] == 0 and r[1] == 1
    assert np.isnan(sup[4]) and 0 < sup[2] <= 1 and 0 < sup[3] <= 1
    # beyond max_gap nothing links
    _, rep2, _, _ = link_fragments(tid, fr, X, sigma_m=0.005, max_gap=5)
    assert (rep2 == frags).all()


def test_a_ghost_tail_is_cut_to_link_the_track_that_took_the_target_up():
    """Fragment 0 follows a target until frame 37, then drifts off it (a ghost) for 12 frames and ends;
    fragment 1 takes the target up in frame 50. The uncut end points 13 cm away: no link. Cut back to
    frame 37 it continues exactly into fragment 1 (cut reports 37); a far start stays alone, and a
    start born more than _REBIRTH frames after the end is not reached by cutting."""
    from mctrack.associate.encounters import _TRIMS

    head, tail, post = np.arange(0, 38), np.arange(38, 50), np.arange(50, 100)
    ghost = _line(-0.25 + V * 38, V, tail) + np.column_stack([0 * tail, 0.01 * (tail - 37), 0 * tail])
    parts = [(0, np.r_[head, tail], np.r_[_line(-0.25, V, head), ghost]),
             (1, post, _line(-0.25 + V * 50, V, post)), (2, post, _line(3.0, V, post, 2.0))]
    tid, fr, X = _points(parts)
    frags, rep, _, cut = link_fragments(tid, fr, X, sigma_m=0.005, max_gap=30)
    assert rep.tolist() == [0, 1, 2] and (cut == -1).all()
    frags, rep, sup, cut = link_fragments(tid, fr, X, sigma_m=0.005, max_gap=30, trims=_TRIMS)
    assert rep.tolist() == [0, 0, 2] and cut.tolist() == [37, -1, -1] and sup[1] > 0.5
    late = [(t, f + 3 * (t == 1), x) for t, f, x in parts]   # fragment 1 born in frame 53 (end: 49)
    _, rep, _, cut = link_fragments(*_points(late), sigma_m=0.005, max_gap=30, trims=_TRIMS)
    assert rep.tolist() == [0, 1, 2] and (cut == -1).all()


def test_appearance_decides_a_bounce_that_motion_gets_wrong():
    """Two targets meet and turn back: straight-line motion prefers the crossing; appearance does not."""
    pre = np.arange(0, 45)
    post = np.arange(56, 100)
    parts = [(0, pre, _line(-0.25, V, pre)), (1, pre, _line(0.25, -V, pre, 0.01)),
             # after the meeting target 0 goes back left (fragment 2), target 1 back right (fragment 3)
             (2, post, _line(-0.25 + V * 44, -V, post)), (3, post, _line(0.25 - V * 44, V, post, 0.01))]
    tid, fr, X = _points(parts)
    frags, rep, _, _ = link_fragments(tid, fr, X, sigma_m=0.01, max_gap=30)
    motion = dict(zip(frags.tolist(), rep.tolist()))
    assert motion[2] != 0  # the straight-line continuation wins without appearance (the failure mode)
    colour = np.array([[0.30, 0.34], [0.38, 0.30]])[[0, 1, 0, 1]][:, None, :]   # (F, 1 camera, 2)
    app = (colour, np.array([0.005]), 1.0)      # fragments 0, 2 one colour, 1, 3 another (>> 3 sigma apart)
    frags, rep, _, _ = link_fragments(tid, fr, X, sigma_m=0.01, max_gap=30, appearance=app)
    assert dict(zip(frags.tolist(), rep.tolist())) == {0: 0, 1: 1, 2: 0, 3: 1}


def test_appearance_sigma_recovers_the_row_noise(rig_scene):
    cams, pos = rig_scene
    tr = make_tracklets(cams, pos)
    rng = np.random.default_rng(0)
    base = rng.uniform(0.28, 0.38, (pos.shape[1], 2))
    target = (tr["track_id"].to_numpy() - 1) // 10
    a = base[target] + rng.normal(0, 0.004, (len(tr), 2))
    tr = tr.assign(chroma_r=a[:, 0], chroma_g=a[:, 1])
    idx = TrackletIndex.build(tr)
    s = appearance_sigma(idx)
    assert s.shape == (4,) and np.all(np.abs(s / 0.004 - 1) < 0.15)
    # without appearance columns the index has none, and association runs on geometry alone
    assert TrackletIndex.build(make_tracklets(cams, pos)).appearance is None
