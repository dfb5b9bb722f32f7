"""Render settings: the ``render`` config section and the ``preview``/``final`` presets.

``preview`` is for a quick look and for the report: frames downscaled so the
long side is at most ``max_size`` px, every ``frame_step``-th session frame
kept (the documented reduced frame count is ``ceil(n_frames / frame_step)``:
session frames ``f`` with ``f % frame_step == 0``; the stored rate is
``fps / frame_step`` so playback runs at real time), fast x264 settings.
``final`` keeps the source resolution and frame rate with a quality CRF.
Defaults (x264 CRF/preset semantics from the x264 documentation): preview
640 px, every 2nd frame, CRF 28, ``veryfast``; final CRF 18 (visually
lossless), ``medium``. The mosaic's long side is capped by ``mosaic_size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class Preset:
    """Encoder and size settings of one render preset.

    ``max_size``: long side of a per-camera frame in px (``None`` = source size);
    ``frame_step``: keep session frames ``f % frame_step == 0``; ``crf``: x264
    constant rate factor; ``x264_preset``: x264 speed preset; ``mosaic_size``:
    long side of the mosaic in px.
    """

    name: str
    max_size: int | None
    frame_step: int
    crf: int
    x264_preset: str
    mosaic_size: int

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """Even ``(w, h)`` px of a ``width × height`` source after this preset's downscale (never upscaled)."""
        s = 1.0 if self.max_size is None else min(1.0, self.max_size / max(width, height))
        return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)

    def frames(self, start: int, stop: int) -> np.ndarray:
        """``(K,) int64`` session frames of ``[start, stop)`` kept by this preset (``f % frame_step == 0``)."""
        first = -(-start // self.frame_step) * self.frame_step
        return np.arange(first, stop, self.frame_step, dtype=np.int64)

    def n_output_frames(self, n_frames: int) -> int:
        """Frames of a rendered session of ``n_frames`` frames: ``ceil(n_frames / frame_step)``."""
        return math.ceil(n_frames / self.frame_step)


PRESETS = {
    "preview": Preset("preview", max_size=640, frame_step=2, crf=28, x264_preset="veryfast", mosaic_size=1280),
    "final": Preset("final", max_size=None, frame_step=1, crf=18, x264_preset="medium", mosaic_size=1920),
}


@dataclass(frozen=True)
class RenderConfig:
    """The ``render`` config section (see ``workflow/schemas/config.schema.yaml``).

    ``preset``: the :class:`Preset` in use; ``highlight``: global ids followed
    by a marker (others dimmed); ``trail_length``: frames of centroid history
    drawn behind each box; ``clip_padding``: frames added before and after each
    visible stretch of a highlighted target's clip; ``top_view``: add a top-view
    panel of the 3D trajectories to the mosaic (when 3D points exist);
    ``show_reprojection``: draw the 3D point reprojected into each camera with
    its residual.
    """

    preset: Preset = PRESETS["preview"]
    highlight: tuple[int, ...] = ()
    trail_length: int = 15
    clip_padding: int = 15
    top_view: bool = True
    show_reprojection: bool = True

    @classmethod
    def from_dict(cls, d: dict | None) -> "RenderConfig":
        """Build from the config's ``render`` section; preset overrides live under ``render.presets.<name>``.

        Raises :class:`~mctrack.errors.InputError` naming the ``render.*`` field on unknown presets or bad values.
        """
        d = dict(d or {})
        name = d.get("preset", "preview")
        if name not in PRESETS:
            raise InputError("config", "render.preset", f"unknown preset '{name}'", f"use one of {list(PRESETS)}")
        presets = {}
        for pname, base in PRESETS.items():  # check every override section, not only the chosen one
            over = dict((d.get("presets") or {}).get(pname) or {})
            bad = [k for k in over if k not in ("max_size", "frame_step", "crf", "x264_preset", "mosaic_size")]
            if bad:
                raise InputError("config", f"render.presets.{pname}.{bad[0]}", "unknown key",
                                 "use max_size, frame_step, crf, x264_preset, mosaic_size")
            p = replace(base, **over)
            if p.x264_preset not in X264_PRESETS:
                raise InputError("config", f"render.presets.{pname}.x264_preset", f"'{p.x264_preset}' unknown",
                                 f"use one of {list(X264_PRESETS)}")
            if p.frame_step < 1 or not 0 <= p.crf <= 51 or (p.max_size is not None and p.max_size < 16):
                raise InputError("config", f"render.presets.{pname}", "need frame_step >= 1, crf in 0..51, "
                                 "max_size >= 16 px", "fix the values")
            presets[pname] = p
        preset = presets[name]
        hl = tuple(int(g) for g in (d.get("highlight") or []))
        for key in ("trail_length", "clip_padding"):
            if int(d.get(key, 0)) < 0:
                raise InputError("config", f"render.{key}", "negative", "give a number of frames >= 0")
        return cls(preset, hl, int(d.get("trail_length", 15)), int(d.get("clip_padding", 15)),
                   bool(d.get("top_view", True)), bool(d.get("show_reprojection", True)))
