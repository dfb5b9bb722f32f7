"""Detection backend ``background``: frozen background subtraction for static cameras (no weights)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import cv2
import numpy as np
import pandas as pd

from ..errors import InputError, atomic_path
from ..video import read_frames, video_info
from .base import _check_chunk, _err, _float, _int, _merge_defaults, _table

# --------------------------------------------------------------------------- background backend

#: median of the chi-square distribution with 1 and 3 degrees of freedom (grey / BGR noise model)
_CHI2_MEDIAN = {1: 0.454936, 3: 2.365974}


def _lower_median_u8(stack: np.ndarray, strip: int = 1 << 16) -> np.ndarray:
    """Per-column lower median of a ``(K, N) uint8`` array -> ``(N,) uint8``.

    The ``(K - 1) // 2``-th smallest value (0-based) of each column, found by an
    8-step binary search on the bits of the answer, counting values below the
    candidate frame by frame. Exact, deterministic, and ~5x faster than
    ``np.partition`` on such stacks; works in strips of ``strip`` columns to
    stay in cache.
    """
    k, n = stack.shape
    kth = (k - 1) // 2
    out = np.empty(n, np.uint8)
    below = np.empty(min(strip, n), bool)
    for a in range(0, n, strip):
        blk = stack[:, a:a + strip]
        m = blk.shape[1]
        res = np.zeros(m, np.uint8)
        cnt = np.empty(m, np.uint8)  # K <= 255 is checked by the caller
        t = below[:m]
        for bit in range(7, -1, -1):
            cand = res | np.uint8(1 << bit)
            cnt[:] = 0
            for j in range(k):
                np.less(blk[j], cand, out=t)
                cnt += t
            res = np.where(cnt <= kth, cand, res)
        out[a:a + m] = res
    return out


def _sq_dist(img: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Squared Euclidean colour distance ``(H, W) float32`` (grey levels^2) between two uint8 images."""
    diff = cv2.absdiff(img, bg)
    sq = cv2.multiply(diff, diff, dtype=cv2.CV_32F)
    if sq.ndim == 3:
        sq = cv2.transform(sq, np.ones((1, sq.shape[2]), np.float32))
    return sq


class BackgroundModel(NamedTuple):
    """The frozen per-video model of :class:`BackgroundDetector`.

    ``background``: ``(H, W) uint8`` grey or ``(H, W, 3) uint8`` BGR;
    ``threshold``: ``(H, W) float32`` grey levels^2 (foreground where the
    squared colour distance to ``background`` exceeds it); ``grey``: whether
    frames are modelled in grey; ``target_area``: px, the pixel area of one
    target's blob used to split merged blobs (0 = unknown, no splitting).
    """

    background: np.ndarray
    threshold: np.ndarray
    grey: bool
    target_area: float


def _weighted_median(values: np.ndarray) -> float:
    """Area-weighted median of positive ``values`` (each value weighted by itself); 0.0 when empty.

    The value at which half of the summed area lies in smaller blobs: small
    speckle blobs carry little weight, so it stays at the size of the
    blobs that make up most of the foreground.
    """
    v = np.sort(np.asarray(values, np.float64))
    if len(v) == 0:
        return 0.0
    c = np.cumsum(v)
    return float(v[np.searchsorted(c, 0.5 * c[-1])])


