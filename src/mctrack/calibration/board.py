"""Calibration boards (checkerboard, ChArUco) and their detection in images or videos.

A :class:`Board` knows its corner positions in its own frame (``(N, 3)``
metres, ``z = 0``, corner ``k`` of a checkerboard at ``(k mod nx, k div nx) ·
square``, ChArUco corners as OpenCV's ``CharucoBoard.getChessboardCorners``)
and finds corners in a greyscale image:

- checkerboard: ``cv2.findChessboardCornersSB`` (exhaustive + accuracy flags),
  all ``(nx − 1)·(ny − 1)`` inner corners or nothing; the corner order is
  ambiguous under a 180° turn (:attr:`Board.symmetric`), resolved later by
  multi-camera consistency (:mod:`mctrack.calibration.board_solve`);
- ChArUco: ``cv2.aruco.CharucoDetector``, any subset of corners with ids.

Board sizes count **squares** (anipose's ``board_x``/``board_y`` convention):
FishPy's board with 23×15 inner corners is ``squares = (24, 16)``.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .camera import UNIT_TO_M

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: OpenCV ArUco dictionaries by (marker bits, dictionary size) as in anipose's board.toml
ARUCO_DICTS = {(4, 50): "DICT_4X4_50", (4, 100): "DICT_4X4_100", (4, 250): "DICT_4X4_250", (4, 1000): "DICT_4X4_1000",
               (5, 50): "DICT_5X5_50", (5, 100): "DICT_5X5_100", (5, 250): "DICT_5X5_250", (5, 1000): "DICT_5X5_1000",
               (6, 50): "DICT_6X6_50", (6, 100): "DICT_6X6_100", (6, 250): "DICT_6X6_250", (6, 1000): "DICT_6X6_1000",
               (7, 50): "DICT_7X7_50", (7, 100): "DICT_7X7_100", (7, 250): "DICT_7X7_250", (7, 1000): "DICT_7X7_1000"}


@dataclass(frozen=True)
class Board:
    """A planar calibration board.

    ``kind``: ``"checkerboard"`` or ``"charuco"``; ``squares``: (x, y) square
    counts; ``square_length`` / ``marker_length``: metres; ``dictionary``:
    OpenCV ArUco dictionary name (ChArUco only).
    """

    kind: str
    squares: tuple[int, int]
    square_length: float
    marker_length: float = 0.0
    dictionary: str = "DICT_4X4_50"

    @classmethod
    def from_config(cls, cfg: dict, source: str = "config calibrate.board") -> "Board":
        """Board from the config's ``calibrate.board`` section (or an anipose ``board.toml`` named by its ``file``).

        Keys: ``type`` (checkerboard | charuco), ``squares`` [x, y],
        ``square_length``, ``marker_length``, ``dictionary``, ``unit`` (m | cm | mm).
        Raises InputError naming the field.
        """
        cfg = dict(cfg or {})
        if cfg.get("file"):
            return cls.from_anipose_toml(cfg["file"], cfg.get("unit", "mm"))
        unit = cfg.get("unit", "mm")
        if unit not in UNIT_TO_M:
            raise InputError(source, "unit", f"unknown unit {unit!r}", f"use one of {sorted(UNIT_TO_M)}")
        kind = cfg.get("type", "checkerboard")
        if kind not in ("checkerboard", "charuco"):
            raise InputError(source, "type", f"unknown board type {kind!r}", "use checkerboard or charuco")
        sq = cfg.get("squares")
        if not (isinstance(sq, (list, tuple)) and len(sq) == 2 and all(isinstance(v, int) and v >= 3 for v in sq)):
            raise InputError(source, "squares", f"{sq!r} is not [x, y] square counts >= 3",
                             "count squares, not inner corners (23x15 inner corners = [24, 16])")
        if not cfg.get("square_length", 0) > 0:
            raise InputError(source, "square_length", "missing or not positive", "give the square side in `unit`")
        f = UNIT_TO_M[unit]
        if kind == "charuco" and not 0 < cfg.get("marker_length", 0) < cfg["square_length"]:
            raise InputError(source, "marker_length", "missing or not in (0, square_length)", None)
        dictionary = cfg.get("dictionary", "DICT_4X4_50")
        if kind == "charuco" and not hasattr(cv2.aruco, dictionary):
            raise InputError(source, "dictionary", f"unknown ArUco dictionary {dictionary!r}", "e.g. DICT_4X4_1000")
        return cls(kind, (int(sq[0]), int(sq[1])), cfg["square_length"] * f, cfg.get("marker_length", 0.0) * f,
                   dictionary)

    @classmethod
    def from_anipose_toml(cls, path: str | os.PathLike, unit: str = "mm") -> "Board":
        """Board of an anipose ``board.toml`` (``board_x``, ``board_y``, ``square_length``,
        ``marker_length``, ``marker_bits``, ``dict_size``; lengths in ``unit``). ChArUco when
        ``marker_length`` is present, else checkerboard."""
        try:
            with open(path, "rb") as fh:
                d = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(path, None, f"cannot read board file ({exc})", None) from None
        cfg = {"squares": [d.get("board_x"), d.get("board_y")], "square_length": d.get("square_length", 0),
               "unit": unit, "type": "charuco" if "marker_length" in d else "checkerboard"}
        if "marker_length" in d:
            key = (d.get("marker_bits", 4), d.get("dict_size", 50))
            if key not in ARUCO_DICTS:
                raise InputError(path, "marker_bits/dict_size", f"no ArUco dictionary {key}", None)
            cfg.update(marker_length=d["marker_length"], dictionary=ARUCO_DICTS[key])
        return cls.from_config(cfg, source=str(path))

    @property
    def symmetric(self) -> bool:
        """True when the detected corner order is ambiguous under a 180° turn (checkerboards)."""
        return self.kind == "checkerboard"

    @property
    def inner(self) -> tuple[int, int]:
        """Inner corner counts (x, y)."""
        return self.squares[0] - 1, self.squares[1] - 1

    def _charuco(self):
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(self.squares, self.square_length, self.marker_length, d)

    @property
    def object_points(self) -> np.ndarray:
        """(N, 3) float64 corner positions in the board frame, metres (z = 0)."""
        if self.kind == "charuco":
            return np.asarray(self._charuco().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)
        nx, ny = self.inner
        k = np.arange(nx * ny)
        return np.column_stack([(k % nx) * self.square_length, (k // nx) * self.square_length, np.zeros(k.size)])

    @property
    def flipped_ids(self) -> np.ndarray:
        """(N,) int: id of each corner after a 180° turn of the board (checkerboard order reversed)."""
        n = len(self.object_points)
        return np.arange(n)[::-1].copy()

    @property
    def neighbour_pairs(self) -> np.ndarray:
        """(M, 2) int ids of corners one square apart (to check square lengths)."""
        P = self.object_points[:, :2]
        d = np.linalg.norm(P[:, None] - P[None], axis=2)
        i, j = np.nonzero(np.isclose(d, self.square_length, rtol=1e-6) & (np.arange(len(P))[:, None] < np.arange(len(P))))
        return np.column_stack([i, j])

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Find corners in a ``(H, W) uint8`` image → ``ids (n,) int``, ``uv (n, 2) float64 px`` (n may be 0)."""
        if self.kind == "charuco":
            det = cv2.aruco.CharucoDetector(self._charuco())
            corners, ids, _, _ = det.detectBoard(gray)
            if ids is None or len(ids) < 4:
                return np.zeros(0, int), np.zeros((0, 2))
            return ids.ravel().astype(int), corners.reshape(-1, 2).astype(np.float64)
        flags = cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY
        ok, corners = cv2.findChessboardCornersSB(gray, self.inner, flags=flags)
        if not ok:
            return np.zeros(0, int), np.zeros((0, 2))
        return np.arange(len(corners)), corners.reshape(-1, 2).astype(np.float64)


