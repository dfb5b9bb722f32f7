"""Background backend: splitting blobs of touching targets, the single-target area, still objects (fill_moved)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import shared_path

from mctrack import detect
from mctrack.detect.background import BackgroundDetector, _weighted_median
from mctrack.errors import InputError
from mctrack.video import VideoWriter

REPO = Path(__file__).resolve().parents[1]
W, H = 260, 150
AXES = (14, 5)  # ellipse semi-axes px: a 29 x 11 px "fish"


def textured_background(seed: int = 0, level: int = 170) -> np.ndarray:
    """(H, W, 3) uint8 smooth texture around ``level`` (+-25 grey levels)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1, 1, (H // 8, W // 8)).astype(np.float32)
    tex = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    g = np.clip(level + 25 * tex, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def draw(img: np.ndarray, centre, angle: float, axes=AXES, colour=40) -> np.ndarray:
    cv2.ellipse(img, (int(round(centre[0])), int(round(centre[1]))), axes, angle, 0, 360, (colour,) * 3, -1)
    return img


def ellipse_box(centre, angle: float, axes=AXES) -> np.ndarray:
    """(4,) xyxy px box of the drawn ellipse's pixels (pixel-corner convention)."""
    m = draw(np.zeros((H, W, 3), np.uint8), centre, angle, axes, colour=255)[..., 0]
    ys, xs = np.nonzero(m)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``a`` (N, 2), the distance to the nearest row of ``b`` (M, 2)."""
    return np.linalg.norm(a[:, None] - b[None], axis=2).min(axis=1)


# ---------------------------------------------------------------------------- splitting, one frame

# two fish touching in a V (a common contact in a school) + two single fish
PAIR = [((70, 60), 30.0), ((93, 60), -30.0)]
SINGLES = [((160, 30), 0.0), ((150, 115), 75.0)]


def _frame() -> tuple[np.ndarray, np.ndarray]:
    bg = textured_background()
    img = bg.copy()
    for c, a in PAIR + SINGLES:
        draw(img, c, a)
    return bg, img


def test_weighted_median():
    assert _weighted_median(np.array([])) == 0.0
    # 10 speckles of 20 px and 5 fish of 300 px: the plain median says 20, the area-weighted one 300
    v = np.r_[np.full(10, 20.0), np.full(5, 300.0)]
    assert np.median(v) == 20.0 and _weighted_median(v) == 300.0
    # a minority of merged blobs (2 x 300 px) does not move it
    assert _weighted_median(np.r_[np.full(8, 300.0), np.full(2, 600.0)]) == 300.0


def test_two_touching_ellipses_give_two_boxes():
    bg, img = _frame()
    thr = np.full((H, W), 16.0 * 15.0, np.float32)
    one = cv2.countNonZero(draw(np.zeros((H, W), np.uint8), (50, 50), 0.0, colour=255))
    truth = np.array([ellipse_box(c, a) for c, a in PAIR + SINGLES])
    det = detect.make_detector({})
    b0, _ = det.detect_frame(bg, thr, img, 0.0)  # target area unknown: no splitting
    assert len(b0) == 3  # the V is one blob
    b, c = det.detect_frame(bg, thr, img, float(one))
    assert len(b) == 4 and c.min() > 0.9  # 130 grey levels of contrast
    # every true fish has a box whose centre is within 3 px of its own (measured 0.5-1.6 px for the pair)
    err = nearest(centres(truth), centres(b))
    assert err.max() <= 3.0, err
    # the singles are untouched: their boxes (the 3 px opening may shave a 1 px tip)
    for t in truth[2:]:
        assert np.abs(b - t).max(1).min() <= 1
    # split off: same as unknown area
    b2, _ = detect.make_detector({"split": False}).detect_frame(bg, thr, img, float(one))
    np.testing.assert_array_equal(b2, b0)
    # a blob below split_ratio x target area stays whole: with a target area as big as the pair nothing splits
    b3, _ = det.detect_frame(bg, thr, img, float(2 * one))
    assert len(b3) == 3


def test_three_in_a_row_split_into_three():
    bg = textured_background(1)
    img = bg.copy()
    fish = [((60, 75), 90.0), ((71, 75), 90.0), ((82, 75), 90.0)]  # three upright fish side by side, touching
    for c, a in fish:
        draw(img, c, a)
    thr = np.full((H, W), 240.0, np.float32)
    one = cv2.countNonZero(draw(np.zeros((H, W), np.uint8), (50, 50), 90.0, colour=255))
    b, _ = detect.make_detector({}).detect_frame(bg, thr, img, float(one))
    assert len(b) == 3
    assert nearest(centres(np.array([ellipse_box(c, a) for c, a in fish])), centres(b)).max() <= 3.0
    # three targets but at most two parts allowed: not a group of targets, left whole
    b, _ = detect.make_detector({"max_split": 2}).detect_frame(bg, thr, img, float(one))
    assert len(b) == 1
    # a whole-image change (camera out) is one box, not max_split parts
    b, _ = detect.make_detector({}).detect_frame(bg, thr, np.zeros_like(bg), float(one))
    assert len(b) == 1


# ---------------------------------------------------------------------------- on a video: area estimate, chunks

N_FRAMES = 40


def fish_positions(f: int) -> list[tuple[tuple[float, float], float]]:
    """Four moving fish; fish 0 and 1 swim side by side and touch (V) in frames 15-24."""
    t = f / (N_FRAMES - 1)
    x0 = 20 + 4.0 * f  # fast enough that no pixel is covered in half the frames
    gap = 23 if 15 <= f < 25 else 60  # centre distance of fish 0 and 1 (23 px: touching, as in PAIR)
    return [((x0, 45), 30.0), ((x0 + gap, 45), -30.0),
            ((30 + 130 * t, 125), 0.0), ((248, 85 + 50 * t), 80.0)]


@pytest.fixture(scope="module")
def fish_video(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    bg = textured_background(2)
    path = tmp_path_factory.mktemp("split") / "fish.mp4"
    with VideoWriter(path, fps=25, width=W, height=H, crf=18) as vw:
        for f in range(N_FRAMES):
            img = bg.copy()
            for c, a in fish_positions(f):
                draw(img, c, a)
            vw.write(np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8))
    return path


def test_target_area_and_recall_on_video(fish_video):
    det = detect.make_detector({})
    model = det.primed_model(fish_video)
    one = cv2.countNonZero(draw(np.zeros((H, W), np.uint8), (50, 50), 0.0, colour=255))
    # estimated from the priming frames (1 in 4 blobs is the merged pair in a quarter of them):
    # within 15% of one drawn fish (x264 edges and the 5 px closing make blobs slightly larger)
    assert abs(model.target_area - one) / one < 0.15, (model.target_area, one)
    df = det.detect_chunk(fish_video, 0, N_FRAMES, "cam1")
    n = df.groupby("frame").size().reindex(range(N_FRAMES), fill_value=0)
    assert (n == 4).all(), n[n != 4]
    touching = df[df.frame.between(15, 24)]
    for f, g in touching.groupby("frame"):
        truth = np.array([ellipse_box(c, a) for c, a in fish_positions(f)])
        assert nearest(centres(truth), centres(g[["x1", "y1", "x2", "y2"]].to_numpy())).max() <= 3.0
    plain = detect.make_detector({"split": False}).detect_chunk(fish_video, 0, N_FRAMES, "cam1")
    assert (plain.groupby("frame").size().loc[15:24] == 3).all()  # without splitting the V is one box


def test_split_chunks_equal_one_chunk(fish_video, tmp_path):
    one = detect.make_detector({}).detect_chunk(fish_video, 0, N_FRAMES, "cam1")
    parts = [detect.make_detector({}).detect_chunk(fish_video, a, b, "cam1") for a, b in [(0, 18), (18, N_FRAMES)]]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), one)
    # and through the saved model (rule background_model): the target area travels with it
    det = detect.make_detector({})
    det.save_model(fish_video, tmp_path / "bg.npz")
    det2 = detect.make_detector({})
    det2.load_model(fish_video, tmp_path / "bg.npz")
    assert det2.primed_model(fish_video).target_area == det.primed_model(fish_video).target_area
    pd.testing.assert_frame_equal(det2.detect_chunk(fish_video, 0, N_FRAMES, "cam1"), one)


def test_old_model_file_raises(fish_video, tmp_path):
    m = detect.make_detector({}).primed_model(fish_video)
    np.savez(tmp_path / "old.npz", background=m.background, threshold=m.threshold, grey=np.array(m.grey))
    with pytest.raises(InputError, match="target_area.*primed again"):
        detect.make_detector({}).load_model(fish_video, tmp_path / "old.npz")


# ---------------------------------------------------------------------------- still objects (fill_moved)


def still_body(f: int) -> tuple[tuple[float, float], float, tuple[int, int]]:
    """The resting animal at frame f: a 61 x 31 px ellipse that shifts by at most 3 px (breathing, fidgeting)."""
    return (90 + 3 * np.sin(f / 3.0), 70 + 2 * np.cos(f / 4.0)), 0.0, (30, 15)


def still_head(f: int) -> tuple[int, int]:
    c = still_body(f)[0]
    return int(round(c[0] + 32)), int(round(c[1] + 3 * np.sin(f / 2.0)))


def still_box(f: int) -> np.ndarray:
    """(4,) xyxy px box of the animal (body + 6 px head disc) at frame f."""
    b = ellipse_box(*still_body(f))
    hx, hy = still_head(f)
    return np.array([min(b[0], hx - 6), min(b[1], hy - 6), max(b[2], hx + 7), max(b[3], hy + 7)])


@pytest.fixture(scope="module")
def still_video(tmp_path_factory) -> Path:
    """A light floor; a dark 'animal' that stays put (shifting by <= 3 px) and wags its head (a 6 px disc at
    its front, +-3 px), plus a small fish crossing the view."""
    rng = np.random.default_rng(5)
    bg = textured_background(4, level=200)
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    with VideoWriter(path, fps=25, width=W, height=H, crf=18) as vw:
        for f in range(N_FRAMES):
            img = bg.copy()
            c, a, ax = still_body(f)
            draw(img, c, a, ax, colour=60)
            cv2.circle(img, still_head(f), 6, (60,) * 3, -1)
            draw(img, (20 + 4 * f, 130), 0.0, (8, 3))
            vw.write(np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8))
    return path


def best_iou(boxes: np.ndarray, t: np.ndarray) -> float:
    if len(boxes) == 0:
        return 0.0
    lt = np.maximum(boxes[:, :2], t[:2])
    rb = np.minimum(boxes[:, 2:], t[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return float((inter / (area + np.prod(t[2:] - t[:2]) - inter)).max())


def test_fill_moved_detects_a_still_animal(still_video):
    video = still_video
    cfg = {"min_area": 100, "split": False}
    plain = detect.make_detector(cfg).detect_chunk(video, 0, N_FRAMES, "cam1")
    filled = detect.make_detector({**cfg, "fill_moved": True}).detect_chunk(video, 0, N_FRAMES, "cam1")

    def ious(df):
        by = dict(tuple(df.groupby("frame")))
        return np.array([best_iou(by[f][["x1", "y1", "x2", "y2"]].to_numpy() if f in by else np.zeros((0, 4)),
                                  still_box(f)) for f in range(N_FRAMES)])

    # the median contains the animal: plain subtraction sees only slivers of its moving edges
    assert ious(plain).max() < 0.3
    # with fill_moved the whole animal (body + head) is one blob in every frame
    iou = ious(filled)
    assert iou.min() >= 0.7, iou
    # the crossing fish is still found (min_area 100 > its 50 px would drop it: check with a smaller bound)
    small = detect.make_detector({"min_area": 20, "split": False, "fill_moved": True}).detect_chunk(
        video, 0, N_FRAMES, "cam1")
    assert (small.groupby("frame").size() >= 2).mean() >= 0.9


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize("key, value", [("split", "yes"), ("split_ratio", 1.0), ("max_split", 1), ("target_area", 0),
                                        ("fill_moved", 1), ("fill_margin_px", -1)])
def test_bad_split_config(key, value):
    with pytest.raises(InputError) as ei:
        detect.make_detector({key: value})
    assert ei.value.field == f"detect.{key}"


def test_schema_documents_every_background_key():
    """The schema is the one source of defaults: its detect.background properties equal the backend's DEFAULTS."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]["detect"]["properties"]["background"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == BackgroundDetector.DEFAULTS
    assert all(v.get("description") for v in props.values())


# ---------------------------------------------------------------------------- real footage: the resting mouse


@pytest.mark.slow
def test_mouse_arena_fill_moved_finds_the_resting_mouse():
    """sleap-anipose arena: the mouse moves < 11 px in 120 frames, so the temporal median contains it.

    With config/mouse_arena.yaml's detect settings (fill_moved: true) every view has exactly one box
    in every frame and it contains the centroid of the proofread body keypoints (tail nodes left out);
    measured 2026-11: 120/120 frames in all four views. Without fill_moved the back view finds nothing.
    """
    import h5py

    root = shared_path("data", "sleap_anipose_minimal")
    cfg = yaml.safe_load((REPO / "config" / "mouse_arena.yaml").read_text())["detect"]["background"]
    assert cfg["fill_moved"] is True
    body = [0, 1, 2, 5, 6, 10, 11, 12, 13, 14]  # Nose, Ears, Head, Trunk, Shoulders, Haunches, Neck
    for view in ("back", "mid", "side", "top"):
        with h5py.File(root / view / f"minimal_{view}_proofread.analysis.h5") as f:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["node_names"][:]]
            assert not any(names[i].startswith("Tail") or names[i] in ("TailTip", "TTI") for i in body)
            centroid = np.nanmean(f["tracks"][0][:, body], axis=1).T  # (T, 2) px
        df = detect.make_detector(cfg).detect_chunk(root / view / f"minimal_{view}.mp4", 0, 120, view)
        n = df.groupby("frame").size().reindex(range(120), fill_value=0).to_numpy()
        x, y = centroid[df.frame].T
        inside = (df.x1 <= x) & (x <= df.x2) & (df.y1 <= y) & (y <= df.y2)
        assert (n == 1).mean() >= 0.95, (view, n)
        assert inside.groupby(df.frame).any().reindex(range(120), fill_value=False).mean() >= 0.95, view
        if view == "back":
            plain = detect.make_detector({**cfg, "fill_moved": False}).detect_chunk(
                root / view / f"minimal_{view}.mp4", 0, 120, view)
            assert plain.frame.nunique() < 60  # measured: 0 of 120 frames


# ---------------------------------------------------------------------------- appearance (chromaticity)

def test_blob_chromaticity_is_the_targets_colour():
    """Each blob's (chroma_r, chroma_g) is its body colour's R/(R+G+B), G/(R+G+B), also for split parts."""
    bg = textured_background()
    img = bg.copy()
    colours = {(70, 60): (30, 60, 90), (93, 60): (80, 50, 40), (160, 30): (40, 80, 40)}  # BGR
    for (c, a), col in zip(PAIR + SINGLES[:1], colours.values()):
        cv2.ellipse(img, c, AXES, a, 0, 360, col, -1)
    thr = np.full((H, W), 16.0 * 15.0, np.float32)
    one = np.pi * AXES[0] * AXES[1]
    det = detect.make_detector({})
    b, c, ch = det.detect_frame(bg, thr, img, float(one), chroma=True)
    assert len(b) == 3 and ch.shape == (3, 2)
    for centre, (B, G, R) in colours.items():
        i = int(np.argmin(np.linalg.norm(centres(b) - np.array(centre), axis=1)))
        # the blob's rim mixes in background (grey: r = g = 1/3); the core dominates the weighted mean
        np.testing.assert_allclose(ch[i], [R / (B + G + R), G / (B + G + R)], atol=0.02)
    # the three colours are told apart far beyond that tolerance
    assert np.linalg.norm(ch[:, None] - ch[None], axis=2)[np.triu_indices(3, 1)].min() > 0.1
    # a grey model has no colour: NaN, boxes unchanged
    g_bg, g_img = cv2.cvtColor(bg, cv2.COLOR_BGR2GRAY), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    b2, _, ch2 = det.detect_frame(g_bg, thr, g_img, float(one), chroma=True)
    assert np.isnan(ch2).all() and len(b2) == 3
    b3, _ = det.detect_frame(bg, thr, img, float(one))  # the two-value form is unchanged
    np.testing.assert_array_equal(b3, b)
