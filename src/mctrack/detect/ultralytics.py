"""Detection backend ``ultralytics``: any detector ultralytics loads; its objects never leave this module."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..video import prefetch, read_frames, video_info
from .base import _check_chunk, _err, _float, _int, _is_int, _merge_defaults, _table

log = logging.getLogger("mctrack.detect")

# --------------------------------------------------------------------------- ultralytics backend


def _prepare_ultralytics_env() -> None:
    """Make ultralytics work offline and keep its settings out of ``~/.config``.

    Sets ``YOLO_OFFLINE=1`` and, unless already set, ``YOLO_CONFIG_DIR`` to
    ``<tmp>/mctrack-ultralytics-<uid>``. Must run before ``import ultralytics``
    (it reads both at import time).
    """
    os.environ["YOLO_OFFLINE"] = "1"
    if not os.environ.get("YOLO_CONFIG_DIR"):
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        d = Path(tempfile.gettempdir()) / f"mctrack-ultralytics-{uid}"
        d.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(d)


class _NmsTimeLimit(logging.Handler):
    """Context manager noting ultralytics' "NMS time limit ... exceeded" warning (logger ``ultralytics``).

    ``exceeded`` is True after the block if the warning was logged inside it.
    """

    def __init__(self):
        super().__init__(logging.WARNING)
        self.exceeded = False

    def emit(self, record: logging.LogRecord) -> None:
        if "NMS time limit" in record.getMessage():
            self.exceeded = True

    def __enter__(self) -> "_NmsTimeLimit":
        logging.getLogger("ultralytics").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("ultralytics").removeHandler(self)


def _export_metadata(model: Path) -> dict:
    """Read an exported model's ``metadata.yaml`` (OpenVINO folders etc.); ``{}`` if none."""
    meta = model / "metadata.yaml" if model.is_dir() else model.parent / "metadata.yaml"
    if not meta.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(meta.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # unreadable metadata: let ultralytics decide
        return {}
    return data if isinstance(data, dict) else {}


class UltralyticsDetector:
    """A detector loaded by ultralytics: ``ultralytics.YOLO(model, task="detect")``.

    Works with any model file or folder ultralytics can load: PyTorch ``.pt``
    (YOLOv8/11, RT-DETR, ...), ``.onnx``, OpenVINO ``*_openvino_model/``
    folders, etc. No download is ever attempted (``YOLO_OFFLINE=1``), so
    ``model`` must be an existing local path.

    Parameters (keys of the config's ``detect`` section; defaults in
    :attr:`DEFAULTS`, ``conf``/``iou``/``imgsz``/``max_det`` are ultralytics'
    own predict defaults except ``conf``):

    - ``model`` (path, required): the weights file or exported-model folder;
      relative paths are relative to the working directory.
    - ``classes`` (list of int or None, None): keep only these class indices
      (e.g. ``[0]`` = person for COCO models); None keeps all.
    - ``conf`` (float in [0, 1], 0.1): minimum confidence. Lower than
      ultralytics' 0.25 because ByteTrack-style trackers use low-score boxes.
    - ``iou`` (float in [0, 1], 0.7): NMS IoU threshold.
    - ``imgsz`` (int or [h, w], 640): inference size in px (letterboxed).
    - ``batch`` (int >= 1, 8): frames decoded and passed per ``predict`` call.
      Exports with a fixed batch (the OpenVINO model in ``../shared/models`` was
      exported with batch 1: ``metadata.yaml`` ``batch: 1``, no ``dynamic``)
      run ``min(batch, export batch)`` images per forward pass (read from the
      export's ``metadata.yaml`` and passed to ``predict(batch=...)``; with
      ultralytics 8.4 its AutoBackend would also split the batch itself), so
      any ``batch`` works. On CPU, batch 1 and 8 ran equally fast (~42
      frames/s on 640x480 TUD-Campus with the INT8 OpenVINO model); ``batch``
      only bounds the decoded frames held in memory and the call overhead.
    - ``device`` (str, "cpu"): ultralytics device string ("cpu", "0",
      "cuda:0", "intel:gpu", ...).
    - ``max_det`` (int >= 1, 300): maximum detections per frame.

    Output: DETECTION rows with ``class_id`` = the model's class index and
    ``det_index`` in descending confidence order. Raises
    :class:`~mctrack.errors.InputError` (field ``detect.<key>``) on an unknown
    key, a bad value or a missing model path, at construction (the model itself
    is loaded lazily, on the first :meth:`detect_chunk`).
    """

    backend = "ultralytics"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "model": None,
        "classes": None,
        "conf": 0.1,
        "iou": 0.7,
        "imgsz": 640,
        "batch": 8,
        "device": "cpu",
        "max_det": 300,
    }

    def __init__(self, cfg: dict | None = None):
        p = _merge_defaults(cfg, self.backend, self.DEFAULTS)
        fix_model = ("set detect.model to an existing local weights file or exported-model folder "
                     "(.pt, .onnx, *_openvino_model/); no download is attempted, so a user with internet "
                     "first downloads e.g. yolo11n.pt and passes its path")
        if p["model"] is None or not isinstance(p["model"], (str, os.PathLike)) or str(p["model"]) == "":
            raise _err("model", "is required for backend 'ultralytics'", fix_model)
        model = Path(p["model"]).expanduser()
        if not model.exists():
            raise _err("model", f"model file not found: {str(model)!r} (working directory {os.getcwd()})",
                       fix_model)
        p["model"] = str(model)
        if p["classes"] is not None:
            c = p["classes"]
            if _is_int(c):
                c = [c]
            if not isinstance(c, (list, tuple)) or not c or not all(_is_int(x) and x >= 0 for x in c):
                raise _err("classes", f"must be a non-empty list of class indices >= 0 or null, got {p['classes']!r}",
                           "e.g. detect.classes: [0] for COCO 'person', or null for all classes")
            p["classes"] = [int(x) for x in c]
        p["conf"] = _float(p, "conf", 0.0, 1.0)
        p["iou"] = _float(p, "iou", 0.0, 1.0)
        sz = p["imgsz"]
        if _is_int(sz) and sz > 0:
            p["imgsz"] = int(sz)
        elif isinstance(sz, (list, tuple)) and len(sz) == 2 and all(_is_int(s) and s > 0 for s in sz):
            p["imgsz"] = [int(s) for s in sz]
        else:
            raise _err("imgsz", f"must be a positive integer or [height, width], got {sz!r}",
                       "e.g. detect.imgsz: 640 (a multiple of 32)")
        p["batch"] = _int(p, "batch", 1)
        if not isinstance(p["device"], (str, int)) or isinstance(p["device"], bool):
            raise _err("device", f"must be a device string, got {p['device']!r}",
                       "e.g. detect.device: cpu, 0 or cuda:0")
        p["device"] = str(p["device"])
        p["max_det"] = _int(p, "max_det", 1)
        self.params = p
        meta = _export_metadata(model)
        export_batch = meta.get("batch")
        #: images per forward pass: the export's fixed batch if it has one, else ``batch``
        self.forward_batch = (min(p["batch"], int(export_batch))
                              if _is_int(export_batch) and export_batch > 0 and not meta.get("dynamic")
                              else p["batch"])
        self._yolo = None

    @property
    def model(self):
        """The loaded ``ultralytics.YOLO`` object (loaded on first use; stays inside this backend)."""
        if self._yolo is None:
            _prepare_ultralytics_env()
            from ultralytics import YOLO

            from ..runtime import limit_openvino_threads

            limit_openvino_threads()  # the job's `threads` (mctrack.runtime.set_threads), if set

            try:
                self._yolo = YOLO(self.params["model"], task="detect")
            except Exception as exc:  # corrupt / unsupported file
                raise _err("model", f"ultralytics cannot load {self.params['model']!r}: {exc}",
                           "pass a detection model ultralytics supports (.pt, .onnx, *_openvino_model/)") from exc
        return self._yolo

    def predict(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Run the model on BGR ``(H, W, 3) uint8`` images.

        Returns one ``(boxes, confidence, class_id)`` per image: ``(N, 4)
        float32`` xyxy px in the input image, ``(N,) float32``, ``(N,) int32``.
        If ultralytics' NMS reports its time limit (a busy machine) while a
        forward batch held several images, the images are predicted again one
        at a time, so no image silently comes back without its boxes.
        """
        if not images:
            return []
        with _NmsTimeLimit() as nms:
            results = self._predict(images, self.forward_batch)
        if nms.exceeded and self.forward_batch > 1 and len(images) > 1:
            # ultralytics' NMS stops at its time limit (2 s + 0.05 s per image of the forward batch,
            # ultralytics/utils/nms.py) and leaves the batch's remaining images with no boxes, saying so only
            # in a warning. One image per pass cannot lose anything (the limit is checked after the
            # image's boxes are stored), so the batch is predicted again image by image.
            log.warning("ultralytics NMS hit its time limit in a batch of %d images (machine busy?): "
                        "predicting them again one by one so that no detections are lost", len(images))
            results = self._predict(images, 1)
        out = []
        for r in results:
            bx = r.boxes
            out.append((bx.xyxy.cpu().numpy().astype(np.float32).reshape(-1, 4),
                        bx.conf.cpu().numpy().astype(np.float32).reshape(-1),
                        bx.cls.cpu().numpy().astype(np.int32).reshape(-1)))
        return out

    def _predict(self, images: list[np.ndarray], batch: int) -> list:
        p = self.params
        return self.model.predict(images, conf=p["conf"], iou=p["iou"], imgsz=p["imgsz"], classes=p["classes"],
                                  max_det=p["max_det"], device=p["device"], batch=batch, verbose=False)

    def detect_chunk(self, video: str | os.PathLike, start: int, stop: int, camera_id: str,
                     frame_offset: int = 0) -> pd.DataFrame:
        """Detect objects in session frames ``start <= f < stop`` of ``video``.

        Frames are decoded with :func:`mctrack.video.read_frames` (in a
        background thread, :func:`mctrack.video.prefetch`) and passed to
        the model ``batch`` at a time. Returns a DETECTION table (``frame`` =
        video frame - ``frame_offset``; boxes ``(N, 4)`` float32 xyxy px).
        Raises :class:`~mctrack.errors.InputError` for a missing/unreadable
        video, a bad chunk or an unloadable model.
        """
        _check_chunk(video, start, stop, frame_offset)
        video_info(video)  # clear error for a missing / unreadable video
        frames, boxes, confs, classes = [], [], [], []

        def flush(batch_frames: list[int], batch_imgs: list[np.ndarray]) -> None:
            for f, (b, c, k) in zip(batch_frames, self.predict(batch_imgs)):
                frames.append(np.full(len(b), f, np.int64))
                boxes.append(b)
                confs.append(c)
                classes.append(k)

        bf: list[int] = []
        bi: list[np.ndarray] = []
        for f, img in prefetch(read_frames(video, start, stop, frame_offset)):  # decode while the model runs
            bf.append(f)
            bi.append(img)
            if len(bi) == self.params["batch"]:
                flush(bf, bi)
                bf, bi = [], []
        flush(bf, bi)
        return _table(camera_id, frames, boxes, confs, classes)
