"""Appearance (ReID) embeddings of detections with an ONNX model run by onnxruntime.

Used when ``track_2d.reid`` names a model such as ``osnet_x0_25_msmt17.onnx``
(OSNet x0.25 trained on MSMT17; Zhou et al., ICCV 2019, as exported by
boxmot / torchreid). Preprocessing follows torchreid's defaults for these
models: crop the box (clipped to the image), resize to 128 x 256 px (w x h,
bilinear), BGR -> RGB, scale to [0, 1], normalise with the ImageNet mean
``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``, NCHW float32.
The output rows are L2-normalised, so the cosine distance of two embeddings
is ``1 - a . b``.

Determinism: crops are run in batches of exactly ``batch`` images (the last
batch is zero-padded), so an embedding does not depend on which other crops
share its batch and a chunked run gives the same embeddings as an unchunked one.
The inference session is created lazily and is never pickled
(:meth:`ReIDEmbedder.__getstate__` drops it).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["ReIDEmbedder", "embed_detections"]

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


class ReIDEmbedder:
    """ONNX ReID model: ``embed(image, boxes) -> (N, D) float32`` unit-norm embeddings.

    Parameters
    ----------
    model : path
        ONNX file with one input ``(batch, 3, H, W)`` (H, W read from the model,
        256 x 128 for OSNet) and one output ``(batch, D)``.
    batch : int
        Crops per inference call (fixed; padded), default 16.

    Raises :class:`~mctrack.errors.InputError` (field ``track_2d.reid``) when the
    file is missing, ``onnxruntime`` is not installed or the model cannot be loaded.
    """

    def __init__(self, model: str | os.PathLike, batch: int = 16):
        self.model = str(model)
        self.batch = int(batch)
        if not Path(self.model).is_file():
            raise InputError(None, "track_2d.reid", f"ReID model {self.model!r} not found",
                             "set track_2d.reid to an existing .onnx file or null")
        self._session = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_session"] = None  # never pickle an inference session
        return state

    @property
    def session(self):
        """The onnxruntime InferenceSession (created on first use, single-threaded for determinism)."""
        if self._session is None:
            try:
                import onnxruntime as ort
            except ImportError:
                raise InputError(None, "track_2d.reid", "onnxruntime is not installed",
                                 "pip install onnxruntime, or set track_2d.reid: null") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            try:
                self._session = ort.InferenceSession(self.model, opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - any load failure is a bad model file
                raise InputError(self.model, "track_2d.reid", f"onnxruntime cannot load the model ({e})",
                                 "pass an ONNX ReID model such as osnet_x0_25_msmt17.onnx") from None
        return self._session

    def _input_hw(self) -> tuple[int, int]:
        shape = self.session.get_inputs()[0].shape
        h, w = shape[2], shape[3]
        return (int(h) if isinstance(h, int) else 256), (int(w) if isinstance(w, int) else 128)

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embeddings of ``boxes (N, 4)`` xyxy px in one BGR ``(H, W, 3) uint8`` image -> ``(N, D) float32``.

        Boxes are rounded outwards to whole pixels and clipped to the image; a
        box with no pixel inside the image gets a zero embedding.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        hh, ww = self._input_hw()
        n = len(boxes)
        crops = np.zeros((n, 3, hh, ww), np.float32)
        H, W = image.shape[:2]
        x1 = np.clip(np.floor(boxes[:, 0]), 0, W).astype(int)
        y1 = np.clip(np.floor(boxes[:, 1]), 0, H).astype(int)
        x2 = np.clip(np.ceil(boxes[:, 2]), 0, W).astype(int)
        y2 = np.clip(np.ceil(boxes[:, 3]), 0, H).astype(int)
        valid = (x2 > x1) & (y2 > y1)
        for i in np.flatnonzero(valid):
            c = cv2.resize(image[y1[i]:y2[i], x1[i]:x2[i]], (ww, hh), interpolation=cv2.INTER_LINEAR)
            c = (c[:, :, ::-1].astype(np.float32) / 255.0 - _MEAN) / _STD
            crops[i] = c.transpose(2, 0, 1)
        sess = self.session
        name = sess.get_inputs()[0].name
        out = []
        for a in range(0, n, self.batch):
            blk = crops[a:a + self.batch]
            m = len(blk)
            if m < self.batch:
                blk = np.concatenate([blk, np.zeros((self.batch - m, 3, hh, ww), np.float32)])
            out.append(np.asarray(sess.run(None, {name: blk})[0], np.float32)[:m])
        if not out:
            return np.zeros((0, 0), np.float32)
        e = np.concatenate(out)
        e /= np.clip(np.linalg.norm(e, axis=1, keepdims=True), 1e-12, None)
        e[~valid] = 0.0
        return e


def embed_detections(embedder: ReIDEmbedder, video: str | os.PathLike, detections: pd.DataFrame, start: int,
                     stop: int, frame_offset: int = 0) -> pd.DataFrame:
    """Embeddings of every DETECTION row of session frames ``[start, stop)`` of ``video``.

    Returns a DataFrame ``frame (int64), det_index (int32), e0..e{D-1} (float32)``
    sorted by ``(frame, det_index)`` (empty with only the two key columns when
    there are no detections). Frames are decoded with
    :func:`mctrack.video.read_frames` (``session frame = video frame - frame_offset``).
    """
    from ..video import read_frames

    d = detections[(detections["frame"] >= start) & (detections["frame"] < stop)]
    d = d.sort_values(["frame", "det_index"], kind="stable")
    keys, embs = [], []
    if len(d):
        by_frame = {int(f): g for f, g in d.groupby("frame", sort=True)}
        for f, img in read_frames(video, start, stop, frame_offset):
            g = by_frame.get(int(f))
            if g is None:
                continue
            embs.append(embedder.embed(img, g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)))
            keys.append(g[["frame", "det_index"]])
    if not embs:
        return pd.DataFrame({"frame": np.zeros(0, np.int64), "det_index": np.zeros(0, np.int32)})
    k = pd.concat(keys, ignore_index=True)
    e = np.concatenate(embs)
    out = pd.DataFrame(e, columns=[f"e{i}" for i in range(e.shape[1])])
    out.insert(0, "det_index", k["det_index"].to_numpy(np.int32))
    out.insert(0, "frame", k["frame"].to_numpy(np.int64))
    return out
