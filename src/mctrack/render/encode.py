"""H.264 encoding, probing and packet-level concatenation of rendered clips (PyAV).

Every rendered file is H.264 in yuv420p inside MP4, which every browser plays.
Clips of one camera (or of the mosaic) rendered in chunk jobs are joined by
:func:`concat_videos`: when all clips were written with the same encoder
settings, their packets are copied into one file with shifted timestamps
(a remux, no re-encoding; each clip starts with an IDR frame because x264
opens every stream with one). Clips that differ (size, rate, codec
parameters) are decoded and re-encoded instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, atomic_path


@dataclass(frozen=True)
class StreamFacts:
    """Facts of a video file's first video stream, read by PyAV.

    ``n_frames``: decoded frame count (``count_frames``) or the container's
    count; ``fps``: average frame rate (Hz); ``codec``: FFmpeg codec name
    (``"h264"``); ``pix_fmt``: e.g. ``"yuv420p"``; ``width``/``height``: px.
    """

    n_frames: int
    fps: float
    codec: str
    pix_fmt: str
    width: int
    height: int


def probe(path: str | os.PathLike, count_frames: bool = True) -> StreamFacts:
    """Read :class:`StreamFacts` of ``path``; with ``count_frames`` every frame is decoded and counted.

    Raises :class:`~mctrack.errors.InputError` when the file is missing or has no video stream.
    """
    import av

    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "video not found", "run the rule that writes it")
    with av.open(str(path)) as c:
        if not c.streams.video:
            raise InputError(path, None, "no video stream", "render it again")
        s = c.streams.video[0]
        n = s.frames
        if count_frames:
            s.thread_type = "AUTO"
            n = sum(1 for _ in c.decode(s))
        return StreamFacts(int(n), float(s.average_rate or 0), s.codec_context.name, s.codec_context.pix_fmt or "",
                           s.codec_context.width, s.codec_context.height)


class H264Writer:
    """Write BGR ``uint8`` frames to an H.264/yuv420p ``.mp4`` with PyAV, atomically.

    Parameters
    ----------
    path : output file; it appears only when the ``with`` block exits without an exception.
    fps : frame rate (Hz) stored in the stream.
    width, height : frame size in px; both must be even (4:2:0 chroma subsampling).
    crf : x264 constant rate factor (0–51, lower = better; 18 ≈ visually lossless,
        23 = x264 default; source: x264 documentation).
    x264_preset : x264 speed preset (``ultrafast`` … ``veryslow``).

    Every frame written must be ``(height, width, 3) uint8`` BGR; other sizes raise ``ValueError``.
    A writer that receives no frame leaves an empty (0-byte) file (a chunk
    holding no frame the preset keeps); :func:`concat_videos` skips such files.
    """

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int, crf: int = 23,
                 x264_preset: str = "veryfast"):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
        self.path = Path(path)
        self.fps, self.width, self.height = fps, width, height
        self.options = {"crf": str(int(crf)), "preset": x264_preset}
        self.n_written = 0

    def __enter__(self) -> "H264Writer":
        import av

        self._atomic = atomic_path(self.path)
        tmp = self._tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = self.options
        return self

    def write(self, image: np.ndarray) -> None:
        """Append one ``(height, width, 3) uint8`` BGR frame."""
        import av

        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, writer expects {self.width}x{self.height}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        self._container.mux(self._stream.encode(frame))
        self.n_written += 1

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and self.n_written:
                self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            if exc_type is None and not self.n_written:  # MP4 cannot hold a video stream without frames
                open(self._tmp, "wb").close()
            self._atomic.__exit__(exc_type, exc, tb)
        return False


def decode_bgr(path: str | os.PathLike):
    """Yield every frame of ``path`` as ``(H, W, 3) uint8`` BGR (PyAV, sequential)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            yield frame.to_ndarray(format="bgr24")


def _stream_key(s) -> tuple:
    cc = s.codec_context
    return (cc.name, cc.width, cc.height, cc.pix_fmt, s.time_base, s.average_rate, bytes(cc.extradata or b""))


def concat_videos(inputs: list[str | os.PathLike], output: str | os.PathLike, crf: int = 23,
                  x264_preset: str = "veryfast") -> str:
    """Join the video streams of ``inputs`` (in order) into ``output``; return ``"remux"`` or ``"reencode"``.

    When every input has the same codec, size, pixel format, time base, rate
    and codec extradata (SPS/PPS), packets are copied with timestamps shifted
    by the duration of the clips before them (no quality loss, no decoding).
    Otherwise the frames are decoded and re-encoded with ``crf``/``x264_preset``
    at the first clip's size (other sizes are resized). Clips without frames
    are skipped. Audio is dropped.
    Raises :class:`~mctrack.errors.InputError` when ``inputs`` is empty or a clip is missing.
    """
    import av

    if not inputs:
        raise InputError(output, None, "nothing to concatenate", "give at least one clip")
    for p in inputs:
        if not Path(p).exists():
            raise InputError(p, None, "clip not found", "run the chunk job that writes it")
    keys, spans, clips = [], [], []
    for p in inputs:  # pass 1: stream parameters and the pts span of every clip (demux only, no decoding)
        if Path(p).stat().st_size == 0:  # written by H264Writer without frames
            continue
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            pts = [(pk.pts, pk.duration or 0) for pk in c.demux(s) if pk.pts is not None]
            if pts:
                keys.append(_stream_key(s))
                spans.append((min(t for t, _ in pts), max(t + d for t, d in pts)))
                clips.append(p)
    if not clips:
        raise InputError(inputs[0], None, "no clip holds a frame", "check the session's frame range and preset")
    inputs = clips
    if all(k == keys[0] for k in keys):
        with atomic_path(output) as tmp, av.open(str(tmp), mode="w") as out:
            with av.open(str(inputs[0])) as c0:
                ostream = out.add_stream_from_template(c0.streams.video[0])
            offset = 0
            for p, (lo, hi) in zip(inputs, spans):
                with av.open(str(p)) as c:
                    s = c.streams.video[0]
                    for pk in c.demux(s):
                        if pk.dts is None:  # demuxer's end-of-stream flush packet
                            continue
                        pk.pts += offset - lo
                        pk.dts += offset - lo
                        pk.stream = ostream
                        out.mux(pk)
                offset += hi - lo
        return "remux"
    with av.open(str(inputs[0])) as c0:
        s0 = c0.streams.video[0]
        w, h, fps = s0.codec_context.width, s0.codec_context.height, float(s0.average_rate)
    with H264Writer(output, fps, w, h, crf, x264_preset) as wr:
        for p in inputs:
            for img in decode_bgr(p):
                wr.write(img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
    return "reencode"
