"""Rendered videos: per-camera overlays, a multi-camera mosaic, highlighted targets, preview/final presets.

Modules: :mod:`.presets` (config section and presets), :mod:`.overlay`
(drawing one camera's frame), :mod:`.layout` (mosaic grid, top-view panel),
:mod:`.pipeline` (camera × chunk clips, mosaic chunks, highlight clips),
:mod:`.encode` (H.264 writer, probing, concatenation by remux).
"""

from .encode import H264Writer, concat_videos, decode_bgr, probe
from .layout import Mosaic, TopView, choose_grid
from .overlay import MARKER_BGR, CameraOverlay, draw_overlay, find_marker, gid_color, prepare_overlay
from .pipeline import load_overlays, render_camera_clip, render_highlight_clip, render_mosaic_clip, visible_segments
from .presets import PRESETS, Preset, RenderConfig

__all__ = ["H264Writer", "concat_videos", "decode_bgr", "probe", "Mosaic", "TopView", "choose_grid", "MARKER_BGR",
           "CameraOverlay", "draw_overlay", "find_marker", "gid_color", "prepare_overlay", "load_overlays", "render_camera_clip",
           "render_highlight_clip", "render_mosaic_clip", "visible_segments", "PRESETS", "Preset", "RenderConfig"]