def _natural_key(p: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(p))]


def board_frames(source: str, step: int = 1):
    """Yield ``(index, (H, W) uint8 grey image)`` of a camera's board footage.

    ``source``: a folder of images, a glob pattern (``dir/*.jpg``) or a video
    file. Images are taken in natural name order (``img2`` before ``img10``);
    index ``i`` of every camera must be the same instant (synchronised
    footage). Videos yield every ``step``-th frame, indexed by frame number.
    Raises InputError when nothing matches.
    """
    files = board_files(source)
    if files is None:
        from ..video import read_frames, video_info

        n = video_info(source).n_frames
        for i, (_, img) in enumerate(read_frames(source, 0, n)):
            if i % step == 0:
                yield i, img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return
    for i, f in enumerate(files):
        img = cv2.imread(f, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise InputError(f, None, "cannot read image", "check the board footage")
        yield i, img


def board_files(source: str) -> list[str] | None:
    """Image files of a board source (folder / glob), natural order; None for a video file.

    Raises InputError when the source matches nothing.
    """
    p = Path(source)
    if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    if p.is_dir():
        files = [str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [f for f in glob.glob(source) if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(source, "column 'board'", "no board images or video found",
                         "give a folder of images, a glob pattern such as dir/*.png, or a video file")
    return sorted(files, key=_natural_key)
