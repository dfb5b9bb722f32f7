"""MOTChallenge text files (``gt.txt``, ``det.txt``, tracker results): the one reader/writer pair.

MOTChallenge convention (Milan et al., "MOT16: A Benchmark for Multi-Object
Tracking", arXiv:1603.00831, section 3.3; the TrackEval ``MotChallenge2DBox``
reader): one comma-separated line per box,

    ``frame, id, bb_left, bb_top, bb_width, bb_height, conf[, class[, visibility[, ...]]]``

with **1-based frames** (frame 1 = first decoded frame of the video) and
**1-based pixel** box corners (the top-left image pixel is ``(1, 1)``, as in
the MATLAB devkit). ``det.txt`` has ``id = -1``; MOT15-17 detection files have
world coordinates ``x, y, z`` (``-1``) in columns 8-10.

mctrack tables (:mod:`mctrack.tables`) use **0-based frames** and **0-based
pixel-corner xyxy** boxes (origin at the top-left corner of the top-left
pixel). This module is the only place that converts:

    ``frame = file_frame - 1 - frame_offset``,
    ``x1 = bb_left - 1``, ``y1 = bb_top - 1``, ``x2 = x1 + bb_width``, ``y2 = y1 + bb_height``

and back in :func:`write_mot`. ``frame_offset`` is the camera sheet's
(``session frame = video frame - frame_offset``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, atomic_path

__all__ = ["MOT_FIELDS", "read_mot", "write_mot"]

#: Names of the first 9 MOTChallenge fields (error messages name them).
MOT_FIELDS = ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "class", "visibility")

#: Per kind: (min fields, what the file is called in messages).
_KINDS = {"gt": (6, "ground-truth file (gt.txt)"), "det": (6, "detection file (det.txt)"),
          "result": (6, "tracker result file")}
_MAX_FIELDS = 10


def _fail(path: Path, lineno: int, col: int | None, problem: str, fix: str) -> InputError:
    where = f"line {lineno}" if col is None else f"line {lineno}, field {col + 1} ({MOT_FIELDS[col]})"
    return InputError(path, where, problem, fix)


def _parse_lines(path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse every non-blank line into ``(N, 9) float64`` (missing optional fields filled) and line numbers."""
    min_fields, what = _KINDS[kind]
    fix_fmt = ("write one box per line, no header: frame,id,bb_left,bb_top,bb_width,bb_height,conf[,class"
               "[,visibility]] (MOTChallenge)")
    rows: list[list[float]] = []
    lines: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) < min_fields or len(parts) > _MAX_FIELDS:
                if not rows and any(c.isalpha() for c in line):
                    raise _fail(path, lineno, None, f"looks like a header line ({line[:60]!r}); a MOTChallenge "
                                f"{what} has no header", "delete the header line")
                raise _fail(path, lineno, None, f"{len(parts)} comma-separated fields, expected "
                            f"{min_fields} to {_MAX_FIELDS}", fix_fmt)
            vals = []
            for j, p in enumerate(parts[:9]):
                try:
                    vals.append(float(p))
                except ValueError:
                    if not rows and j == 0:
                        raise _fail(path, lineno, None, f"looks like a header line ({line[:60]!r}); a "
                                    f"MOTChallenge {what} has no header", "delete the header line") from None
                    raise _fail(path, lineno, j, f"not a number: {p!r}", "write numbers only") from None
            rows.append(vals + [1.0, -1.0, -1.0][len(vals) - 6:] if len(vals) < 9 else vals)
            lines.append(lineno)
    return np.asarray(rows, np.float64).reshape(-1, 9), np.asarray(lines, np.int64)


