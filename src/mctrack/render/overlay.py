"""Per-camera overlays: boxes, ids, trails, reprojected 3D points, frame/time, highlight marker.

Drawing uses OpenCV primitives on the (already downscaled) output frame;
box coordinates from the tables (px in the source image, xyxy, top-left
pixel-corner origin, see :mod:`mctrack.tables`) are multiplied by the output
scale. Colours are a function of the global id only (:func:`gid_color`), so a
target has the same colour in every camera and in the mosaic's top view.

Styles
------
- ``frame_status == "detected"``: solid box, 2 px (scaled with the frame).
- any other status (``coasted``, ``interpolated``, ``reprojected``): dashed
  1 px box and the status initial after the label (``c``, ``i``, ``r``).
- Label: ``<track id>`` per camera and ``G<global id>`` (``G?`` when the
  tracklet has no global id).
- Trail: polyline through the centroids of the last ``trail_length`` frames of
  the track.
- Reprojected 3D point: tilted cross in the target's colour; a thin line to the
  observed centroid and the residual in px (from the RESIDUALS table) when
  this camera was used for the point.
- Highlight (``highlight`` ids): the frame is dimmed to :data:`DIM` of its
  brightness except inside highlighted boxes, other boxes are drawn in grey,
  and a filled :data:`MARKER_BGR` disc (black rim) sits on the centre of each
  highlighted box. The magenta hue is reserved for the marker (global id
  colours never use it) so the marker can be found again in the video.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

__all__ = ["CameraOverlay", "prepare_overlay", "draw_overlay", "gid_color", "dashed_segments", "MARKER_BGR",
           "find_marker"]

MARKER_BGR = (255, 0, 255)  # magenta; never a global id colour
DIM = 0.4  # brightness kept outside highlighted boxes
UNASSIGNED_BGR = (170, 170, 170)
_GOLDEN = 0.6180339887498949


def gid_color(gid: int) -> tuple[int, int, int]:
    """Stable BGR colour of global id ``gid`` (``gid < 0``: grey).

    Hues follow the golden-ratio sequence (well spread for consecutive ids),
    restricted to 0°–260° so magenta (300°, the highlight marker) is never used.
    """
    if gid < 0:
        return UNASSIGNED_BGR
    h = ((gid * _GOLDEN) % 1.0) * (260.0 / 360.0)
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


@dataclass
class CameraOverlay:
    """Everything drawn on one camera's frames, as frame-sorted arrays.

    Tracklet rows (N): ``frame (N,) int64``, ``track_id (N,) int64``,
    ``global_id (N,) int64`` (-1 = not associated), ``box (N, 4) float32`` xyxy
    px, ``center (N, 2) float32`` px, ``status (N,) <U1`` (``"d"`` detected,
    else the status initial). Reprojections (M): ``p_frame (M,) int64``,
    ``p_gid (M,) int64``, ``p_uv (M, 2) float64`` px (reprojected 3D point),
    ``p_obs (M, 2) float32`` px (observed centroid, NaN if this camera was not
    used), ``p_res (M,) float32`` px (residual, NaN likewise).
    """

    camera_id: str
    frame: np.ndarray
    track_id: np.ndarray
    global_id: np.ndarray
    box: np.ndarray
    center: np.ndarray
    status: np.ndarray
    p_frame: np.ndarray
    p_gid: np.ndarray
    p_uv: np.ndarray
    p_obs: np.ndarray
    p_res: np.ndarray

    def rows(self, start: int, stop: int) -> slice:
        """Slice of tracklet rows with ``start <= frame < stop``."""
        return slice(*np.searchsorted(self.frame, [start, stop]))

    def point_rows(self, f: int) -> slice:
        """Slice of reprojection rows of frame ``f``."""
        return slice(*np.searchsorted(self.p_frame, [f, f + 1]))

    def visible_frames(self, gid: int) -> np.ndarray:
        """Sorted unique session frames where global id ``gid`` has a box in this camera."""
        return np.unique(self.frame[self.global_id == gid])


def prepare_overlay(camera_id: str, tracklets: pd.DataFrame, association: pd.DataFrame,
                    points: pd.DataFrame | None = None, residuals: pd.DataFrame | None = None,
                    camera=None) -> CameraOverlay:
    """Collect one camera's overlay arrays from the inter-stage tables.

    ``tracklets``: TRACKLET2D (any cameras; rows of ``camera_id`` are used);
    ``association``: ASSOCIATION (``global_id`` per ``(camera_id, track_id)``);
    ``points``: POINTS3D, reprojected with ``camera``
    (:class:`mctrack.calibration.Camera`, ``Camera.project``) when both are
    given; ``residuals``: RESIDUALS (observed centroid and residual per
    ``(frame, global_id, camera_id)``).
    """
    t = tracklets[tracklets["camera_id"] == camera_id]
    a = association[association["camera_id"] == camera_id][["track_id", "global_id"]]
    t = t.merge(a, on="track_id", how="left").sort_values(["frame", "track_id"], kind="stable")
    status = t["frame_status"].astype(str).str[:1].to_numpy(dtype="<U1")
    if points is not None and camera is not None and len(points):
        p = points.sort_values(["frame", "global_id"], kind="stable")
        uv = camera.project(p[["x", "y", "z"]].to_numpy(np.float64))
        pf, pg = p["frame"].to_numpy(np.int64), p["global_id"].to_numpy(np.int64)
        obs = np.full((len(p), 2), np.nan, np.float32)
        res = np.full(len(p), np.nan, np.float32)
        if residuals is not None and len(residuals):
            r = residuals[residuals["camera_id"] == camera_id]
            key = pd.MultiIndex.from_arrays([pf, pg])
            idx = pd.MultiIndex.from_frame(r[["frame", "global_id"]]).get_indexer(key)
            hit = idx >= 0
            obs[hit] = r[["u_obs", "v_obs"]].to_numpy(np.float32)[idx[hit]]
            res[hit] = r["residual_px"].to_numpy(np.float32)[idx[hit]]
        ok = np.isfinite(uv).all(axis=1)
        pf, pg, uv, obs, res = pf[ok], pg[ok], uv[ok], obs[ok], res[ok]
    else:
        pf = pg = np.zeros(0, np.int64)
        uv, obs, res = np.zeros((0, 2)), np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
    return CameraOverlay(
        camera_id, t["frame"].to_numpy(np.int64), t["track_id"].to_numpy(np.int64),
        t["global_id"].fillna(-1).to_numpy(np.int64), t[["x1", "y1", "x2", "y2"]].to_numpy(np.float32),
        t[["cx", "cy"]].to_numpy(np.float32), status, pf, pg, uv, obs, res)


def dashed_segments(box: np.ndarray, dash: float) -> np.ndarray:
    """Dash segments of the outline of ``box`` ``(4,)`` xyxy px: ``(K, 2, 2) int32`` point pairs.

    Dashes of length ``dash`` px alternate with gaps of the same length along each edge.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]])
    segs = []
    for p0, p1 in zip(corners[:-1], corners[1:]):
        length = float(np.hypot(*(p1 - p0)))
        if length < 1e-6:
            continue
        d = (p1 - p0) / length
        s = np.arange(0.0, length, 2 * dash)
        e = np.minimum(s + dash, length)
        segs.append(np.stack([p0 + s[:, None] * d, p0 + e[:, None] * d], axis=1))
    if not segs:
        return np.zeros((0, 2, 2), np.int32)
    return np.round(np.concatenate(segs)).astype(np.int32)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color, thick: int = 1) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def draw_overlay(img: np.ndarray, f: int, ov: CameraOverlay, scale: float = 1.0, fps: float = 0.0,
                 trail_length: int = 15, highlight: frozenset[int] | set[int] = frozenset(),
                 show_reprojection: bool = True) -> np.ndarray:
    """Draw session frame ``f``'s overlay on ``img`` ``(H, W, 3) uint8`` BGR (modified in place, returned).

    ``scale``: output px per source px (``img`` is the source frame resized by
    this factor); ``fps``: session rate (Hz) for the time stamp; ``highlight``:
    global ids to follow with :data:`MARKER_BGR` (others dimmed).
    """
    H, W = img.shape[:2]
    u = max(H, W) / 640.0  # drawing unit: 1 at 640 px
    thick = max(1, int(round(2 * u)))
    fs = 0.4 * max(u, 0.8)
    sl = ov.rows(f, f + 1)
    boxes = ov.box[sl] * scale
    gids, tids, stat = ov.global_id[sl], ov.track_id[sl], ov.status[sl]
    hl = np.isin(gids, list(highlight)) if highlight else np.zeros(len(gids), bool)
    if highlight:
        bright = img.copy()
        cv2.convertScaleAbs(img, dst=img, alpha=DIM)
        for x1, y1, x2, y2 in np.round(boxes[hl]).astype(int):
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, W), min(y2, H)
            img[y1:y2, x1:x2] = bright[y1:y2, x1:x2]

    def color(g: int):
        if highlight and g not in highlight:
            return UNASSIGNED_BGR
        return gid_color(g)

    # trails: centroids of the last trail_length frames, one polyline per track
    if trail_length > 1:
        ts = ov.rows(f - trail_length + 1, f + 1)
        if ts.stop - ts.start > 1:
            order = np.lexsort((ov.frame[ts], ov.track_id[ts]))
            tid = ov.track_id[ts][order]
            pts = np.round(ov.center[ts][order] * scale).astype(np.int32)
            g = ov.global_id[ts][order]
            cuts = np.flatnonzero(np.diff(tid)) + 1
            for idx in np.split(np.arange(len(tid)), cuts):
                if len(idx) > 1:
                    cv2.polylines(img, [pts[idx]], False, color(int(g[idx[-1]])), max(1, thick // 2), cv2.LINE_AA)
    # boxes and labels
    for b, g, t, s, h in zip(boxes, gids, tids, stat, hl):
        c = color(int(g))
        p1, p2 = (int(round(b[0])), int(round(b[1]))), (int(round(b[2])), int(round(b[3])))
        if s == "d":
            cv2.rectangle(img, p1, p2, c, thick * (2 if h else 1), cv2.LINE_AA)
        else:
            cv2.polylines(img, list(dashed_segments(b, max(4.0, 6 * u))), False, c, max(1, thick // 2), cv2.LINE_AA)
        label = f"{t} G{g if g >= 0 else '?'}" + ("" if s == "d" else f" {s}")
        _text(img, label, (p1[0], max(p1[1] - 3, 10)), fs, c)
    # reprojected 3D points with residuals
    if show_reprojection:
        ps = ov.point_rows(f)
        for uv, obs, r, g in zip(ov.p_uv[ps] * scale, ov.p_obs[ps] * scale, ov.p_res[ps], ov.p_gid[ps]):
            c = color(int(g))
            q = (int(round(uv[0])), int(round(uv[1])))
            if np.isfinite(obs).all():
                cv2.line(img, (int(round(obs[0])), int(round(obs[1]))), q, c, 1, cv2.LINE_AA)
            cv2.drawMarker(img, q, c, cv2.MARKER_TILTED_CROSS, int(10 * u), max(1, thick // 2), cv2.LINE_AA)
            if np.isfinite(r):
                _text(img, f"{r:.1f}px", (q[0] + int(6 * u), q[1] + int(12 * u)), fs * 0.8, c)
    # highlight markers on top of everything
    if hl.any():
        rad = max(3, int(round(5 * u)))
        for b in boxes[hl]:
            q = (int(round((b[0] + b[2]) / 2)), int(round((b[1] + b[3]) / 2)))
            cv2.circle(img, q, rad + 1, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(img, q, rad, MARKER_BGR, -1, cv2.LINE_AA)
    # frame number and time
    stamp = f"{ov.camera_id}  frame {f}" + (f"  t {f / fps:.2f} s" if fps > 0 else "")
    _text(img, stamp, (int(6 * u), int(18 * u)), fs * 1.2, (255, 255, 255))
    return img


def find_marker(img: np.ndarray, min_area: int = 4) -> np.ndarray:
    """Centres ``(K, 2) float64`` px of highlight markers found in a decoded BGR frame.

    A marker pixel is strongly magenta (R and B ≥ 160, G ≤ 100, tolerant of
    H.264 chroma blur); connected blobs of at least ``min_area`` px count.
    Dimmed content (≤ :data:`DIM` of full brightness, so ≤ 102) never passes.
    """
    b, g, r = img[..., 0].astype(np.int16), img[..., 1].astype(np.int16), img[..., 2].astype(np.int16)
    mask = ((r >= 160) & (b >= 160) & (g <= 100)).astype(np.uint8)
    n, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return cents[1:][keep]
