"""Tracklet rows as flat numpy arrays with O(log n) lookup by (tracklet, frame)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError

_NEED = ("camera_id", "track_id", "frame", "x1", "y1", "x2", "y2", "cx", "cy", "frame_status")


@dataclass
class TrackletIndex:
    """All rows of a TRACKLET2D table, sorted by (tracklet, frame).

    Attributes
    ----------
    keys : DataFrame
        One row per tracklet ``k = 0..K-1``: ``camera_id, track_id`` (sorted),
        ``cam`` (int index into ``camera_names``), ``first, last`` (frames of
        the first/last row), ``first_det, last_det`` (first/last detected row;
        -1/-2 when none), ``n_det``, ``end`` (last detected frame, or the last
        coasted row *between* detections: trailing coasts after the last
        detection are the tracker's unconfirmed guesses and are not counted).
    camera_names : list of str
    tk, frame : (N,) int64 tracklet index and frame of each row
    cx, cy, w, h : (N,) float64 px centroid and box size
    detected, coasted : (N,) bool
    source_row : (N,) int64 position of each row in the table it was built from
    appearance : (N, 2) float64 chromaticity ``chroma_r, chroma_g`` of each row
        (NaN where unknown), or None when the table has none
    """

    keys: pd.DataFrame
    camera_names: list[str]
    tk: np.ndarray
    frame: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    w: np.ndarray
    h: np.ndarray
    detected: np.ndarray
    coasted: np.ndarray
    _code: np.ndarray
    _span: int
    source_row: np.ndarray | None = None
    appearance: np.ndarray | None = None

    @classmethod
    def build(cls, tracklets: pd.DataFrame, source: str | None = None) -> "TrackletIndex":
        """Index a TRACKLET2D table.

        Raises :class:`~mctrack.errors.InputError` naming the column for a
        missing column, non-finite centroids of detected rows, negative frames,
        or two rows of one ``(camera_id, track_id, frame)``.
        """
        missing = [c for c in _NEED if c not in tracklets.columns]
        if missing:
            raise InputError(source, f"Tracklet2D column '{missing[0]}'", "missing", "pass a TRACKLET2D table")
        cam_id = tracklets["camera_id"].astype(str).to_numpy()
        track = tracklets["track_id"].to_numpy(np.int64)
        frame = tracklets["frame"].to_numpy(np.int64)
        st = tracklets["frame_status"]
        if isinstance(st.dtype, pd.CategoricalDtype):   # compare the codes, not one string per row (same masks)
            cats = np.asarray(st.cat.categories.astype(str))
            codes = st.cat.codes.to_numpy()
            detected = codes == (np.flatnonzero(cats == "detected")[0] if (cats == "detected").any() else -2)
            coasted = codes == (np.flatnonzero(cats == "coasted")[0] if (cats == "coasted").any() else -2)
        else:
            status = st.astype(str).to_numpy()
            detected, coasted = status == "detected", status == "coasted"
        if len(frame) and frame.min() < 0:
            raise InputError(source, "Tracklet2D column 'frame'", f"negative frame {frame.min()}",
                             "frames are 0-based session frames")
        cxy = tracklets[["cx", "cy"]].to_numpy(np.float64)
        if not np.isfinite(cxy[detected]).all():
            raise InputError(source, "Tracklet2D columns 'cx, cy'", "non-finite centroid in a detected row",
                             "drop or fix rows with NaN boxes")
        keys, tk = _factorize(cam_id, track)
        span = int(frame.max()) + 2 if len(frame) else 1
        code = tk * span + frame
        order = np.argsort(code, kind="stable")
        code = code[order]
        if len(code) > 1 and (np.diff(code) == 0).any():
            i = int(np.flatnonzero(np.diff(code) == 0)[0])
            k = int(tk[order][i])
            raise InputError(source, "Tracklet2D rows",
                             f"camera {keys['camera_id'].iat[k]!r} track {keys['track_id'].iat[k]} has two rows "
                             f"in frame {frame[order][i]}", "pass each tracklet's rows once (no duplicated chunk)")
        tk, frame, detected, coasted = tk[order], frame[order], detected[order], coasted[order]
        box = tracklets[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)[order]
        cxy = cxy[order]
        K = len(keys)
        first = np.full(K, -1, np.int64)
        last = np.full(K, -2, np.int64)
        if len(tk):
            starts = np.r_[0, np.flatnonzero(np.diff(tk)) + 1]
            first[tk[starts]] = frame[starts]
            ends = np.r_[starts[1:] - 1, len(tk) - 1]
            last[tk[ends]] = frame[ends]
        n_det = np.bincount(tk[detected], minlength=K)
        first_det = np.full(K, np.iinfo(np.int64).max)
        np.minimum.at(first_det, tk[detected], frame[detected])
        last_det = np.full(K, -2, np.int64)
        np.maximum.at(last_det, tk[detected], frame[detected])
        first_det[n_det == 0] = -1
        names = sorted(keys["camera_id"].unique().tolist())
        keys = keys.assign(cam=pd.Categorical(keys["camera_id"], categories=names).codes.astype(np.int64),
                           first=first, last=last, first_det=first_det, last_det=last_det, n_det=n_det)
        # alive interval for cannot-links: first row .. last detected row (coasted rows in between included)
        keys["end"] = np.where(n_det > 0, last_det, last)
        app = None
        if {"chroma_r", "chroma_g"} <= set(tracklets.columns):
            app = tracklets[["chroma_r", "chroma_g"]].to_numpy(np.float64)[order]
            if not np.isfinite(app).any():
                app = None
        return cls(keys=keys, camera_names=names, tk=tk, frame=frame, cx=cxy[:, 0], cy=cxy[:, 1],
                   w=box[:, 2] - box[:, 0], h=box[:, 3] - box[:, 1], detected=detected,
                   coasted=coasted, _code=code, _span=span, source_row=order, appearance=app)

    def row_rays(self, cameras: dict) -> tuple[np.ndarray, np.ndarray]:
        """World ray origin and unit direction ``(N, 3)`` of every row's centroid (cached; NaN for uncalibrated)."""
        cache = self.__dict__.get("_rays")
        if cache is None:
            o = np.full((len(self.tk), 3), np.nan)
            d = np.full((len(self.tk), 3), np.nan)
            cam = self.keys["cam"].to_numpy()[self.tk]
            for c, name in enumerate(self.camera_names):
                if name not in cameras:
                    continue
                sel = np.flatnonzero(cam == c)
                oc, dc = cameras[name].rays(np.column_stack([self.cx[sel], self.cy[sel]]))
                o[sel], d[sel] = oc, dc
            cache = self.__dict__["_rays"] = (o, d)
        return cache

    def lookup(self, tk: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Row index of ``(tk, frame)`` pairs (``(M,)`` int64), -1 where the tracklet has no row."""
        q = np.asarray(tk, np.int64) * self._span + np.asarray(frame, np.int64)
        i = np.searchsorted(self._code, q)
        i = np.minimum(i, max(len(self._code) - 1, 0))
        ok = (len(self._code) > 0) & (self._code[i] == q) if len(self._code) else np.zeros(len(q), bool)
        return np.where(ok, i, -1)


def _factorize(cam_id: np.ndarray, track: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Sorted unique ``(camera_id, track_id)`` and the index of each row into it."""
    if len(cam_id) == 0:
        return pd.DataFrame({"camera_id": pd.Series([], dtype=object), "track_id": np.zeros(0, np.int64)}), \
            np.zeros(0, np.int64)
    cam_code, cams = pd.factorize(cam_id, sort=True)
    t0 = int(track.min())
    span = int(track.max()) - t0 + 1
    code = cam_code.astype(np.int64) * span + (track - t0)
    uniq, inv = np.unique(code, return_inverse=True)
    keys = pd.DataFrame({"camera_id": np.asarray(cams, dtype=object)[uniq // span], "track_id": uniq % span + t0})
    return keys, inv.ravel().astype(np.int64)
