"""Frame-exact seeking by timestamp (PyAV): chunked reads equal one sequential read, on H.264 and MJPEG/AVI."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from test_inputs import h264, mjpeg, truncate

from mctrack.errors import InputError
from mctrack.video import _Clock, _decode_from, _open, prefetch, read_frames, video_info


@pytest.fixture(params=["h264", "mjpeg"])
def video(request, tmp_path):
    if request.param == "h264":  # B-frames, a keyframe every 12 frames, NTSC rate
        return h264(tmp_path / "v.mp4", 150, fps=30000 / 1001, gop=12)
    return mjpeg(tmp_path / "v.avi", 150)


def _opencv_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            return out
        out.append(img)


def test_sequential_read_matches_opencv(video):
    ref = _opencv_frames(video)
    ours = list(read_frames(video, 0, 10_000))
    assert [f for f, _ in ours] == list(range(150)) == list(range(len(ref)))
    assert all(np.array_equal(a, b) for a, (_, b) in zip(ref, ours))


@pytest.mark.parametrize("chunk", [1, 7, 13, 50])
def test_chunked_reads_equal_sequential(video, chunk):
    seq = list(read_frames(video, 0, 150))
    chunked = [fi for s in range(0, 150, chunk) for fi in read_frames(video, s, s + chunk)]
    assert [f for f, _ in chunked] == [f for f, _ in seq]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(seq, chunked))


def test_frame_offset_and_grayscale(video):
    frames = list(read_frames(video, -5, 10, frame_offset=3))
    assert [f for f, _ in frames] == list(range(-3, 10))  # video frames 0..12
    ref = dict(read_frames(video, 0, 150))
    assert np.array_equal(frames[3][1], ref[3])  # session 0 = video 3 = sequential frame 3
    grey = list(read_frames(video, 140, 200, grayscale=True))
    assert [f for f, _ in grey] == list(range(140, 150)) and grey[0][1].shape == (64, 96)


def test_seek_cost_does_not_grow_with_position(video):
    """Reading a chunk decodes at most one group of pictures before it (12 frames here), wherever it lies."""
    container, stream = _open(video)
    try:
        clock = _Clock(stream, video_info(video).fps)
        for first in (5, 70, 140):
            skipped = 0
            for idx, _ in _decode_from(container, stream, clock, first):
                if idx >= first:
                    assert idx == first
                    break
                skipped += 1
            assert skipped < 12 if video.suffix == ".mp4" else skipped == 0
    finally:
        container.close()


def test_prefetched_read_equals_plain_read(video):
    plain = list(read_frames(video, 20, 90))
    ahead = list(prefetch(read_frames(video, 20, 90), depth=3))
    assert [f for f, _ in ahead] == [f for f, _ in plain] == list(range(20, 90))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(plain, ahead))


def test_prefetch_raises_the_decoding_error_after_the_good_frames(tmp_path):
    bad = truncate(h264(tmp_path / "full.mp4", 200), tmp_path / "cut.mp4")
    plain = []
    with pytest.raises(InputError) as e_plain:
        for f, _ in read_frames(bad, 0, 200):
            plain.append(f)
    got = []
    with pytest.raises(InputError) as e_ahead:
        for f, _ in prefetch(read_frames(bad, 0, 200), depth=4):
            got.append(f)
    assert got == plain and 0 < len(got) < 200 and str(e_ahead.value) == str(e_plain.value)


def test_prefetch_stops_its_thread_when_the_loop_ends_early():
    produced = []

    def numbers():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = prefetch(numbers(), depth=2)
    assert [next(it) for _ in range(5)] == list(range(5))
    it.close()
    assert not any(t.name == "mctrack-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 5 + 2 + 2  # at most depth items ahead (+ one in hand when stopped)
