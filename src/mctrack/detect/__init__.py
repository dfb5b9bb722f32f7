"""Detection stage: one camera x one chunk of session frames -> a DETECTION table.

A detector is built from the config's ``detect`` section with
:func:`make_detector` and applied to session frames ``start <= f < stop`` of one
camera's video with :meth:`Detector.detect_chunk`; :func:`run_detect` does both
and writes the table atomically (one parquet file per camera x chunk, so
Snakemake can run chunks in parallel).

Conventions (see :mod:`mctrack.tables` and :mod:`mctrack.video`)
-----------------------------------------------------------------
- ``session frame = video frame - frame_offset``; the output's ``frame`` column
  holds session frames. Frames before the start of the file are skipped; the
  chunk ends early at the end of the file.
- Boxes are ``x1, y1, x2, y2`` float32 pixels (xyxy) in the distorted image as
  decoded, origin at the top-left pixel *corner*: a box covering pixel columns
  ``x .. x+w-1`` has ``x1 = x`` and ``x2 = x + w``.
- ``det_index`` numbers the detections of one frame ``0..n-1`` in the
  backend's order (background: raster order of the component labels;
  ultralytics: descending confidence).
- ``confidence`` is in ``[0, 1]``; ``class_id`` is ``int32`` (background: 0;
  ultralytics: the model's class index, e.g. COCO ``0`` = person).
- Chunks are independent: processing a video as one chunk or as many gives
  identical rows. For ``background`` this is why the background model is
  primed on a fixed frame sample and then frozen. For ``ultralytics`` each
  image's result does not depend on its neighbours when the forward batch is
  fixed (e.g. the batch-1 OpenVINO export: tested); a dynamic-batch model
  (``.pt``) run with ``batch > 1`` may differ in the last float bits between
  batch compositions, which can flip a detection sitting exactly on ``conf``.

Backends
--------
``background``  frozen background subtraction for static cameras (temporal
                median background, MOG2's per-pixel noise test); no weights.
                See :class:`BackgroundDetector`.
``ultralytics`` any detector ultralytics loads (``.pt``, ``.onnx``, an
                OpenVINO ``*_openvino_model/`` folder, ...). See
                :class:`UltralyticsDetector`.
``precomputed`` detections from files: each camera's MOTChallenge
                ``det.txt`` named in the camera sheet's ``detections``
                column (DeepLabCut / SLEAP / idtracker exports, MOT public
                detections). See :class:`PrecomputedDetector`.

New backends are added by writing a class with a ``DEFAULTS`` dict, a
``__init__(self, cfg: dict)`` that validates ``cfg`` and a ``detect_chunk``
method (one module per backend in this package), and registering it in
:data:`BACKENDS`.
"""

from __future__ import annotations

import os

import pandas as pd

from .. import tables
from ..errors import InputError
from .background import BackgroundDetector
from .base import Detector, _err
from .precomputed import PrecomputedDetector, validate_det_file
from .ultralytics import UltralyticsDetector

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "BackgroundDetector", "Detector", "PrecomputedDetector",
           "UltralyticsDetector", "make_detector", "run_detect", "validate_det_file"]

DEFAULT_BACKEND = "background"

# --------------------------------------------------------------------------- registry and entry points

#: backend name -> class; each class takes the ``detect`` config section and has ``DEFAULTS``.
BACKENDS: dict[str, type] = {
    "background": BackgroundDetector,
    "ultralytics": UltralyticsDetector,
    "precomputed": PrecomputedDetector,
}


def make_detector(cfg: dict | None) -> Detector:
    """Build the detector described by the config's ``detect`` section.

    ``cfg["backend"]`` picks a class from :data:`BACKENDS` (default
    ``"background"``); the other keys are that backend's options (see
    :class:`BackgroundDetector` and :class:`UltralyticsDetector` for keys and
    defaults). Everything is validated here, before any video is read.
    Raises :class:`~mctrack.errors.InputError` with field ``detect.<key>`` for
    an unknown backend, an unknown key, a bad value or a missing model file.
    """
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise InputError(None, "detect", f"must be a mapping of options, got {type(cfg).__name__}",
                         "write the config's detect section as key: value pairs")
    backend = cfg.get("backend", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise _err("backend", f"unknown backend {backend!r}", f"use one of {sorted(BACKENDS)}")
    return BACKENDS[backend](cfg)


def run_detect(cfg: dict | None, video: str | os.PathLike, start: int, stop: int, camera_id: str,
               frame_offset: int, out_path: str | os.PathLike,
               model_path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Detect in one camera x chunk and write the DETECTION table to ``out_path`` (parquet, atomic).

    Arguments as for :func:`make_detector` and :meth:`Detector.detect_chunk`;
    ``model_path``: a background model written by
    :meth:`BackgroundDetector.save_model` for this video (background backend only).
    The parquet file's metadata records the backend, camera, video and chunk.
    Returns the table written. Raises :class:`~mctrack.errors.InputError` on
    bad config or input, before writing anything.
    """
    det = make_detector(cfg)
    if model_path:
        det.load_model(video, model_path)
    df = det.detect_chunk(video, start, stop, camera_id, frame_offset)
    tables.write_table(df, tables.DETECTION, out_path, backend=det.backend, camera_id=str(camera_id),
                       video=str(video), start=str(start), stop=str(stop), frame_offset=str(frame_offset))
    return df
