"""Mosaic layout: tile all cameras of a session (and a top-view panel) into one frame.

:func:`choose_grid` picks rows × columns for ``n`` equal tiles of a given
aspect ratio so that the grid, fitted into a 16:9 canvas, covers the largest
fraction of it (ties: fewer rows). :class:`Mosaic` places each camera's image
letterboxed into its tile, scaled so the mosaic's long side is at most
``max_size`` px. :class:`TopView` draws the 3D trajectories seen from above
(world x right, y up, equal axes) as one more tile.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd

from .overlay import _text, gid_color

__all__ = ["choose_grid", "Mosaic", "TopView"]


def choose_grid(n: int, tile_aspect: float, canvas_aspect: float = 16 / 9) -> tuple[int, int]:
    """``(rows, cols)`` for ``n >= 1`` tiles of ``tile_aspect`` (width / height) in a ``canvas_aspect`` frame.

    Maximises the canvas fraction covered by tiles when the grid is scaled to
    fit the canvas: ``n · tile area / canvas area``; ties go to fewer rows.
    Raises ``ValueError`` for ``n < 1`` or a non-positive aspect.
    """
    if n < 1 or tile_aspect <= 0 or canvas_aspect <= 0:
        raise ValueError(f"need n >= 1 and positive aspects, got n={n}, tile_aspect={tile_aspect}")
    best, best_cov = (1, n), -1.0
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        if rows * cols - n >= cols:  # a whole empty row
            continue
        grid_aspect = cols * tile_aspect / rows
        # fit a grid of aspect g in a canvas of aspect a (canvas height 1): covered fraction
        fit = grid_aspect / canvas_aspect if grid_aspect < canvas_aspect else canvas_aspect / grid_aspect
        cov = fit * n / (rows * cols)
        if cov > best_cov + 1e-9:
            best, best_cov = (rows, cols), cov
    return best


class Mosaic:
    """Tile ``sizes`` (``[(w, h), ...]`` px of each input image, in order) into one frame.

    Tiles share one size: the largest input width and height, scaled so the
    mosaic's long side is at most ``max_size`` px (never upscaled), even
    canvas dimensions. ``n_extra`` more tiles (e.g. the top view) follow the
    cameras. Attributes: ``rows``, ``cols``, ``tile`` ``(w, h)`` px, ``size``
    ``(W, H)`` px of the canvas, ``rects`` ``[(x, y, w, h)]`` px where image
    ``i`` is drawn (letterboxed inside its tile).
    """

    def __init__(self, sizes: list[tuple[int, int]], max_size: int, n_extra: int = 0):
        tw, th = max(w for w, _ in sizes), max(h for _, h in sizes)
        n = len(sizes) + n_extra
        self.rows, self.cols = choose_grid(n, tw / th)
        s = min(1.0, max_size / max(self.cols * tw, self.rows * th))
        self.tile = (max(2, int(tw * s)), max(2, int(th * s)))
        W, H = self.cols * self.tile[0], self.rows * self.tile[1]
        self.size = (W + W % 2, H + H % 2)
        self.rects = []
        for i in range(n):
            r, c = divmod(i, self.cols)
            w, h = sizes[i] if i < len(sizes) else (tw, th)
            k = min(self.tile[0] / w, self.tile[1] / h)
            rw, rh = max(1, int(w * k)), max(1, int(h * k))
            x = c * self.tile[0] + (self.tile[0] - rw) // 2
            y = r * self.tile[1] + (self.tile[1] - rh) // 2
            self.rects.append((x, y, rw, rh))

    def compose(self, images: list[np.ndarray]) -> np.ndarray:
        """``(H, W, 3) uint8`` canvas with ``images[i]`` resized into ``rects[i]`` (black elsewhere)."""
        canvas = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        for img, (x, y, w, h) in zip(images, self.rects):
            if img.shape[1] != w or img.shape[0] != h:
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            canvas[y:y + h, x:x + w] = img
        return canvas


class TopView:
    """Top view (world x–y, equal axes) of POINTS3D trajectories, drawn per frame as a ``(h, w, 3)`` image.

    ``points``: POINTS3D rows (``frame``, ``global_id``, ``x``, ``y`` world
    units); ``size``: ``(w, h)`` px; ``trail_length``: frames of history drawn
    as a line behind each target's current dot. The extent is the points'
    x–y bounding box plus 5 % margin, so the whole session fits.
    """

    def __init__(self, points: pd.DataFrame, size: tuple[int, int], trail_length: int = 30):
        self.w, self.h = size
        self.trail = max(1, trail_length)
        p = points.sort_values(["frame", "global_id"], kind="stable")
        self.frame = p["frame"].to_numpy(np.int64)
        self.gid = p["global_id"].to_numpy(np.int64)
        xy = p[["x", "y"]].to_numpy(np.float64)
        lo, hi = xy.min(0), xy.max(0)
        span = np.maximum(hi - lo, 1e-6) * 1.1
        mid = (lo + hi) / 2
        m = 0.08 * min(self.w, self.h)  # px margin for the title and axis labels
        k = min((self.w - 2 * m) / span[0], (self.h - 2 * m) / span[1])
        self.px = np.column_stack([self.w / 2 + (xy[:, 0] - mid[0]) * k,
                                   self.h / 2 - (xy[:, 1] - mid[1]) * k]).astype(np.float32)
        bg = np.full((self.h, self.w, 3), 32, np.uint8)
        u = max(self.w, self.h) / 640.0
        step = 10 ** math.floor(math.log10(max(span) / 2))  # grid lines every power of ten
        for gx in np.arange(math.ceil((mid[0] - span[0] / 2) / step) * step, mid[0] + span[0] / 2, step):
            x = int(round(self.w / 2 + (gx - mid[0]) * k))
            cv2.line(bg, (x, 0), (x, self.h - 1), (60, 60, 60), 1)
        for gy in np.arange(math.ceil((mid[1] - span[1] / 2) / step) * step, mid[1] + span[1] / 2, step):
            y = int(round(self.h / 2 - (gy - mid[1]) * k))
            cv2.line(bg, (0, y), (self.w - 1, y), (60, 60, 60), 1)
        _text(bg, f"top view x-y, grid {step:g} m", (int(6 * u), int(18 * u)), 0.45 * max(u, 0.8), (255, 255, 255))
        self.background = bg
        self.u = u

    def draw(self, f: int) -> np.ndarray:
        """The panel at session frame ``f``: trails of frames ``(f - trail_length, f]`` and a dot per target at ``f``."""
        img = self.background.copy()
        lo, hi = np.searchsorted(self.frame, [f - self.trail + 1, f + 1])
        if hi > lo:
            order = lo + np.lexsort((self.frame[lo:hi], self.gid[lo:hi]))
            g, pts = self.gid[order], np.round(self.px[order]).astype(np.int32)
            fr = self.frame[order]
            cuts = np.flatnonzero(np.diff(g)) + 1
            r = max(2, int(round(3 * self.u)))
            for idx in np.split(np.arange(len(g)), cuts):
                c = gid_color(int(g[idx[0]]))
                if len(idx) > 1:
                    cv2.polylines(img, [pts[idx]], False, c, 1, cv2.LINE_AA)
                if fr[idx[-1]] == f:
                    cv2.circle(img, tuple(int(v) for v in pts[idx[-1]]), r, c, -1, cv2.LINE_AA)
        return img