def _chroma(label: np.ndarray, bgr: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """Appearance of each blob: its chromaticity ``(r, g) = (R, G) / (R + G + B)``.

    ``label (P,)`` int blob of each foreground pixel (``0..n-1``), ``bgr (P, 3)``
    its colour, ``weight (P,)`` its colour distance to the background (so the
    blob's core counts more than its edge, where the background shows
    through). Returns ``(n, 2) float32`` (NaN for a blob without weight).
    Chromaticity drops the brightness, which changes with a target's
    orientation and shading, and keeps the hue of its surface, which does not
    (normalised rgb, Gevers & Smeulders 1999, *Pattern Recognit.* 32:453).
    """
    w = weight.astype(np.float64)
    s = np.stack([np.bincount(label, weights=w * bgr[:, k], minlength=n) for k in range(3)], axis=1)
    tot = s.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.stack([s[:, 2] / tot, s[:, 1] / tot], axis=1)
    out[~(tot > 0)] = np.nan
    return out.astype(np.float32)


def _split_pixels(xs: np.ndarray, ys: np.ndarray, k: int) -> np.ndarray:
    """Cluster labels ``(n,) int32`` in ``[0, k)`` of one blob's pixels ``xs, ys`` (``(n,)`` px).

    k-means (``cv2.kmeans``) on the pixel coordinates, started from ``k``
    equal-count bins along the blob's principal axis (deterministic: no
    random initialisation, so a frame gives the same parts in any chunk).
    """
    pts = np.stack([xs, ys], axis=1).astype(np.float32)
    c = pts - pts.mean(axis=0)
    cov = c.T @ c
    w, v = np.linalg.eigh(cov)
    proj = c @ v[:, int(np.argmax(w))]
    order = np.argsort(proj, kind="stable")
    init = np.empty(len(pts), np.int32)
    init[order] = (np.arange(len(pts)) * k // len(pts)).astype(np.int32)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.05)
    _, labels, _ = cv2.kmeans(pts, k, init.reshape(-1, 1).copy(), crit, 1, cv2.KMEANS_USE_INITIAL_LABELS)
    return labels.reshape(-1)


class BackgroundDetector:
    """Frozen background subtraction for static cameras; needs no weights.

    The decision rule is OpenCV MOG2's (a pixel is foreground when its squared
    colour distance to the background exceeds ``var_threshold`` times the
    pixel's noise variance, with the variance clipped to MOG2's
    ``[var_min, var_max]``), but the background model is *frozen*: it is
    estimated once from a fixed sample of the whole video and never updated.

    Why not ``cv2.BackgroundSubtractorMOG2`` with ``learningRate=0``: that is
    not frozen. Its mode re-sorting swaps equal-weight modes on every match
    and a non-matching pixel replaces the weakest mode, so masks depend on
    which frames were applied before (measured on TUD-Campus: a pixel that
    flips on every application of the same frame; chunked vs one-chunk masks
    differing in 1505 px, 4527 px on Pose2Sim cam01). Chunk independence
    needs a model that is a pure function of the priming sample.

    Algorithm, per call of :meth:`detect_chunk`:

    1. **Prime** on ``K = n_prime`` video frames sampled evenly over the
       *whole* video (``round(linspace(0, n_frames - 1, K))``; the same set
       whatever the chunk, independent of ``frame_offset``):
       background ``B`` = per-pixel, per-channel (lower) temporal median;
       noise ``sigma^2`` = per-pixel median over the sample of ``|I_k - B|^2``
       divided by the median of a chi-square with C (channels) degrees of
       freedom (a robust variance: objects present in fewer than half the
       priming frames at a pixel affect neither), clipped to
       ``[var_min, var_max]``. Cached per video, so a process that runs
       several chunks primes once.
    2. **Classify** each chunk frame: foreground where
       ``sum_c (I_c - B_c)^2 > var_threshold * sigma^2``. Every frame's mask
       depends only on that frame and the priming sample, so a video gives
       identical detections as one chunk or many. Correct for static cameras
       and lighting; lighting changes, camera motion or objects that stay
       put for more than half the video (they become background) are not
       handled. Adaptive learning is a later option.
    3. Morphological **open** (``open_px``, removes speckle) then **close**
       (``close_px``, fills holes / joins fragments) with elliptical kernels of
       that diameter in px (0 or 1 = skip).
    4. ``cv2.connectedComponentsWithStats`` (8-connectivity); keep components
       whose pixel area (after morphology) is in ``[min_area, max_area]``
       (``max_area = None``: no upper bound). Box = the component's bounding box,
       ``x1 = x, y1 = y, x2 = x + w, y2 = y + h`` (px, pixel-corner convention).
    5. **confidence** = ``1 - exp(-c / contrast_scale)`` where ``c`` is the mean,
       over the component's pixels, of the Euclidean colour distance (grey
       levels) between the frame and ``B``. A blob at the detection threshold
       of a quiet pixel (``sqrt(16 * 15) = 15.5`` grey levels) scores 0.40 with
       the default scale of 30; 30 grey levels score 0.63; >= 90 score >= 0.95.
       ``class_id`` = 0.

    Parameters (keys of the config's ``detect`` section; defaults in
    :attr:`DEFAULTS`; ``var_threshold`` and ``var_max`` are OpenCV MOG2's
    defaults, ``var_min`` is MOG2's initial variance ``varInit``):

    - ``var_threshold`` (float > 0, 16): squared Mahalanobis distance above
      which a pixel is foreground (MOG2 ``varThreshold``; 16 = 4 sigma).
    - ``var_min`` / ``var_max`` (float > 0, 15 / 75): bounds of the per-pixel
      noise variance, grey levels^2. H.264 removes most sensor noise (the
      estimate is below 4 on most pixels of the shared videos) but leaves
      10-40 grey-level block artefacts around moving objects, which inflate
      boxes; the floor of 15 (MOG2's ``varInit``; MOG2's own ``varMin`` is 4)
      puts the threshold at ~15.5 grey levels and removes most of them (on
      a synthetic crf-18 video, IoU>=0.5 matches went from 48% to 100%).
    - ``n_prime`` (int in [1, 255], 50): number of priming frames (all frames if
      the video is shorter). Priming holds them in memory:
      ``n_prime * H * W * (C + 1)`` bytes (frames + quantised noise; ~417 MB
      for 50 frames of 1088x1920 BGR).
    - ``min_area`` (int >= 1, 20) / ``max_area`` (int or None, None): component
      area bounds in px.
    - ``open_px`` (int >= 0, 3) / ``close_px`` (int >= 0, 5): morphology kernel
      diameters in px.
    - ``grayscale`` (true / false / "auto", "auto"): model grey levels instead of
      BGR. ``"auto"`` uses grey when the first priming frame has (almost) equal
      channels (a greyscale video stored as colour): ~3x faster. The test is
      on the grey distance; the same grey content modelled as BGR counts its
      distance in all three channels, so it is ~1.7x (sqrt 3) more sensitive.
    - ``contrast_scale`` (float > 0, 30.0): mean contrast in grey levels that
      gives confidence ``1 - 1/e`` (0.63).
    - ``split`` (bool, true): split blobs of several touching targets (see
      *Splitting* below).
    - ``target_area`` (number > 0 or None, None): pixel area of one target's
      blob; None = estimated per video from the priming sample.
    - ``split_ratio`` (number > 1, 1.5): a blob is split when its area is at
      least this many target areas.
    - ``max_split`` (int >= 2, 8): most parts one blob is split into; larger
      blobs are left whole.
    - ``fill_moved`` (bool, false): take objects that hardly move out of the
      background (see *Still objects* below). For sessions with few animals
      that rest (a mouse in an arena); not for busy scenes.
    - ``fill_margin_px`` (int >= 0, 15): px; margin around a filled region and
      half the gap between moving parts joined into one region.

    **Splitting** (``split: true``). Targets that touch in one view make one
    foreground blob. The single-target area ``A1`` is ``target_area`` or, by
    default, the median over the priming frames (those with a blob) of each
    frame's area-weighted median (:func:`_weighted_median`) component area
    (within ``[min_area, max_area]``): per frame the blob size that holds
    most foreground pixels (robust to speckle and to a minority of merged
    blobs), then the median over frames (robust to frames where the model
    fails everywhere, e.g. a camera out for a while: one image-sized blob).
    It is estimated once per video (stored with the model), so chunks agree. A kept blob with area ``a >= split_ratio *
    A1`` is split into ``k = max(2, floor(a / A1 + 0.5))`` parts (a blob with
    ``k > max_split`` is not a group of targets but e.g. a camera out or a
    light switched on, and is left whole) by
    k-means on its pixel coordinates (:func:`_split_pixels`); each part
    becomes a detection with the bounding box of its pixels and the
    confidence of its own pixels' contrast. The default ratio 1.5 is the
    midpoint between one target (1) and two touching ones (2); on the
    synthetic default (tuned there) single fish span 0.6-1.33 A1 (5th-95th
    percentile) and two-fish blobs 1.5-2.3 A1. Overlapping targets give parts
    that cover only their visible pixels; side-by-side parallel targets can
    be cut across instead of along (k-means prefers compact parts).

    **Still objects** (``fill_moved: true``). The temporal median absorbs an
    animal that stays (almost) in place for more than half the video, so
    plain background subtraction finds only its moving edges. With this
    option, after the median and noise are estimated, every pixel that is
    foreground (after the ``open_px`` opening) in at least one priming frame
    is marked as *moved*. The moved mask is closed with a disc of diameter
    ``2 fill_margin_px + 1`` and its holes are filled; each connected area
    of the result holding at least ``min_area`` *still* pixels (never moved
    themselves, but enclosed by or bridged between moving edges: the
    resting body) is selected whole (moving edges included, dilated by
    :attr:`FILL_EDGE_PX`), and its background is
    re-estimated from the surroundings by ``cv2.inpaint`` (Telea, radius
    :attr:`FILL_INPAINT_RADIUS`). The animal is then foreground in every
    frame; the noise threshold is kept. The path of a target that swims
    through encloses no still area and is left alone. Costs: an animal
    that rests for most of the video and then leaves shows the inpainted
    (smooth) floor as foreground where it rested; for sessions with a few
    resting animals, not busy scenes. Default off.

    Raises :class:`~mctrack.errors.InputError` (field ``detect.<key>``) on an
    unknown key or a bad value, at construction.
    """

    backend = "background"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "var_threshold": 16.0,
        "var_min": 15.0,
        "var_max": 75.0,
        "n_prime": 50,
        "min_area": 20,
        "max_area": None,
        "open_px": 3,
        "close_px": 5,
        "grayscale": "auto",
        "contrast_scale": 30.0,
        "split": True,
        "target_area": None,
        "split_ratio": 1.5,
        "max_split": 8,
        "fill_moved": False,
        "fill_margin_px": 15,
    }
    #: inpainting radius (px) of ``fill_moved`` (``cv2.inpaint``'s ``inpaintRadius``).
    FILL_INPAINT_RADIUS = 5
    #: px; ``fill_moved`` regions are dilated by a disc of this diameter (the codec's halo around edges).
    FILL_EDGE_PX = 5
    #: gaps between priming frames up to this many frames are decoded sequentially; larger gaps seek.
    SEQUENTIAL_GAP = 16
    #: max channel difference (grey levels) for ``grayscale: auto`` to call a frame grey.
    GREY_TOLERANCE = 3

    def __init__(self, cfg: dict | None = None):
        p = _merge_defaults(cfg, self.backend, self.DEFAULTS)
        p["var_threshold"] = _float(p, "var_threshold", 0.0, lo_open=True)
        p["var_min"] = _float(p, "var_min", 0.0, lo_open=True)
        p["var_max"] = _float(p, "var_max", p["var_min"])
        p["n_prime"] = _int(p, "n_prime", 1, 255)
        p["min_area"] = _int(p, "min_area", 1)
        if p["max_area"] is not None:
            p["max_area"] = _int(p, "max_area", p["min_area"])
        p["open_px"] = _int(p, "open_px", 0)
        p["close_px"] = _int(p, "close_px", 0)
        if p["grayscale"] not in (True, False, "auto"):
            raise _err("grayscale", f"must be true, false or \"auto\", got {p['grayscale']!r}",
                       "set detect.grayscale to true, false or auto")
        p["contrast_scale"] = _float(p, "contrast_scale", 0.0, lo_open=True)
        for key in ("split", "fill_moved"):
            if not isinstance(p[key], (bool, np.bool_)):
                raise _err(key, f"must be true or false, got {p[key]!r}", f"set detect.{key} to true or false")
            p[key] = bool(p[key])
        if p["target_area"] is not None:
            p["target_area"] = _float(p, "target_area", 0.0, lo_open=True)
        p["split_ratio"] = _float(p, "split_ratio", 1.0, lo_open=True)
        p["max_split"] = _int(p, "max_split", 2)
        p["fill_margin_px"] = _int(p, "fill_margin_px", 0)
        self.params = p
        self._open = self._kernel(p["open_px"])
        self._close = self._kernel(p["close_px"])
        self._cache: dict[tuple, BackgroundModel] = {}

    @staticmethod
    def _kernel(d: int) -> np.ndarray | None:
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)) if d > 1 else None

    # -- priming -------------------------------------------------------------

    def prime_indices(self, n_frames: int) -> np.ndarray:
        """Video-frame indices ``(k,) int64`` of the priming sample of a video with ``n_frames`` frames.

        ``k = min(n_prime, n_frames)`` indices evenly spread over ``[0, n_frames - 1]``.
        """
        if n_frames <= 0:
            return np.zeros(0, np.int64)
        k = min(self.params["n_prime"], n_frames)
        return np.unique(np.round(np.linspace(0, n_frames - 1, k)).astype(np.int64))

    def _iter_prime_frames(self, video: Path, n_frames: int):
        idx = self.prime_indices(n_frames)
        if len(idx) == 0:
            return
        gap = int(np.max(np.diff(idx))) if len(idx) > 1 else 1
        if gap <= self.SEQUENTIAL_GAP:
            cap = cv2.VideoCapture(str(video))
            try:
                want = set(idx.tolist())
                for i in range(int(idx[-1]) + 1):
                    if not cap.grab():
                        break
                    if i in want:
                        ok, img = cap.retrieve()
                        if ok:
                            yield img
            finally:
                cap.release()
        else:
            for i in idx.tolist():
                for _, img in read_frames(video, i, i + 1):
                    yield img

    def _to_model(self, img: np.ndarray, grey: bool) -> np.ndarray:
        if grey and img.ndim == 3:
            return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return img

    def _is_grey(self, img: np.ndarray) -> bool:
        if img.ndim == 2 or img.shape[2] == 1:
            return True
        b, g, r = img[..., 0], img[..., 1], img[..., 2]
        tol = self.GREY_TOLERANCE
        return int(cv2.absdiff(b, g).max()) <= tol and int(cv2.absdiff(g, r).max()) <= tol

    def primed_model(self, video: str | os.PathLike) -> BackgroundModel:
        """Return the frozen :class:`BackgroundModel` ``(background, threshold, grey, target_area)`` of ``video``.

        ``background``: ``(H, W) uint8`` grey if ``grey`` else ``(H, W, 3) uint8``
        BGR, the per-pixel temporal median of the priming sample (with
        ``fill_moved``: still objects inpainted out, see the class docstring).
        ``threshold``: ``(H, W) float32``, ``var_threshold * sigma^2`` in grey
        levels^2 (a pixel is foreground when its squared colour distance to
        ``background`` exceeds it). ``grey``: whether frames are modelled in
        grey. ``target_area``: px, the config's ``target_area`` or the
        area-weighted median blob area over the priming frames (0.0 without
        blobs or with ``split: false``).
        Cached per video (path, size, modification time). Raises
        :class:`~mctrack.errors.InputError` if the video is missing, unreadable
        or has no decodable frame.
        """
        video = Path(video)
        key, n = self._video_key(video)
        if key in self._cache:
            return self._cache[key]
        if n <= 0:  # header without a frame count: count by decoding
            cap = cv2.VideoCapture(str(video))
            n = 0
            while cap.grab():
                n += 1
            cap.release()
        p = self.params
        stack = None
        k = 0
        grey = False
        for img in self._iter_prime_frames(video, n):
            if stack is None:
                grey = self._is_grey(img) if p["grayscale"] == "auto" else bool(p["grayscale"])
                first = self._to_model(img, grey)
                stack = np.empty((len(self.prime_indices(n)), *first.shape), np.uint8)
            stack[k] = self._to_model(img, grey)
            k += 1
        if stack is None or k == 0:
            raise InputError(video, None, "no frame could be decoded for background priming",
                             "check the video (re-encode it as H.264 .mp4)")
        stack = stack[:k]
        shape = stack.shape[1:]
        chans = 1 if len(shape) == 2 else shape[2]
        bg = _lower_median_u8(stack.reshape(k, -1)).reshape(shape)
        # robust noise: per-pixel median of the colour distance to bg, quantised to 1/4 grey level
        # (saturating at 63.75, far above sqrt(var_max)).
        npx = shape[0] * shape[1]
        q = np.empty((k, npx), np.uint8)
        for j in range(k):
            d = cv2.sqrt(_sq_dist(stack[j], bg))
            q[j] = np.minimum(np.rint(d * 4.0), 255.0).astype(np.uint8).reshape(-1)
        med = _lower_median_u8(q).reshape(shape[:2]).astype(np.float32) / 4.0
        del q
        var = np.clip(med * med / _CHI2_MEDIAN[chans], p["var_min"], p["var_max"])
        thr = (var * p["var_threshold"]).astype(np.float32)
        if p["fill_moved"]:
            bg = self._fill_moved(stack, bg, thr)
        area = 0.0
        if p["split"]:
            if p["target_area"] is not None:
                area = float(p["target_area"])
            else:
                # per frame the area-weighted median (robust to speckle), then the median over frames
                # (robust to frames where the model fails everywhere: a camera out, a light switched)
                per_frame = [_weighted_median(self._components(self._mask(_sq_dist(stack[j], bg), thr))[2])
                             for j in range(k)]
                per_frame = [a for a in per_frame if a > 0]
                area = float(np.median(per_frame)) if per_frame else 0.0
        self._cache = {key: BackgroundModel(bg, thr, grey, area)}  # keep one video only
        return self._cache[key]

    def _fill_moved(self, stack: np.ndarray, bg: np.ndarray, thr: np.ndarray) -> np.ndarray:
        """Background ``bg`` with the regions of still objects inpainted from their surroundings.

        ``stack``: ``(K, H, W[, 3]) uint8`` priming frames; ``bg`` their median;
        ``thr`` the threshold image. See *Still objects* in the class docstring.
        """
        moved = np.zeros(bg.shape[:2], np.uint8)
        for j in range(len(stack)):
            m = cv2.compare(_sq_dist(stack[j], bg), thr, cv2.CMP_GT)
            if self._open is not None:
                m = cv2.morphologyEx(m, cv2.MORPH_OPEN, self._open)
            moved |= m
        margin = self.params["fill_margin_px"]
        disc = self._kernel(2 * margin + 1)
        closed = cv2.morphologyEx(moved, cv2.MORPH_CLOSE, disc) if disc is not None else moved.copy()
        outside = np.pad(closed, 1)  # fill holes: flood the outside from a corner of a 1 px border
        cv2.floodFill(outside, None, (0, 0), 255)
        enclosed = cv2.bitwise_not(outside[1:-1, 1:-1]) | closed
        # still pixels: enclosed by (or bridged between) moving edges but never foreground themselves
        still = cv2.bitwise_and(enclosed, cv2.bitwise_not(moved))
        # region = each enclosed area (moving edges included) holding >= min_area still pixels
        n, objects = cv2.connectedComponents(enclosed, connectivity=8, ltype=cv2.CV_32S)
        n_still = np.bincount(objects[still > 0], minlength=n)
        sel = n_still >= self.params["min_area"]
        sel[0] = False
        if not sel.any():
            return bg
        region = np.where(sel[objects], 255, 0).astype(np.uint8)
        region = cv2.dilate(region, self._kernel(self.FILL_EDGE_PX))  # codec halo around the edges
        return cv2.inpaint(bg, region, self.FILL_INPAINT_RADIUS, cv2.INPAINT_TELEA)

    @staticmethod
    def _video_key(video: Path) -> tuple[tuple, int]:
        """Cache key (path, size, mtime, frame count) of ``video`` and its header frame count."""
        info = video_info(video)
        st = video.stat()
        return (str(video.resolve()), st.st_size, st.st_mtime_ns, info.n_frames), info.n_frames

    def save_model(self, video: str | os.PathLike, path: str | os.PathLike) -> None:
        """Prime on ``video`` and write the frozen model to ``path`` (``.npz``, atomic).

        The workflow primes once per camera (rule ``background_model``) so that
        the chunk jobs of that camera do not each decode the priming frames again.
        """
        m = self.primed_model(video)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, background=m.background, threshold=m.threshold, grey=np.array(m.grey),
                     target_area=np.array(m.target_area))

    def load_model(self, video: str | os.PathLike, path: str | os.PathLike) -> None:
        """Use the model written by :meth:`save_model` for ``video`` (no priming).

        Raises :class:`~mctrack.errors.InputError` if the file is missing, was
        written by an older version (no ``target_area``) or its image size
        differs from the video's.
        """
        path, video = Path(path), Path(video)
        if not path.exists():
            raise InputError(path, None, "background model not found", "run the background_model rule")
        with np.load(path) as z:
            if "target_area" not in z.files:
                raise InputError(path, "target_area", "missing (model written by an older mctrack)",
                                 "delete the model file so it is primed again")
            m = BackgroundModel(z["background"], z["threshold"], bool(z["grey"]), float(z["target_area"]))
        info = video_info(video)
        if m.background.shape[:2] != (info.height, info.width):
            raise InputError(path, "background", f"size {m.background.shape[1]}x{m.background.shape[0]} differs "
                             f"from the video's {info.width}x{info.height}", "delete the model file so it is primed again")
        self._cache = {self._video_key(video)[0]: m}

    # -- per frame -----------------------------------------------------------

    def _mask(self, d2: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """Foreground mask ``(H, W) uint8`` (0/255) of a squared-distance image, after open and close."""
        mask = cv2.compare(d2, threshold, cv2.CMP_GT)
        if self._open is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        if self._close is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        return mask

    def _components(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Connected components of ``mask`` kept by the area bounds.

        Returns ``(labels, stats, areas, keep)``: ``labels`` ``(H, W) int32``
        (0 = background), ``stats`` ``(n, 5)`` OpenCV stats of labels
        ``1..n``, ``areas`` ``(m,)`` px of the kept ones and ``keep`` ``(n,) bool``.
        """
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        stats = stats[1:]
        area = stats[:, cv2.CC_STAT_AREA]
        keep = area >= self.params["min_area"]
        if self.params["max_area"] is not None:
            keep &= area <= self.params["max_area"]
        return labels, stats, area[keep], keep

    def detect_frame(self, background: np.ndarray, threshold: np.ndarray, image: np.ndarray,
                     target_area: float = 0.0, chroma: bool = False):
        """Detect foreground blobs in one model-space image with the frozen model.

        ``image`` is ``(H, W)`` or ``(H, W, 3) uint8`` (BGR) matching ``background``;
        ``threshold`` ``(H, W) float32`` (see :meth:`primed_model`);
        ``target_area`` px, one target's blob area (0 = do not split). Returns
        ``(boxes, confidence)``: ``(N, 4) float32`` xyxy px and ``(N,) float32``
        in ``[0, 1]``, in component-label (raster) order, the parts of a split
        blob consecutive in their k-means order; with ``chroma=True`` also
        ``(N, 2) float32`` appearance (see :func:`_chroma`; NaN for a grey model).
        """
        d2 = _sq_dist(image, background)
        labels, stats, area, keep = self._components(self._mask(d2, threshold))
        if not keep.any():
            empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
            return (*empty, np.zeros((0, 2), np.float32)) if chroma else empty
        # mean colour distance per component: bincount over the foreground pixels only
        n = len(stats) + 1
        flat = labels.reshape(-1)
        fg = np.flatnonzero(flat)
        dist = np.sqrt(d2.reshape(-1)[fg], dtype=np.float32)
        sums = np.bincount(flat[fg], weights=dist, minlength=n)[1:]
        contrast = sums / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
        cs = self.params["contrast_scale"]
        conf = (1.0 - np.exp(-contrast[keep] / cs)).astype(np.float32)
        s = stats[keep].astype(np.float32)
        x, y = s[:, cv2.CC_STAT_LEFT], s[:, cv2.CC_STAT_TOP]
        boxes = np.stack([x, y, x + s[:, cv2.CC_STAT_WIDTH], y + s[:, cv2.CC_STAT_HEIGHT]], axis=1)
        colour = chroma and image.ndim == 3
        if colour:
            ch = _chroma(flat[fg], image.reshape(-1, 3)[fg], dist, n)[1:][keep]
        elif chroma:
            ch = np.full((len(boxes), 2), np.nan, np.float32)
        if not (self.params["split"] and target_area > 0):
            return (boxes, conf, ch) if chroma else (boxes, conf)
        parts = np.maximum(np.floor(area / target_area + 0.5), 2).astype(int)
        # below split_ratio: one target; above max_split targets: not a group of targets (a camera
        # out, a light switched on: the whole image is one blob), left whole
        parts[(area < self.params["split_ratio"] * target_area) | (parts > self.params["max_split"])] = 1
        if (parts == 1).all():
            return (boxes, conf, ch) if chroma else (boxes, conf)
        # only blobs to split are visited (a few per frame); each is clustered on its own pixels
        out_b, out_c, out_h = [], [], []
        ids = np.flatnonzero(keep) + 1
        d = np.sqrt(d2, dtype=np.float32)
        for j in range(len(ids)):
            if parts[j] == 1:
                out_b.append(boxes[j:j + 1])
                out_c.append(conf[j:j + 1])
                if chroma:
                    out_h.append(ch[j:j + 1])
                continue
            x0, y0, w, h = (int(v) for v in stats[ids[j] - 1, :4])
            ys, xs = np.nonzero(labels[y0:y0 + h, x0:x0 + w] == ids[j])
            lab = _split_pixels(xs, ys, int(parts[j]))
            cnt = np.bincount(lab, minlength=parts[j])
            ok = cnt > 0
            x1 = np.full(parts[j], np.inf)
            y1 = np.full(parts[j], np.inf)
            x2 = np.full(parts[j], -np.inf)
            y2 = np.full(parts[j], -np.inf)
            np.minimum.at(x1, lab, xs)
            np.minimum.at(y1, lab, ys)
            np.maximum.at(x2, lab, xs)
            np.maximum.at(y2, lab, ys)
            c = np.bincount(lab, weights=d[y0 + ys, x0 + xs], minlength=parts[j]) / np.maximum(cnt, 1)
            out_b.append(np.stack([x0 + x1, y0 + y1, x0 + x2 + 1, y0 + y2 + 1], axis=1)[ok].astype(np.float32))
            out_c.append((1.0 - np.exp(-c / cs))[ok].astype(np.float32))
            if colour:
                out_h.append(_chroma(lab, image[y0 + ys, x0 + xs], d[y0 + ys, x0 + xs], int(parts[j]))[ok])
            elif chroma:
                out_h.append(np.full((int(ok.sum()), 2), np.nan, np.float32))
        if chroma:
            return np.concatenate(out_b), np.concatenate(out_c), np.concatenate(out_h)
        return np.concatenate(out_b), np.concatenate(out_c)

    def detect_chunk(self, video: str | os.PathLike, start: int, stop: int, camera_id: str,
                     frame_offset: int = 0) -> pd.DataFrame:
        """Detect foreground blobs in session frames ``start <= f < stop`` of ``video``.

        Returns a DETECTION table (``frame`` = video frame - ``frame_offset``;
        boxes ``(N, 4)`` float32 xyxy px; ``class_id`` 0). Primes the frozen
        background model on the whole video's priming sample first (cached per
        video). Raises :class:`~mctrack.errors.InputError` for a
        missing/unreadable video or a bad chunk.
        """
        _check_chunk(video, start, stop, frame_offset)
        bg, thr, grey, area = self.primed_model(video)
        frames, boxes, confs, classes, chromas = [], [], [], [], []
        for f, img in read_frames(video, start, stop, frame_offset):
            b, c, h = self.detect_frame(bg, thr, self._to_model(img, grey), area, chroma=True)
            frames.append(np.full(len(b), f, np.int64))
            boxes.append(b)
            confs.append(c)
            classes.append(np.zeros(len(b), np.int32))
            chromas.append(h)
        return _table(camera_id, frames, boxes, confs, classes, chromas)
