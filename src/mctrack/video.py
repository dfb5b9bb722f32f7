"""Video reading with frame-exact seeking (PyAV), probing, and H.264 writing (PyAV).

Frame numbers: ``video frame`` is the 0-based index of a decoded frame in the
file; ``session frame = video frame - frame_offset`` (camera sheet column
``frame_offset``, default 0), so that frame ``f`` of every camera of a session
shows the same instant.

Seeking is by timestamp: video frame ``i`` of a constant-frame-rate stream has
presentation time ``start_time + i / fps``, so :func:`read_frames` seeks the
demuxer to the last keyframe at or before that time and decodes forward,
numbering every decoded frame from its own timestamp
(``round((pts - start_time) * time_base * fps)``). The cost of reading a chunk
is one group of pictures plus the chunk, whatever its position in the file
(OpenCV's ``CAP_PROP_POS_FRAMES`` is not frame-exact for every codec, and
decoding from frame 0 is quadratic over a long video). Variable-frame-rate
video is not supported (re-encode it at a constant rate).

Truncated or corrupt files are caught twice: :func:`probe_video` (used when
the workflow is planned, cached per file) decodes the first frame, demuxes the
last group of pictures and compares the frames present with the header's
count; :func:`read_frames` raises :class:`~mctrack.errors.InputError` with
the video frame number when decoding stops before a frame the header promises.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import numpy as np

from .errors import InputError, atomic_path

T = TypeVar("T")
REENCODE = "re-encode it, e.g. `ffmpeg -i in.avi -c:v libx264 -crf 18 out.mp4`"


@dataclass(frozen=True)
class VideoInfo:
    """Header facts of a video: ``n_frames``, ``fps`` (Hz), ``width``/``height`` (px).

    ``n_frames`` is the header's frame count (the container index, or
    ``duration * fps`` when the container has none).
    """

    n_frames: int
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class VideoProbe:
    """What :func:`probe_video` found: header facts plus ``decodable`` frames and the ``codec`` name.

    ``decodable``: number of frames present in the file (index of the last
    frame whose packet is present + 1), from demuxing (not decoding) the
    file's last group of pictures.
    """

    n_frames: int
    fps: float
    width: int
    height: int
    decodable: int
    codec: str

    @property
    def info(self) -> VideoInfo:
        """The header facts as a :class:`VideoInfo`."""
        return VideoInfo(self.n_frames, self.fps, self.width, self.height)


def _open(path: str | os.PathLike):
    """Open ``path`` with PyAV; return ``(container, video stream)``; InputError when impossible."""
    import av

    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "video not found", "check the camera sheet's 'video' column")
    if not os.access(path, os.R_OK):
        raise InputError(path, None, "video is not readable (permission denied)", "fix the file's permissions")
    if path.stat().st_size == 0:
        raise InputError(path, None, "video is empty (0 bytes)", "copy the recording again")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"not a readable video ({exc.__class__.__name__}: {exc})",
                         f"check the file is a complete recording, or {REENCODE}") from None
    if not container.streams.video:
        container.close()
        raise InputError(path, None, "file has no video stream", "point the camera sheet at the video file")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(0)


def _header(path, container, stream) -> VideoInfo:
    fps = _rate(stream)
    n = int(stream.frames or 0)
    if n <= 0 and fps:
        if stream.duration is not None and stream.time_base:
            n = int(round(stream.duration * stream.time_base * fps))
        elif container.duration:
            n = int(round(container.duration / 1_000_000 * fps))
    if fps <= 0:
        raise InputError(path, None, "the header has no frame rate", REENCODE)
    return VideoInfo(n, float(fps), int(stream.codec_context.width), int(stream.codec_context.height))


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Read a video's frame count, rate and size from its header (no decoding).

    Raises :class:`~mctrack.errors.InputError` if the file is missing,
    unreadable, empty, or not a video.
    """
    container, stream = _open(path)
    try:
        return _header(path, container, stream)
    finally:
        container.close()


class _Clock:
    """Frame index <-> timestamp of one constant-rate stream."""

    def __init__(self, stream, fps: float):
        self.tb = stream.time_base
        self.start = stream.start_time or 0
        self.rate = Fraction(fps).limit_denominator(100000) if not isinstance(fps, Fraction) else fps

    def index(self, frame) -> int:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            raise ValueError("frame without timestamp")
        return int(round((pts - self.start) * self.tb * self.rate))

    def pts(self, index: int) -> int:
        return int(self.start + Fraction(index) / self.rate / self.tb)


def _decode_from(container, stream, clock: _Clock, first: int):
    """Seek to the keyframe at or before video frame ``first`` and yield ``(index, av frame)`` from there.

    If the demuxer lands after ``first`` (inexact index), seeks again from
    further back (doubling the distance) before decoding.
    """
    import av

    back = 0
    while True:
        target = max(first - back, 0)
        if target > 0 or back:
            container.seek(clock.pts(target), stream=stream, backward=True, any_frame=False)
        gen = container.decode(stream)
        try:
            frame = next(gen)
        except StopIteration:
            return
        except av.FFmpegError:
            if target == 0:
                raise
            frame = None
        if frame is not None and (clock.index(frame) <= first or target == 0):
            yield clock.index(frame), frame
            yield from ((clock.index(f), f) for f in gen)
            return
        back = max(2 * back, 16)


