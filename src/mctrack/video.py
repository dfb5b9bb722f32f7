"""Video reading (OpenCV, the fastest decoder here) and H.264 writing (PyAV).

Frame numbers: ``video frame`` is the 0-based index of a decoded frame in the
file; ``session frame = video frame - frame_offset`` (camera sheet column
``frame_offset``, default 0), so that frame ``f`` of every camera of a session
shows the same instant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import InputError, atomic_path


@dataclass(frozen=True)
class VideoInfo:
    """Header facts of a video: ``n_frames``, ``fps`` (Hz), ``width``/``height`` (px)."""

    n_frames: int
    fps: float
    width: int
    height: int


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Read a video's frame count, rate and size from its header (no decoding).

    Raises :class:`~mctrack.errors.InputError` if the file is missing or
    OpenCV cannot open it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "video not found", "check the camera sheet's 'video' column")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(path, None, "OpenCV cannot open this video", "re-encode it (e.g. H.264 in .mp4)")
        return VideoInfo(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS)),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def read_frames(path: str | os.PathLike, start: int, stop: int, frame_offset: int = 0,
                grayscale: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(session_frame, image)`` for session frames ``start <= f < stop``.

    ``image`` is ``(H, W, 3) uint8`` BGR, or ``(H, W) uint8`` if ``grayscale``.
    Frames before the start of the file (negative video index) are skipped;
    iteration stops early at the end of the file. Seeking decodes forward from
    the frame before ``start`` so that chunked reads equal one sequential read.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(path, None, "OpenCV cannot open this video", "re-encode it (e.g. H.264 in .mp4)")
    try:
        first = max(start + frame_offset, 0)
        if first > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, first)
            pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
            if pos != first:  # inexact seek: fall back to decoding from the start
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                for _ in range(first):
                    if not cap.grab():
                        return
        for vf in range(first, stop + frame_offset):
            ok, img = cap.read()
            if not ok:
                return
            if grayscale and img.ndim == 3:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            yield vf - frame_offset, img
    finally:
        cap.release()


class VideoWriter:
    """Write BGR ``uint8`` frames to an H.264 ``.mp4`` with PyAV, atomically.

    OpenCV cannot encode H.264 on many machines (no ``avc1``); PyAV ships
    libx264. ``crf`` is x264's constant rate factor (lower = better; 18 is
    visually lossless). Use as a context manager; the file appears at ``path``
    only when the block exits without an exception.
    """

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int, crf: int = 18):
        self.path = Path(path)
        self.fps, self.width, self.height, self.crf = fps, width, height, crf

    def __enter__(self) -> "VideoWriter":
        from fractions import Fraction

        import av

        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), mode="w")
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        return self

    def write(self, image: np.ndarray) -> None:
        """Append one ``(H, W, 3) uint8`` BGR (or ``(H, W)`` grey) frame."""
        import av

        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._atomic.__exit__(exc_type, exc, tb)
        return False