def read_mot(path: str | os.PathLike, kind: str = "gt", frame_offset: int = 0) -> pd.DataFrame:
    """Read a MOTChallenge text file into mctrack conventions (0-based frames, 0-based xyxy px).

    Parameters
    ----------
    path : path
        The file. Blank lines are skipped; there is no header line.
    kind : {"gt", "det", "result"}
        ``"gt"``: ids must be integers, unique within a frame. ``"det"``: ids are
        ignored (``-1`` in MOTChallenge), ``conf`` must be in ``[0, 1]`` (tracker
        scores; DPM-style raw scores must be rescaled first), ``class`` ``-1``
        (MOT15-17 world ``x``) reads as class 0. ``"result"``: like ``"gt"``.
    frame_offset : int
        The camera sheet's offset; ``frame = file frame - 1 - frame_offset``
        (rows may get negative frames; callers drop frames outside their range).

    Returns
    -------
    DataFrame
        Columns ``frame`` (int64, 0-based session frame), ``id`` (int64),
        ``x1, y1, x2, y2`` (float32, 0-based pixel-corner xyxy px), ``conf``
        (float32; in GT 0 marks an ignored box), ``class_id`` (int32; ``-1`` when
        absent, except ``kind="det"``: 0), ``visibility`` (float32, ``-1`` when
        absent), ``line`` (int64, 1-based line in the file), sorted by
        ``(frame, id)`` (``"det"``: by frame, file order kept within a frame).
        Missing optional fields default to ``conf = 1``, ``class = -1``,
        ``visibility = -1``; fields after the 9th are ignored.

    Raises
    ------
    InputError
        Naming the file and ``line N[, field k (name)]`` for a missing file, a
        header line, fewer than 6 or more than 10 fields, a non-numeric value,
        a frame that is not an integer ``>= 1`` (0-based frames are refused),
        a non-integer id, a non-finite box or negative width/height, a
        detection confidence outside ``[0, 1]``, or (gt) an id repeated in a frame.
    """
    path = Path(path)
    if kind not in _KINDS:
        raise InputError(None, "kind", f"unknown MOT file kind {kind!r}", f"use one of {sorted(_KINDS)}")
    if not path.is_file():
        raise InputError(path, None, f"{_KINDS[kind][1]} not found", "check the path")
    a, line_no = _parse_lines(path, kind)
    fr = a[:, 0]
    bad = ~np.isfinite(fr) | (fr != np.round(fr)) | (fr < 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        zero = " (frame 0: the file looks 0-based)" if fr[i] == 0 else ""
        raise _fail(path, int(line_no[i]), 0, f"{fr[i]:g} is not an integer >= 1{zero}",
                    "MOTChallenge frames are 1-based (frame 1 = first decoded video frame): add 1 to every frame")
    ids = a[:, 1]
    bad = ~np.isfinite(ids) | (ids != np.round(ids))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(path, int(line_no[i]), 1, f"{ids[i]!r} is not an integer", "write integer ids (-1 in det.txt)")
    box = a[:, 2:6]
    bad = ~np.isfinite(box).all(1) | (box[:, 2:] < 0).any(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        j = 2 + int(np.flatnonzero(~np.isfinite(box[i]) | (np.arange(4) >= 2) & (box[i] < 0))[0])
        raise _fail(path, int(line_no[i]), j, f"invalid box value {a[i, j]!r}",
                    "use finite px values with bb_width, bb_height >= 0")
    conf = a[:, 6]
    cls = a[:, 7]
    if kind == "det":
        bad = ~np.isfinite(conf) | (conf < 0) | (conf > 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(path, int(line_no[i]), 6, f"confidence {conf[i]:g} is outside [0, 1]",
                        "rescale detector scores to [0, 1] (e.g. a logistic of raw DPM scores)")
        cls = np.where(cls < 0, 0, cls)
    frame = fr.astype(np.int64) - 1 - int(frame_offset)
    ids = ids.astype(np.int64)
    order = np.lexsort((ids, frame)) if kind != "det" else np.argsort(frame, kind="stable")
    frame, ids, a, line_no, conf, cls = frame[order], ids[order], a[order], line_no[order], conf[order], cls[order]
    if kind != "det":
        dup = (np.diff(frame) == 0) & (np.diff(ids) == 0)
        if dup.any():
            k = int(np.flatnonzero(dup)[0]) + 1
            raise _fail(path, int(line_no[k]), 1, f"id {ids[k]} appears twice in frame {int(a[k, 0])}",
                        "keep one box per id and frame")
    x1 = a[:, 2] - 1.0
    y1 = a[:, 3] - 1.0
    return pd.DataFrame({
        "frame": frame, "id": ids,
        "x1": x1.astype(np.float32), "y1": y1.astype(np.float32),
        "x2": (x1 + a[:, 4]).astype(np.float32), "y2": (y1 + a[:, 5]).astype(np.float32),
        "conf": conf.astype(np.float32), "class_id": cls.astype(np.int32),
        "visibility": a[:, 8].astype(np.float32), "line": line_no,
    })


def write_mot(df: pd.DataFrame, path: str | os.PathLike, id_column: str = "id", frame_offset: int = 0,
              conf_column: str | None = "conf", extra_columns: tuple[str, ...] = ()) -> None:
    """Write boxes as a MOTChallenge text file (inverse of :func:`read_mot`), atomically.

    ``df`` has ``frame`` (0-based session frames), ``x1, y1, x2, y2`` (0-based
    pixel-corner xyxy px) and ``id_column`` (use ``"track_id"`` for TRACKLET2D
    rows; a missing column writes ``-1`` as in ``det.txt``). Written per line:
    ``frame + 1 + frame_offset, id, x1 + 1, y1 + 1, x2 - x1, y2 - y1, conf``
    then ``extra_columns`` (e.g. ``("class_id", "visibility")``), sorted by
    ``(frame, id)``; ``conf`` is ``conf_column`` (``1`` when None or absent;
    NaN written as 1). Box values are written with 3 decimals (trailing zeros
    dropped), ``conf`` with 6 significant digits.
    Raises :class:`~mctrack.errors.InputError` on missing box or frame columns.
    """
    need = ["frame", "x1", "y1", "x2", "y2", *extra_columns]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(path, f"column '{missing[0]}'", "missing", f"pass a table with columns {need}")
    frame = df["frame"].to_numpy(np.int64) + 1 + int(frame_offset)
    ids = df[id_column].to_numpy(np.int64) if id_column in df.columns else np.full(len(df), -1, np.int64)
    b = df[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    conf = (df[conf_column].to_numpy(np.float64) if conf_column and conf_column in df.columns
            else np.ones(len(df)))
    conf = np.where(np.isfinite(conf), conf, 1.0)
    order = np.lexsort((ids, frame))
    cols = [frame, ids, b[:, 0] + 1, b[:, 1] + 1, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], conf]
    cols += [df[c].to_numpy() for c in extra_columns]
    out = pd.DataFrame({i: c[order] for i, c in enumerate(cols)})
    for i in (2, 3, 4, 5):
        out[i] = out[i].map(lambda v: f"{v:.3f}".rstrip("0").rstrip("."))
    out[6] = out[6].map(lambda v: f"{v:.6g}")
    with atomic_path(path) as tmp:
        out.to_csv(tmp, header=False, index=False)
