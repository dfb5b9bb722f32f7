"""Synthetic pedestrians seen by one static camera, with ground truth and simulated detector output.

Used to tune and check tracking + refinement on many sequences instead of one
short real clip (``benchmarks/bench_tracking_accuracy.py --walkers``). The
model is deliberately generic, not fitted to any dataset:

- People walk on a ground plane (``X`` lateral, ``Z`` depth in m, 4-16 m
  from a pinhole camera 2.5 m above ground, focal 900 px, 960 x 540 image)
  at 1.0-1.6 m/s, heading doing a random walk (0.4 rad / sqrt(s)); they
  enter at a random time and leave when they walk out of the field.
  Positions advance with ``1 / fps`` s per frame, so sequences at different
  frame rates show the same motion in time.
- Box: feet at ``v = cy + f * 2.5 / Z``, height ``f * 1.75 / Z``, width 0.42 x
  height.
- Visibility = 1 - the largest fraction of the box covered by one nearer box.
- Detector: a person is detected with probability ``0.97 * sigmoid(12 (vis -
  0.35))``; its confidence is ``0.3 + 0.6 * vis + N(0, 0.08)`` clipped to
  [0.1, 0.99] (occluded people give the low-score boxes BYTE-style trackers
  recover); box edges jitter by N(0, 0.04 x height). False positives: Poisson
  (1 per frame), random boxes of plausible size with confidence U(0.1, 0.45).
- Ground truth: every person in the image; ``conf = 0`` (ignored) when
  visibility < 0.25, as in the synthetic fish scene.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

W, H, F, CAM_H = 960, 540, 900.0, 2.5


def walkers(seed: int, n_frames: int = 300, fps: float = 30.0, rate: float = 0.6,
            n_start: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(gt, detections)`` of one sequence.

    ``gt``: :func:`mctrack.evaluate.read_mot_gt`-style table (0-based frames,
    xyxy px, ``conf``); ``detections``: DETECTION table (camera ``"cam"``).
    ``rate``: people entering per second; ``n_start``: people present at frame 0.
    """
    rng = np.random.default_rng(seed)
    dt = 1.0 / fps
    # people: birth frame, start pos, speed, heading
    n_new = rng.poisson(rate * n_frames / fps)
    birth = np.r_[np.zeros(n_start, int), rng.integers(0, n_frames, n_new)]
    n = len(birth)
    z = rng.uniform(4, 16, n)
    x_edge = np.where(rng.random(n) < 0.5, -1, 1)
    x = np.where(birth == 0, rng.uniform(-0.45, 0.45, n) * W * z / F, x_edge * 0.55 * W * z / F)
    head = np.where(birth == 0, rng.uniform(0, 2 * np.pi, n), np.where(x_edge < 0, 0.0, np.pi)
                    + rng.normal(0, 0.5, n))
    speed = rng.uniform(1.0, 1.6, n)
    gt_rows, det_rows = [], []
    alive = np.zeros(n, bool)
    gone = np.zeros(n, bool)
    for t in range(n_frames):
        alive |= (birth == t) & ~gone
        head += rng.normal(0, 0.4 * np.sqrt(dt), n)
        x += np.where(alive, speed * np.cos(head) * dt, 0)
        z += np.where(alive, speed * np.sin(head) * dt * 0.6, 0)
        z = np.clip(z, 3.5, 18)
        h = F * 1.75 / z
        foot = H / 2 + F * CAM_H / z
        u = W / 2 + F * x / z
        box = np.c_[u - 0.21 * h, foot - h, u + 0.21 * h, foot]
        inside = (box[:, 2] > 0) & (box[:, 0] < W) & (box[:, 3] > 0) & (box[:, 1] < H)
        out = alive & ~inside & (t > birth + 2)
        gone |= out
        alive &= ~out
        idx = np.flatnonzero(alive & inside)
        if len(idx) == 0:
            continue
        b = box[idx]
        # visibility: largest coverage by one nearer person
        lo = np.maximum(b[:, None, :2], b[None, :, :2])
        hi = np.minimum(b[:, None, 2:], b[None, :, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
        area = np.prod(b[:, 2:] - b[:, :2], axis=1)
        nearer = z[idx][None, :] < z[idx][:, None]
        cover = np.where(nearer, inter / area[:, None], 0).max(axis=1)
        # clipped by image border
        cb = np.c_[np.clip(b[:, 0], 0, W), np.clip(b[:, 1], 0, H), np.clip(b[:, 2], 0, W), np.clip(b[:, 3], 0, H)]
        frac_in = np.prod(cb[:, 2:] - cb[:, :2], axis=1) / area
        vis = np.clip((1 - cover) * frac_in, 0, 1)
        for k, i in enumerate(idx):
            gt_rows.append((t, i + 1, *cb[k], 1.0 if vis[k] >= 0.25 else 0.0, vis[k]))
        p = 0.97 / (1 + np.exp(-12 * (vis - 0.35)))
        hit = rng.random(len(idx)) < p
        hh = (b[:, 3] - b[:, 1])[hit]
        db = cb[hit] + rng.normal(0, 0.04, (hit.sum(), 4)) * hh[:, None]
        cf = np.clip(0.3 + 0.6 * vis[hit] + rng.normal(0, 0.08, hit.sum()), 0.1, 0.99)
        n_fp = rng.poisson(1.0)
        fz = rng.uniform(4, 16, n_fp)
        fh = F * 1.75 / fz
        fu = rng.uniform(0, W, n_fp)
        ff = H / 2 + F * CAM_H / fz
        fb = np.c_[fu - 0.21 * fh, ff - fh, fu + 0.21 * fh, ff]
        db = np.r_[db, fb]
        cf = np.r_[cf, rng.uniform(0.1, 0.45, n_fp)]
        db = np.c_[np.clip(db[:, 0], 0, W), np.clip(db[:, 1], 0, H), np.clip(db[:, 2], 0, W), np.clip(db[:, 3], 0, H)]
        ok = (db[:, 2] - db[:, 0] >= 2) & (db[:, 3] - db[:, 1] >= 2)
        db, cf = db[ok], cf[ok]
        for k in range(len(db)):
            det_rows.append((t, k, *db[k], cf[k]))
    gt = pd.DataFrame(gt_rows, columns=["frame", "id", "x1", "y1", "x2", "y2", "conf", "visibility"])
    gt["class_id"] = 1
    det = pd.DataFrame(det_rows, columns=["frame", "det_index", "x1", "y1", "x2", "y2", "confidence"])
    det["camera_id"] = "cam"
    det["class_id"] = 0
    from mctrack.tables import DETECTION

    for c in ("x1", "y1", "x2", "y2"):
        gt[c] = gt[c].astype(np.float32)
    return gt, DETECTION.coerce(det)
