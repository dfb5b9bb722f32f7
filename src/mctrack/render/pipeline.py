"""Render jobs: a camera × chunk overlay clip, a mosaic chunk, a highlighted target's clip.

Frames: session frames ``[start, stop)`` kept by the preset
(:meth:`~mctrack.render.presets.Preset.frames`); every clip written here has
exactly that many frames, in order, so clips of the cameras of one chunk line
up frame by frame and chunk clips concatenate into the session's video
(:func:`~mctrack.render.encode.concat_videos`). A frame the video cannot
supply (before its start after ``frame_offset``) is drawn on black.
"""

from __future__ import annotations

import os
from typing import Iterator

import cv2
import numpy as np
import pandas as pd

from ..errors import InputError
from ..video import read_frames, video_info
from .encode import H264Writer, decode_bgr
from .layout import Mosaic, TopView
from .overlay import CameraOverlay, draw_overlay, prepare_overlay
from .presets import RenderConfig

__all__ = ["camera_frames", "render_camera_clip", "render_mosaic_clip", "visible_segments", "render_highlight_clip",
           "make_top_view", "load_overlays"]


def camera_frames(video: str | os.PathLike, frame_offset: int, frames: np.ndarray, ov: CameraOverlay,
                  cfg: RenderConfig, fps: float, highlight: frozenset[int] | None = None
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(session frame, image)`` for each of ``frames`` (sorted ``(K,) int64``), overlay drawn.

    Decodes ``[frames[0], frames[-1] + 1)`` with :func:`mctrack.video.read_frames`
    (frames between kept ones are decoded and dropped), downscales to the
    preset's output size, draws :func:`~mctrack.render.overlay.draw_overlay`.
    ``highlight`` defaults to ``cfg.highlight``. Images are ``(h, w, 3) uint8`` BGR.
    Raises :class:`~mctrack.errors.InputError` if the video ends before ``frames[-1]``.
    """
    if len(frames) == 0:
        return
    info = video_info(video)
    w, h = cfg.preset.output_size(info.width, info.height)
    scale = w / info.width
    hl = frozenset(cfg.highlight) if highlight is None else highlight
    keep = set(int(f) for f in frames)
    todo = iter(frames)
    nxt = next(todo)

    def out(f: int, img: np.ndarray | None) -> np.ndarray:
        if img is None:
            img = np.zeros((h, w, 3), np.uint8)
        elif img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        return draw_overlay(img, f, ov, scale, fps, cfg.trail_length, hl, cfg.show_reprojection)

    for f, img in read_frames(video, int(frames[0]), int(frames[-1]) + 1, frame_offset):
        if f not in keep:
            continue
        while nxt is not None and nxt < f:  # frame before the start of the file
            yield int(nxt), out(int(nxt), None)
            nxt = next(todo, None)
        if nxt == f:
            yield f, out(f, img)
            nxt = next(todo, None)
    if nxt is not None:
        raise InputError(video, f"session frame {nxt}", "video ends before this session frame",
                         "check the camera sheet's frame_offset and the video")


def render_camera_clip(video: str | os.PathLike, frame_offset: int, start: int, stop: int, ov: CameraOverlay,
                       cfg: RenderConfig, fps: float, output: str | os.PathLike) -> int:
    """Render session frames ``[start, stop)`` of one camera to ``output`` (H.264 MP4); return frames written.

    Output rate is ``fps / frame_step`` Hz; size is the preset's output size.
    """
    frames = cfg.preset.frames(start, stop)
    info = video_info(video)
    w, h = cfg.preset.output_size(info.width, info.height)
    with H264Writer(output, fps / cfg.preset.frame_step, w, h, cfg.preset.crf, cfg.preset.x264_preset) as wr:
        for _, img in camera_frames(video, frame_offset, frames, ov, cfg, fps):
            wr.write(img)
    return wr.n_written


def make_top_view(points: pd.DataFrame, mosaic: Mosaic, cfg: RenderConfig) -> TopView | None:
    """The top-view panel for the mosaic's last tile, or None when disabled or without 3D points."""
    if not cfg.top_view or points is None or len(points) == 0:
        return None
    x, y, w, h = mosaic.rects[-1]
    return TopView(points, (w, h), trail_length=max(2 * cfg.trail_length, 2))


def _mosaic_for(sizes: list[tuple[int, int]], points: pd.DataFrame | None, cfg: RenderConfig):
    extra = int(cfg.top_view and points is not None and len(points) > 0)
    mosaic = Mosaic(sizes, cfg.preset.mosaic_size, n_extra=extra)
    return mosaic, make_top_view(points, mosaic, cfg)


def render_mosaic_clip(clips: list[str | os.PathLike], frames: np.ndarray, points: pd.DataFrame | None,
                       cfg: RenderConfig, fps: float, output: str | os.PathLike) -> int:
    """Tile per-camera overlay ``clips`` (one chunk, same ``frames``) into a mosaic clip; return frames written.

    ``frames``: ``(K,) int64`` session frames of the clips (for the top view).
    Raises :class:`~mctrack.errors.InputError` if a clip's frame count differs from ``len(frames)``.
    """
    from .encode import probe

    if len(frames) == 0:  # a chunk without kept frames: an empty file, skipped when joining
        with H264Writer(output, fps, 2, 2):
            return 0
    facts = [probe(c, count_frames=False) for c in clips]
    mosaic, top = _mosaic_for([(s.width, s.height) for s in facts], points, cfg)
    readers = [decode_bgr(c) for c in clips]
    n = 0
    with H264Writer(output, fps / cfg.preset.frame_step, *mosaic.size, cfg.preset.crf, cfg.preset.x264_preset) as wr:
        for f in frames:
            imgs = [next(r, None) for r in readers]
            if any(i is None for i in imgs):
                bad = clips[[i is None for i in imgs].index(True)]
                raise InputError(bad, None, f"clip has fewer than {len(frames)} frames", "render the chunk again")
            if top is not None:
                imgs.append(top.draw(int(f)))
            wr.write(mosaic.compose(imgs))
            n += 1
    return n


def visible_segments(frames: np.ndarray, padding: int, n_frames: int) -> list[tuple[int, int]]:
    """Merge the session ``frames`` where a target is visible into padded ``[start, stop)`` segments.

    Each frame ``f`` covers ``[f - padding, f + padding + 1)`` clipped to
    ``[0, n_frames)``; overlapping or touching covers merge. Sorted, disjoint.
    """
    f = np.unique(np.asarray(frames, np.int64))
    if len(f) == 0:
        return []
    lo, hi = np.maximum(f - padding, 0), np.minimum(f + padding + 1, n_frames)
    breaks = np.flatnonzero(lo[1:] > hi[:-1]) + 1
    starts, stops = lo[np.r_[0, breaks]], hi[np.r_[breaks - 1, len(f) - 1]]
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def render_highlight_clip(cameras: dict[str, tuple[str, int]], overlays: dict[str, CameraOverlay], gid: int,
                          points: pd.DataFrame | None, cfg: RenderConfig, fps: float, n_frames: int,
                          output: str | os.PathLike) -> list[tuple[int, int]]:
    """Mosaic clip following global id ``gid`` only: its visible frames (any camera) padded by ``cfg.clip_padding``.

    ``cameras``: name → ``(video, frame_offset)``; ``overlays``: name →
    :class:`CameraOverlay`. Frames are the preset's kept frames of the
    segments (see :func:`visible_segments`), rendered from the source videos
    with only ``gid`` highlighted. Returns the segments. Raises
    :class:`~mctrack.errors.InputError` when ``gid`` is never visible.
    """
    vis = np.concatenate([ov.visible_frames(gid) for ov in overlays.values()] or [np.zeros(0, np.int64)])
    segs = visible_segments(vis, cfg.clip_padding, n_frames)
    if not segs:
        raise InputError("config", "render.highlight", f"global id {gid} is never visible",
                         "pick ids from results/{session}/associate/association.parquet")
    names = list(cameras)
    infos = [video_info(cameras[c][0]) for c in names]
    sizes = [cfg.preset.output_size(i.width, i.height) for i in infos]
    mosaic, top = _mosaic_for(sizes, points, cfg)
    hl = frozenset([gid])
    with H264Writer(output, fps / cfg.preset.frame_step, *mosaic.size, cfg.preset.crf, cfg.preset.x264_preset) as wr:
        for a, b in segs:
            frames = cfg.preset.frames(a, b)
            gens = [camera_frames(cameras[c][0], cameras[c][1], frames, overlays[c], cfg, fps, hl) for c in names]
            for f, *pairs in zip(frames, *gens):
                imgs = [img for _, img in pairs]
                if top is not None:
                    imgs.append(top.draw(int(f)))
                wr.write(mosaic.compose(imgs))
    return segs


def load_overlays(plan, tracklet_paths: list, association_path, points_path, residuals_path,
                  cameras: list[str] | None = None, frame_range: tuple[int, int] | None = None,
                  margin: int = 0) -> tuple[dict[str, CameraOverlay], pd.DataFrame]:
    """Read a session's tables and build a :class:`CameraOverlay` per camera; return them and the 3D points.

    ``plan``: :class:`mctrack.config.SessionPlan` (cameras, calibration);
    ``tracklet_paths``: TRACKLET2D parquet files; ``association_path``,
    ``points_path``, ``residuals_path``: ASSOCIATION, POINTS3D, RESIDUALS
    parquet files. ``cameras`` restricts to those names; ``frame_range``
    ``(start, stop)`` keeps rows with ``start - margin <= frame < stop`` (a
    chunk plus the trail history before it).
    """
    from ..config import load_session_cameras
    from ..tables import ASSOCIATION, POINTS3D, RESIDUALS, TRACKLET2D, read_table, read_tables

    names = list(cameras) if cameras is not None else list(plan.cameras)
    tr = read_tables(tracklet_paths, TRACKLET2D)
    pts, res = read_table(points_path, POINTS3D), read_table(residuals_path, RESIDUALS)
    if frame_range is not None:
        a, b = frame_range[0] - margin, frame_range[1]
        tr = tr[(tr["frame"] >= a) & (tr["frame"] < b)]
        pts = pts[(pts["frame"] >= a) & (pts["frame"] < b)]
        res = res[(res["frame"] >= a) & (res["frame"] < b)]
    assoc = read_table(association_path, ASSOCIATION)
    calib = load_session_cameras(plan) if plan.calibrated else {}
    overlays = {c: prepare_overlay(c, tr, assoc, pts, res, calib.get(c)) for c in names}
    return overlays, pts