def read_frames(path: str | os.PathLike, start: int, stop: int, frame_offset: int = 0,
                grayscale: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(session_frame, image)`` for session frames ``start <= f < stop``.

    ``image`` is ``(H, W, 3) uint8`` BGR, or ``(H, W) uint8`` if ``grayscale``.
    Frames before the start of the file (negative video index) are skipped;
    iteration stops at the end of the file (the header's frame count). Seeks
    by timestamp (see the module docstring), so chunked reads equal one
    sequential read and cost the same wherever the chunk lies.

    Raises :class:`~mctrack.errors.InputError` naming the video and the video
    frame when decoding fails or stops before a frame the header promises
    (a truncated or corrupt file).
    """
    import av

    container, stream = _open(path)
    try:
        info = _header(path, container, stream)
        clock = _Clock(stream, _rate(stream))
        first = max(start + frame_offset, 0)
        last = stop + frame_offset  # exclusive
        if info.n_frames > 0:
            last = min(last, info.n_frames)
        if first >= last:
            return
        expected = first
        fmt = "gray" if grayscale else "bgr24"
        try:
            for idx, frame in _decode_from(container, stream, clock, first):
                if idx < expected:
                    continue
                if idx >= last:
                    break
                if idx > expected:  # a frame is missing from the stream
                    raise InputError(path, f"video frame {expected}", f"frame {expected} does not decode "
                                     f"(next decodable frame is {idx})", f"the file is damaged; {REENCODE}")
                yield idx - frame_offset, frame.to_ndarray(format=fmt)
                expected = idx + 1
        except av.FFmpegError as exc:
            raise InputError(path, f"video frame {expected}", f"decoding failed ({exc})",
                             f"the file is damaged; {REENCODE}") from None
        if expected < last and info.n_frames > 0:
            raise InputError(path, f"video frame {expected}",
                             f"decoding stopped at frame {expected} but the header promises {info.n_frames} frames "
                             "(truncated file)", "copy the complete recording again, or process only the frames "
                             f"that decode (max_frames: {expected - frame_offset})")
    finally:
        container.close()


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield ``items`` in order while a background thread produces the next ``depth`` of them.

    For decoding frames (:func:`read_frames`) while the caller runs a model on
    the previous ones: PyAV decodes with the GIL released, so decoding fills the
    moments when inference leaves a core idle (pre- and post-processing in
    Python). An exception raised by ``items`` (e.g. the InputError of a
    truncated video) is raised here, at the item where it happened. Leaving the
    loop early (break, exception, ``close()``) stops the thread. ``depth`` >= 1.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((None, x)):
                    return
        except BaseException as exc:  # handed to the consumer
            put((exc, None))
            return
        put((None, done))

    th = threading.Thread(target=produce, name="mctrack-prefetch", daemon=True)
    th.start()
    try:
        while True:
            exc, x = q.get()
            if exc is not None:
                raise exc
            if x is done:
                return
            yield x
    finally:
        stop.set()
        th.join()


def _probe(path: Path) -> VideoProbe:
    import av

    container, stream = _open(path)
    try:
        info = _header(path, container, stream)
        clock = _Clock(stream, _rate(stream))
        try:  # the first frame must decode (catches files that are not video at all)
            first = next(iter(container.decode(stream)), None)
        except av.FFmpegError as exc:
            raise InputError(path, "video frame 0", f"cannot be decoded ({exc})", REENCODE) from None
        if first is None:
            raise InputError(path, "video frame 0", "no frame decodes", f"copy the recording again, or {REENCODE}")
        # the end: demux (no decoding) from the keyframe before the last promised frame; a truncated
        # file runs out of packets early. Damage inside the file is caught while decoding (read_frames).
        last = -1
        for attempt in (max(info.n_frames - 1, 0), 0):
            container.seek(clock.pts(attempt), stream=stream, backward=True, any_frame=False)
            try:
                for packet in container.demux(stream):
                    if packet.pts is not None and packet.size:
                        last = max(last, clock.index(packet))
            except av.FFmpegError:
                pass
            if last >= 0:
                break
        return VideoProbe(info.n_frames, info.fps, info.width, info.height, last + 1,
                          stream.codec_context.name)
    finally:
        container.close()


def probe_video(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> VideoProbe:
    """Header facts plus a cheap check of ``path``: decode the first frame, demux the last group of pictures.

    With ``cache_dir``, the result is cached there as one small JSON file per
    video, keyed by the real path, size and modification time (so a changed
    file is probed again; concurrent planners never write the same file).
    Raises :class:`~mctrack.errors.InputError` for a missing, unreadable,
    empty or undecodable file. A truncated file is *reported* (``decodable <
    n_frames``), not raised: the caller decides (see
    :func:`mctrack.config.plan_sessions`).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "video not found", "check the camera sheet's 'video' column")
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{hashlib.sha1(key.encode()).hexdigest()}.json"
        if cache.is_file():
            try:
                return VideoProbe(**json.loads(cache.read_text())["probe"])
            except (OSError, ValueError, TypeError, KeyError):
                pass
    probe = _probe(path)
    if cache is not None:
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps({"key": key, "probe": asdict(probe)}))
    return probe


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
            image = np.repeat(image[:, :, None], 3, axis=2)
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
