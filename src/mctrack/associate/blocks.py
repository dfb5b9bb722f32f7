"""Association of a session in blocks of frames, with memory bounded by a block (``associate.method: frames``).

:func:`associate_session` holds the whole session's rows at once. For long
sessions :class:`BlockAssociation` does the same work — per-frame 3D tracking
(:class:`~.frames.FrameTracker`), cutting tracklets into pieces of one 3D
track (:func:`~.frames.tracklet_pieces`), stitching of 3D tracks across gaps
and reprojected rows (:mod:`.refine`) — from blocks of consecutive frames
(e.g. one chunk of every camera), reading each block several times and
holding one block's rows at a time plus per-tracklet and per-piece state:

1. track every block (tracker state carried); each block's raw track per row
   is spilled to a temporary ``.npy`` file;
2. the run-length encoding of each tracklet's track sequence (tiny) is
   smoothed exactly as :func:`~.frames.tracklet_pieces` does;
3. every row gets its piece; per-piece counts, support and frame ranges are
   accumulated;
4. the 3D points of every ``(frame, group)`` (O(frames × targets), the size
   of the 3D output) are solved per block; stitching runs on them;
5. :meth:`BlockAssociation.tracklets` yields each block's refined TRACKLET2D
   rows (pieces' track ids, reprojected rows) for the caller to write.

The association and refined rows are identical to :func:`associate_session`
on the concatenated blocks (rows come block by block, sorted by
``camera_id, track_id, frame`` within a block). Other methods, or fewer than
2 calibrated cameras, fall back to :func:`associate_session` on the
concatenated blocks (memory then grows with the session).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..calibration import Camera
from ..errors import InputError
from ..tables import ROW_GROUP_ROWS, TRACKLET2D, TableSpec
from .config import AssociationConfig
from .data import TrackletIndex
from .encounters import (
    appearance_means,
    appearance_sums,
    cut_plan,
    fragments_of,
    link_plan,
    plan_key_span,
    points_from_rows,
    relinked,
)
from .frames import (
    _DEV_BINS,
    FrameTracker,
    _release_conflicts,
    appearance_histogram,
    appearance_stats,
    sigma_from_histogram,
)
from .refine import _segment, group_points, reprojected_rows, stitch_groups

log = logging.getLogger("mctrack.associate")


def _has_appearance(tr: pd.DataFrame) -> bool:
    """Whether :meth:`TrackletIndex.build` of ``tr`` has appearance (a finite ``chroma_r`` or ``chroma_g``)."""
    if not {"chroma_r", "chroma_g"} <= set(tr.columns):
        return False
    return bool(np.isfinite(tr["chroma_r"].to_numpy(np.float64)).any() or
                np.isfinite(tr["chroma_g"].to_numpy(np.float64)).any())


def _spill(folder: Path, b: int, **arrays: np.ndarray) -> None:
    """Write block ``b``'s arrays, one ``.npy`` file each (no zip archive: no CRC on writing and reading)."""
    for name, a in arrays.items():
        np.save(folder / f"{b}.{name}.npy", a)


class _Spilled(dict):
    """The arrays :func:`_spill` wrote for block ``b``, each read on first access."""

    def __init__(self, folder: Path, b: int):
        super().__init__()
        self.folder, self.b = folder, b

    def __missing__(self, name: str) -> np.ndarray:
        a = self[name] = np.load(self.folder / f"{self.b}.{name}.npy")
        return a


class _Keys:
    """Stand-in for a TrackletIndex where only ``keys`` is read (stitching)."""

    def __init__(self, keys: pd.DataFrame):
        self.keys = keys


class BlockAssociation:
    """Associate a session given as blocks of consecutive frames (see module docstring).

    Parameters
    ----------
    blocks : zero-argument callable returning a fresh iterable of TRACKLET2D
        DataFrames, one per block, in increasing, non-overlapping frame
        ranges (every camera's rows of those frames); it is called once per
        pass (twice; four times when the rows carry appearance), so it should read the blocks from disk or
        generate them, not hold them all.
    cameras : calibrated cameras keyed by ``camera_id`` (≥ 2 needed; rows of
        other cameras are passed through, one global id per tracklet).
    cfg : :class:`AssociationConfig` (``method`` must be ``"frames"``).
    tmpdir : where the per-block spill files go (default: a temporary folder).

    Attributes
    ----------
    association : ASSOCIATION table (as :func:`associate_session`).
    evidence : empty PAIR_EVIDENCE table (the frames method scores no pairs).
    timings : CPU seconds (``time.process_time``) of each pass, by name.

    Raises
    ------
    InputError
        A block's frames are not after the previous block's (blocks out of
        order or overlapping); bad TRACKLET2D rows (as :class:`TrackletIndex`).
    ValueError
        ``cfg.method`` is not ``"frames"``, or fewer than 2 calibrated cameras.
    """

    def __init__(self, blocks: Callable[[], Iterable[pd.DataFrame]], cameras: dict[str, Camera],
                 cfg: AssociationConfig | None = None, tmpdir: str | Path | None = None):
        cfg = cfg or AssociationConfig()
        if cfg.method != "frames":
            raise ValueError("BlockAssociation needs associate.method: frames")
        self.blocks, self.cfg = blocks, cfg
        self.names = sorted(cameras)
        if len(self.names) < 2:
            raise ValueError("BlockAssociation needs >= 2 calibrated cameras")
        self.cameras = cameras
        self.cams = [cameras[n] for n in self.names]
        self._tmp = tempfile.TemporaryDirectory(dir=tmpdir, prefix="mctrack-blocks-")
        self._dir = Path(self._tmp.name)
        self._key_of: dict[tuple[str, int], int] = {}
        self._key_cam: list[str] = []
        self._key_tid: list[int] = []
        self.app_sigma = None
        self.timings: dict[str, float] = {}   # CPU seconds (process time) of each pass, for benchmarks
        clock = time.process_time
        t0 = clock()
        # optimistic: track without appearance, which is exact unless some block has appearance; the first
        # such block stops the pass, and the appearance spread is measured (its own two passes) before
        # tracking again from a clean state. Rows without appearance (most detectors) thus cost no extra pass.
        if not self._track_pass(stop_on_appearance=cfg.appearance_weight > 0):
            self._key_of, self._key_cam, self._key_tid = {}, [], []
            t1 = clock()
            self.app_sigma = self._appearance_pass()
            self.timings["appearance"] = clock() - t1
            self._track_pass()
        self.timings["track"] = clock() - t0 - self.timings.get("appearance", 0.0)
        for name, step in (("encounters", self._encounter_pass), ("runs", self._runs_pass),
                           ("pieces", self._pieces_pass), ("labels", self._label_pieces), ("points", self._points_pass)):
            t1 = clock()
            step()
            self.timings[name] = clock() - t1

    # ---- helpers -------------------------------------------------------------------------------------------
    def _iter(self) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
        """(block number, calibrated rows, other rows) of every block; checks the frame order."""
        last = -1
        for b, df in enumerate(self.blocks()):
            df = TRACKLET2D.coerce(df)
            if len(df):
                f = df["frame"].to_numpy(np.int64)
                if int(f.min()) <= last:
                    raise InputError(f"block {b}", "Tracklet2D column 'frame'",
                                     f"frames from {int(f.min())} overlap or precede the previous block "
                                     f"(last frame {last})",
                                     "pass blocks of consecutive frames in increasing, non-overlapping order")
                last = int(f.max())
            cal = df["camera_id"].astype(str).isin(self.names).to_numpy()
            yield b, df[cal], df[~cal]

    def _keys(self, idx: TrackletIndex) -> np.ndarray:
        """Session-wide key of every tracklet of a block index (registered on first sight)."""
        out = np.empty(len(idx.keys), np.int64)
        for i, (c, t) in enumerate(zip(idx.keys["camera_id"].tolist(), idx.keys["track_id"].tolist())):
            k = self._key_of.get((c, t))
            if k is None:
                k = self._key_of[(c, t)] = len(self._key_cam)
                self._key_cam.append(c)
                self._key_tid.append(int(t))
            out[i] = k
        return out

    def _grow(self, name: str, n: int, fill) -> np.ndarray:
        a = getattr(self, name)
        if len(a) < n:
            a = np.r_[a, np.full(max(n, 2 * len(a)) - len(a), fill, a.dtype)]
            setattr(self, name, a)
        return a

    # ---- pass 1: tracking ----------------------------------------------------------------------------------
    def _track_pass(self, stop_on_appearance: bool = False) -> bool:
        """Pass 1; with ``stop_on_appearance``, returns False (state incomplete) at the first block with
        appearance, True once every block is tracked."""
        self.tracker = FrameTracker(self.cams, self.cfg, self.names, app_sigma=self.app_sigma)
        self.n_blocks = 0
        self.block_rows: list[int] = []
        rest = []
        for b, tr, other in self._iter():
            if stop_on_appearance and _has_appearance(tr):
                return False
            idx = TrackletIndex.build(tr, source=f"block {b}")
            key = self._keys(idx)[idx.tk]
            rays = idx.row_rays(dict(zip(self.names, self.cams)))
            track, cost = self.tracker.feed(idx, key, rays)
            cam = np.searchsorted(self.names, np.asarray(idx.camera_names, dtype=str))[idx.keys["cam"].to_numpy()]
            app = idx.appearance if idx.appearance is not None else np.full((len(key), 2), np.nan)
            _spill(self._dir, b, key=key, frame=idx.frame, cam=cam[idx.tk], w=idx.w, h=idx.h,
                     detected=idx.detected, source_row=idx.source_row, track=track, cost=cost, o=rays[0], d=rays[1],
                     app=app)
            self.block_rows.append(len(key))
            if len(other):
                rest.append(other[["camera_id", "track_id", "frame", "frame_status"]])
            self.n_blocks = b + 1
        self.rest = pd.concat(rest, ignore_index=True) if rest else None
        return True

    def _block(self, b: int, encounters: bool = True) -> dict:
        """Spilled arrays of block ``b`` (rows in (tracklet, frame) order), with the final tracks and costs.

        With ``encounters`` the tracks are those after :mod:`.encounters`
        (fragments relinked; rows of encounter windows -1), as
        :func:`~.encounters.resolve_encounters` gives for the whole session.
        """
        z = _Spilled(self._dir, b)
        z["track"] = self.tracker.final(z["track"])
        if encounters and getattr(self, "_enc", None) is not None:
            rel, starts, S, lut, keep_until = self._enc
            frag = fragments_of(z["track"], z["frame"], rel, starts, S)
            z["track"] = relinked(z["track"], frag, z["cam"], z["frame"], lut, keep_until)
        z["cost"] = np.where(z["track"] >= 0, z["cost"], np.nan)
        return z

    # ---- pass 0: appearance spread (as frames.appearance_sigma over the whole session) ---------------------
    def _appearance_rows(self):
        """Per block with appearance: ``(key, cam, appearance, ok)`` of its rows (session tracklet key, camera
        index into ``names``, (N, 2) chromaticity, detected with finite appearance)."""
        for b, tr, _ in self._iter():
            if not _has_appearance(tr):   # TrackletIndex.build would give appearance None: skip the indexing
                continue
            idx = TrackletIndex.build(tr, source=f"block {b}")
            if idx.appearance is None:
                continue
            key = self._keys(idx)[idx.tk]
            cam = np.searchsorted(self.names, np.asarray(idx.camera_names, dtype=str))[idx.keys["cam"].to_numpy()][idx.tk]
            yield key, cam, idx.appearance, idx.detected & np.isfinite(idx.appearance).all(1)

    def _appearance_pass(self) -> np.ndarray | None:
        sums, cnt = np.zeros((0, 2)), np.zeros(0, np.int64)
        seen = False
        for key, _, app, ok in self._appearance_rows():
            s_, c_ = appearance_stats(key, app, ok, len(self._key_cam))
            sums = np.r_[sums, np.zeros((len(c_) - len(cnt), 2))] + s_
            cnt = np.r_[cnt, np.zeros(len(c_) - len(cnt), np.int64)] + c_
            seen = True
        if not seen:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / cnt[:, None]
        hist = np.zeros((len(self.names), _DEV_BINS), np.int64)
        for key, cam, app, ok in self._appearance_rows():  # second pass: deviations from the tracklet means
            hist += appearance_histogram(key, cam, app, ok, mean, cnt, len(self.names))
        return sigma_from_histogram(hist)

    # ---- pass 1b: encounters (cut 3D tracks at ambiguous meetings and coasts, relink) -----------------------
    def _encounter_pass(self) -> None:
        cfg = self.cfg
        self._enc = None
        self.link_sup: dict[int, float] = {}
        size_m = self.tracker.size()
        if not np.isfinite(size_m):
            return
        parts = []
        for b in range(self.n_blocks):
            z = self._block(b, encounters=False)
            parts.append(points_from_rows(z["track"], z["frame"], z["cam"], z["o"], z["d"], len(self.cams)))
        tid, frame, X = (np.concatenate([p[i] for p in parts]) for i in range(3)) if parts else \
            (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)))
        if not len(tid):
            return
        o = np.lexsort((frame, tid))
        tid, frame, X = tid[o], frame[o], X[o]
        rel, starts = cut_plan(tid, frame, X, cfg.encounter_radius * size_m, cfg.encounter_frames)
        S = plan_key_span(frame, cfg.encounter_frames)
        app_cost = None
        if self.app_sigma is not None:
            F, C = len(starts), len(self.cams)
            sums, cnt = np.zeros((F, C, 2)), np.zeros((F, C), np.int64)
            for b in range(self.n_blocks):
                z = self._block(b, encounters=False)
                frag = fragments_of(z["track"], z["frame"], rel, starts, S)
                s_, c_ = appearance_sums(np.where(z["detected"], frag, -1), z["cam"], z["app"], F, C)
                sums += s_
                cnt += c_
            app_cost = (appearance_means(sums, cnt), self.app_sigma, cfg.appearance_weight)
        lut, self.link_sup, keep_until = link_plan(tid, frame, X, rel, starts, S, cfg.box_fraction * size_m,
                                                   cfg.stitch_max_gap, app_cost)
        self._enc = (rel, starts, S, lut, keep_until)

    # ---- pass 2: per-tracklet runs of known tracks, smoothed as tracklet_pieces ----------------------------
    def _runs_pass(self) -> None:
        rk, rv, rl = [], [], []
        K = len(self._key_cam)
        self.first_kf = np.full(K, np.iinfo(np.int64).max)   # each tracklet's first known frame (fill distance)
        for b in range(self.n_blocks):
            z = self._block(b)
            key, track = z["key"], z["track"]
            known = np.flatnonzero(track >= 0)
            k, v = key[known], track[known]
            np.minimum.at(self.first_kf, k, z["frame"][known])
            if not len(k):
                continue
            new = np.r_[True, (k[1:] != k[:-1]) | (v[1:] != v[:-1])]
            st = np.flatnonzero(new)
            rk.append(k[st])
            rv.append(v[st])
            rl.append(np.diff(np.r_[st, len(k)]))
        if rk:
            k, v, ln = np.concatenate(rk), np.concatenate(rv), np.concatenate(rl)
            o = np.argsort(k, kind="stable")          # block order kept within a tracklet
            k, v, ln = k[o], v[o], ln[o]
            new = np.r_[True, (k[1:] != k[:-1]) | (v[1:] != v[:-1])]
            grp = np.cumsum(new) - 1
            k, v, ln = k[new], v[new], np.bincount(grp, weights=ln).astype(np.int64)
        else:
            k = v = ln = np.zeros(0, np.int64)
        if self.cfg.min_run > 1:   # smoothing, only for tracklets with >= 2 tracks: expand, _segment, re-encode
            multi = np.flatnonzero(np.r_[k[1:] == k[:-1], False] | np.r_[False, k[1:] == k[:-1]])
            if multi.size:
                parts_k, parts_v, parts_l = [k], [v], [ln]
                drop = np.zeros(len(k), bool)
                for kk in np.unique(k[multi]).tolist():
                    sel = np.flatnonzero(k == kk)
                    lab = _segment(np.repeat(v[sel], ln[sel]), self.cfg.min_run)
                    st = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
                    drop[sel] = True
                    parts_k.append(np.full(len(st), kk))
                    parts_v.append(lab[st])
                    parts_l.append(np.diff(np.r_[st, len(lab)]))
                keep = np.r_[~drop, np.ones(sum(len(p) for p in parts_k[1:]), bool)]
                k, v, ln = (np.concatenate(p)[keep] for p in (parts_k, parts_v, parts_l))
                o = np.argsort(k, kind="stable")
                k, v, ln = k[o], v[o], ln[o]
        # known-row index space: the runs of key kk cover [base[kk], base[kk] + n_known[kk])
        self.run_v = v
        self.run_end = np.cumsum(ln)
        n_known = np.bincount(k, weights=ln, minlength=K).astype(np.int64)
        self.known_base = np.r_[0, np.cumsum(n_known)[:-1]] if K else np.zeros(0, np.int64)
        self.n_known = n_known

    # ---- pass 3: pieces ------------------------------------------------------------------------------------
    def _pieces_pass(self) -> None:
        K = len(self._key_cam)
        seen_known = np.zeros(K, np.int64)
        last_kf = np.full(K, -1, np.int64)              # frame of each tracklet's last known row so far
        last_L = np.full(K, -3, np.int64)
        cur = np.full(K, -1, np.int64)                 # serial of each tracklet's current piece
        p_key, p_L, p_first, p_last = [], [], [], []
        self.n_det, self.n_hit = np.zeros(64, np.int64), np.zeros(64, np.int64)
        self.sup = np.zeros(64)
        self.first_det, self.last_det = np.full(64, np.iinfo(np.int64).max), np.full(64, -2, np.int64)
        self.edge = []   # per block: (serial, first det frame, w, h, last det frame, w, h)
        n_p = 0
        for b in range(self.n_blocks):
            z = self._block(b)
            key, track, cost, cam, frame = z["key"], z["track"], z["cost"], z["cam"], z["frame"]
            N = len(key)
            if not N:
                continue
            known = track >= 0
            start = np.r_[True, key[1:] != key[:-1]]
            # known rows at or before each row in its tracklet, over the session
            grp = np.cumsum(start) - 1
            ck = np.cumsum(known)
            before_grp = np.r_[0, ck][np.flatnonzero(start)]
            j = seen_known[key] + ck - before_grp[grp] - 1
            has = self.n_known[key] > 0
            q = self.known_base[key] + np.maximum(j, 0)
            L = np.where(has, self.run_v[np.minimum(np.searchsorted(self.run_end, q, "right"),
                                                    max(len(self.run_v) - 1, 0))] if len(self.run_v) else -1, -1)
            np.add.at(seen_known, key[known], 1)
            # frame of the known row each row takes its track from (tracklet_pieces' fill distance)
            kpos = np.maximum.accumulate(np.where(known, np.arange(N), -1))
            seg0 = np.flatnonzero(start)[grp]
            inb = kpos >= seg0                            # a known row of this tracklet earlier in this block
            kf = np.where(inb, frame[np.maximum(kpos, 0)], last_kf[key])
            kf = np.where(kf >= 0, kf, self.first_kf[key])   # leading rows: the tracklet's first known row
            dist = np.abs(frame - kf)
            ends_k = np.r_[np.flatnonzero(start)[1:] - 1, N - 1]
            last_kf[key[ends_k]] = np.where(inb[ends_k], frame[np.maximum(kpos[ends_k], 0)], last_kf[key[ends_k]])
            # a filled or absorbed row must not give its track a second row in a camera-frame (tracklet_pieces)
            _release_conflicts(L, track, cam, frame, dist)
            prev = np.r_[-3, L[:-1]]
            prev[start] = last_L[key[start]]
            new = L != prev
            fresh = np.flatnonzero(new)
            serial_new = n_p + np.arange(fresh.size)
            n_p += fresh.size
            p_key.append(key[fresh])
            p_L.append(L[fresh])
            p_first.append(frame[fresh])
            pos = np.where(new | start, np.arange(N), 0)
            pos = np.maximum.accumulate(pos)
            ser = np.full(N, -1, np.int64)
            ser[fresh] = serial_new
            serial = np.where(new[pos], ser[pos], cur[key[pos]])
            ends = np.r_[np.flatnonzero(start)[1:] - 1, N - 1]
            cur[key[ends]] = serial[ends]
            last_L[key[ends]] = L[ends]
            run_end = np.flatnonzero(np.r_[serial[1:] != serial[:-1], True])
            p_last.append((serial[run_end], frame[run_end]))
            np.save(self._dir / f"{b}.serial.npy", serial)
            det = z["detected"]
            hit = np.isfinite(cost)
            # per-piece counts, support sums (sequential in row order: the sums of one pass) and detected range
            for name, fill in (("n_det", 0), ("n_hit", 0), ("sup", 0.0), ("first_det", np.iinfo(np.int64).max),
                               ("last_det", -2)):
                self._grow(name, n_p, fill)
            np.add.at(self.n_det, serial[det], 1)
            np.add.at(self.n_hit, serial[hit], 1)
            np.add.at(self.sup, serial[hit], np.exp(-0.5 * cost[hit] ** 2))
            np.minimum.at(self.first_det, serial[det], frame[det])
            np.maximum.at(self.last_det, serial[det], frame[det])
            # first / last detected row of every piece in this block (box size for reprojected rows)
            d = np.flatnonzero(det)
            if d.size:
                s = serial[d]
                fs = np.r_[True, s[1:] != s[:-1]]
                ls = np.r_[s[1:] != s[:-1], True]
                f_, l_ = d[fs], d[ls]
                self.edge.append(pd.DataFrame({"serial": s[fs], "block": b, "f0": frame[f_], "w0": z["w"][f_],
                                               "h0": z["h"][f_], "f1": frame[l_], "w1": z["w"][l_],
                                               "h1": z["h"][l_]}))
        P = n_p
        self.p_key = np.concatenate(p_key) if p_key else np.zeros(0, np.int64)
        self.p_L = np.concatenate(p_L) if p_L else np.zeros(0, np.int64)
        self.p_first = np.concatenate(p_first) if p_first else np.zeros(0, np.int64)
        self.p_last = np.full(P, -2, np.int64)
        for s, f in p_last:
            self.p_last[s] = f      # blocks in order: the last block's value wins
        self.n_det, self.n_hit, self.sup = self.n_det[:P], self.n_hit[:P], self.sup[:P]
        self.first_det, self.last_det = self.first_det[:P], self.last_det[:P]
        self.first_det[self.n_det == 0] = -1
        self.edge = pd.concat(self.edge, ignore_index=True) if self.edge else None

    # ---- piece ids, labels, support ------------------------------------------------------------------------
    def _label_pieces(self) -> None:
        cfg = self.cfg
        K, P = len(self._key_cam), len(self.p_key)
        kcam = np.asarray(self._key_cam, dtype=object)
        ktid = np.asarray(self._key_tid, np.int64)
        korder = np.lexsort((ktid, kcam.astype(str)))       # tracklet order of TrackletIndex (camera_id, track_id)
        rank = np.empty(K, np.int64)
        rank[korder] = np.arange(K)
        local = np.zeros(P, np.int64)
        o = np.lexsort((np.arange(P), self.p_key))
        st = np.r_[True, self.p_key[o][1:] != self.p_key[o][:-1]] if P else np.zeros(0, bool)
        local[o] = np.arange(P) - np.maximum.accumulate(np.where(st, np.arange(P), 0))
        porder = np.lexsort((local, rank[self.p_key]))       # piece order of tracklet_pieces
        p_cam = kcam[self.p_key].astype(str)
        old = ktid[self.p_key]
        new_id = old.copy()
        extra = porder[local[porder] > 0]
        if extra.size:
            base = pd.Series(ktid).groupby(kcam.astype(str)).max()
            cnt = pd.Series(np.ones(extra.size, np.int64)).groupby(p_cam[extra]).cumsum().to_numpy()
            new_id[extra] = base.reindex(p_cam[extra]).to_numpy(np.int64) + cnt
        self.new_id = new_id
        # keys of the refined tracklets (TrackletIndex.build order: camera_id, track_id)
        kord = np.lexsort((new_id, p_cam))
        self.k_of_serial = np.empty(P, np.int64)
        self.k_of_serial[kord] = np.arange(P)
        pos_in_porder = np.empty(P, np.int64)
        pos_in_porder[porder] = np.arange(P)
        ptrack = self.p_L
        n_track = int(ptrack.max()) + 1 if P and ptrack.max() >= 0 else 0
        lone = ptrack < 0
        # lone pieces numbered in piece order after the tracks (as _frames_labels)
        lone_rank = np.zeros(P, np.int64)
        lp = porder[lone[porder]]
        lone_rank[lp] = np.arange(lp.size)
        lab = np.where(lone, n_track + lone_rank, ptrack)
        _, lab = np.unique(lab, return_inverse=True)
        sup = self.sup / np.maximum(self.n_hit, 1)
        sup = np.where(lone | (self.n_hit < cfg.min_run), np.nan, sup)
        if self.link_sup:  # a track relinked across an encounter or a coast is as strong as its weakest link
            ls = np.full(n_track, np.nan)
            ls[np.fromiter(self.link_sup, np.int64)] = np.fromiter(self.link_sup.values(), float)
            lsp = ls[np.maximum(ptrack, 0)]
            sup = np.where(~lone & np.isfinite(lsp), np.fmin(sup, lsp), sup)
        names = self.names
        cam_i = np.searchsorted(names, p_cam)
        keys = pd.DataFrame({"camera_id": p_cam.astype(object), "track_id": new_id, "cam": cam_i.astype(np.int64),
                             "first": self.p_first, "last": self.p_last, "first_det": self.first_det,
                             "last_det": self.last_det, "n_det": self.n_det})
        keys["end"] = np.where(self.n_det > 0, self.last_det, self.p_last)
        self.keys = keys.iloc[kord].reset_index(drop=True)
        self.labels = lab.ravel().astype(np.int64)[kord]
        self.parent = old[kord]
        self.piece_support = sup[kord]
        log.info("per-frame 3D tracking in %d block(s): %d 3D tracks; %d tracklets cut into %d pieces (%d unclaimed)",
                 self.n_blocks, n_track, K, P, int(lone.sum()))

    # ---- pass 4: 3D points per (frame, group), stitching ---------------------------------------------------
    def _refined(self, b: int, extra: tuple | None = None) -> TrackletIndex:
        """Index over the session's refined tracklets (``self.keys``) holding the rows of block ``b``.

        Rows are sorted by (refined tracklet, frame) as :meth:`TrackletIndex.build`
        would; ``source_row`` is each row's position in the block's rows in
        (tracklet, frame) order of the original ids (-1 for ``extra`` rows:
        ``(key, frame, w, h)`` of detected rows outside the block).
        """
        z = _Spilled(self._dir, b)
        serial = np.load(self._dir / f"{b}.serial.npy")
        tk, frame, w, h, det = self.k_of_serial[serial], z["frame"], z["w"], z["h"], z["detected"]
        pos = np.arange(len(tk))
        o_, d_ = z["o"], z["d"]
        if extra is not None:
            ek, ef, ew, eh = extra
            tk, frame, w, h = np.r_[tk, ek], np.r_[frame, ef], np.r_[w, ew], np.r_[h, eh]
            det = np.r_[det, np.ones(len(ek), bool)]
            pos = np.r_[pos, np.full(len(ek), -1, np.int64)]
            o_ = np.r_[o_, np.full((len(ek), 3), np.nan)]
            d_ = np.r_[d_, np.full((len(ek), 3), np.nan)]
        span = int(max(frame.max(), self.keys["last"].max())) + 2 if len(frame) else 1
        code = tk * span + frame
        o = np.argsort(code, kind="stable")
        n = len(o)
        gidx = TrackletIndex(keys=self.keys, camera_names=self.names, tk=tk[o], frame=frame[o], cx=np.zeros(n),
                             cy=np.zeros(n), w=w[o], h=h[o], detected=det[o], coasted=np.zeros(n, bool),
                             _code=code[o], _span=span, source_row=pos[o])
        gidx.__dict__["_rays"] = (o_[o], d_[o])
        return gidx

    def _points(self, labels: np.ndarray) -> dict:
        """:func:`~.refine.group_points` of the whole session, block by block."""
        parts = [group_points(self._refined(b), labels, self.cams) for b in range(self.n_blocks)
                 if self.block_rows[b]]
        if not parts:
            return {"frame": np.zeros(0, np.int64), "group": np.zeros(0, np.int64), "X": np.zeros((0, 3)),
                    "n": np.zeros(0, np.int64)}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _points_pass(self) -> None:
        cfg = self.cfg
        self.stitch_sup: dict[int, float] = {}
        self.pts = None
        if not cfg.refine or not len(self.keys):
            return
        pts = self._points(self.labels)
        labels, self.stitch_sup = stitch_groups(_Keys(self.keys), self.labels, pts,
                                                cfg.box_fraction * self.tracker.size(), cfg.stitch_max_gap)
        if self.stitch_sup:
            log.info("3D stitching joined %d track(s) across gaps", len(self.stitch_sup))
        self.labels = labels
        if cfg.reproject:
            self.pts = self._points(labels) if self.stitch_sup else pts

    # ---- outputs -------------------------------------------------------------------------------------------
    @property
    def association(self) -> pd.DataFrame:
        from . import _association_table
        if not hasattr(self, "_assoc"):
            ridx = None
            if self.rest is not None and len(self.rest):
                r = self.rest
                det = (r["frame_status"].astype(str) == "detected").to_numpy()
                ridx = _Keys(pd.DataFrame({"camera_id": r["camera_id"].astype(str), "track_id": r["track_id"],
                                           "n_det": det.astype(np.int64)})
                             .groupby(["camera_id", "track_id"], sort=True)["n_det"].sum().reset_index())
            self._assoc, self._evid = _association_table(_Keys(self.keys), self.labels, self.parent,
                                                         self.piece_support, self.stitch_sup, None, ridx, self.cfg)
        return self._assoc

    @property
    def evidence(self) -> pd.DataFrame:
        _ = self.association  # builds both tables on first use
        return self._evid

    def tracklets(self) -> Iterator[pd.DataFrame]:
        """Refined TRACKLET2D rows, one DataFrame per block (sorted by ``camera_id, track_id, frame``)."""
        for b, tr, other in self._iter():
            if len(tr):
                # the block's rows in (tracklet, frame) order of the original ids, as spilled in pass 1
                z = _Spilled(self._dir, b)
                serial = np.load(self._dir / f"{b}.serial.npy")
                src = tr.iloc[z["source_row"]].reset_index(drop=True)
                src = src.assign(track_id=self.keys["track_id"].to_numpy()[self.k_of_serial[serial]])
                if self.pts is not None:
                    src = self._reprojected(b, src)
            else:
                src = tr
            out = TRACKLET2D.coerce(pd.concat([src, other], ignore_index=True))
            yield out.sort_values(["camera_id", "track_id", "frame"], kind="stable").reset_index(drop=True)

    def _reprojected(self, b: int, src: pd.DataFrame) -> pd.DataFrame:
        """:func:`~.refine.reprojected_rows` for the frames of one block.

        It is given an index over the session's refined tracklets holding the
        block's rows plus, per piece, its last detected row before the block
        and its first after it (the box size of a reprojected row comes from
        the nearest detected row in time).
        """
        extra = None
        if self.edge is not None:
            e = self.edge
            before = e[e["block"] < b].groupby("serial").tail(1)
            after = e[e["block"] > b].groupby("serial").head(1)
            extra = (np.r_[self.k_of_serial[before["serial"].to_numpy()], self.k_of_serial[after["serial"].to_numpy()]],
                     np.r_[before["f1"].to_numpy(), after["f0"].to_numpy()],
                     np.r_[before["w1"].to_numpy(), after["w0"].to_numpy()],
                     np.r_[before["h1"].to_numpy(), after["h0"].to_numpy()])
        gidx = self._refined(b, extra)
        inb = gidx.source_row >= 0
        f0, f1 = int(gidx.frame[inb].min()), int(gidx.frame[inb].max())
        pts = self.pts
        sel = (pts["frame"] >= f0) & (pts["frame"] <= f1)
        return reprojected_rows(gidx, self.labels, {k: v[sel] for k, v in pts.items()}, self.cams, src,
                                self.cfg.reproject_min_cameras)

    def close(self) -> None:
        """Remove the spill files."""
        self._tmp.cleanup()

    def __enter__(self) -> "BlockAssociation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def frame_blocks(paths: list[str | Path], block_frames: int, tmpdir: str | Path
                 ) -> Callable[[], Iterator[pd.DataFrame]]:
    """Blocks of ``block_frames`` frames of the TRACKLET2D tables ``paths`` (e.g. every camera's file).

    The files are streamed once (pyarrow dataset scan, batch by batch) into
    one parquet folder per block under ``tmpdir`` (hive partitioning on
    ``frame // block_frames``); the returned callable yields the blocks in
    frame order, reading one at a time. Memory: one scan batch, then one
    block. Raises :class:`InputError` naming the file for a missing file or
    ``frame`` column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if block_frames < 1:
        raise ValueError("block_frames must be >= 1")
    for p in paths:
        if not Path(p).exists():
            raise InputError(p, None, "Tracklet2D table not found", "run the stage that writes it")
    d = ds.dataset([str(p) for p in paths], format="parquet")
    if "frame" not in d.schema.names:
        raise InputError(paths[0] if paths else None, "Tracklet2D column 'frame'", "missing",
                         "pass TRACKLET2D tables")
    out = Path(tmpdir) / "frame_blocks"
    cols = {c: ds.field(c) for c in d.schema.names if not c.startswith("__")}
    cols["block"] = pc.divide(ds.field("frame"), pa.scalar(int(block_frames), pa.int64()))   # int64: floor for frame >= 0
    ds.write_dataset(d.scanner(columns=cols), out, format="parquet", existing_data_behavior="overwrite_or_ignore",
                     partitioning=ds.partitioning(pa.schema([("block", pa.int64())]), flavor="hive"))
    blocks = sorted(int(q.name.split("=", 1)[1]) for q in out.glob("block=*")) if out.exists() else []

    def gen() -> Iterator[pd.DataFrame]:
        for b in blocks:
            df = ds.dataset(out / f"block={b}", format="parquet").to_table().to_pandas()
            yield TRACKLET2D.coerce(df.drop(columns=["block"], errors="ignore"))
    return gen


def write_blocks(blocks: Iterable[pd.DataFrame], spec: TableSpec, path: str | Path, **attrs: str) -> int:
    """Write tables of one spec block by block into one parquet file, atomically; returns the rows written.

    Same file as :func:`mctrack.tables.write_table` of the concatenated blocks
    (columns, dtypes, ``mctrack_table`` metadata, row groups of at most
    ``ROW_GROUP_ROWS`` rows), rows in block order; memory: one block.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..errors import atomic_path

    n = 0
    with atomic_path(path) as tmp:
        writer = None
        try:
            for df in blocks:
                t = pa.Table.from_pandas(spec.coerce(df), preserve_index=False)
                if writer is None:
                    meta = dict(t.schema.metadata or {})
                    meta[b"PANDAS_ATTRS"] = json.dumps({"mctrack_table": spec.name, **{k: str(v) for k, v in
                                                                                       attrs.items()}}).encode()
                    schema = t.schema.with_metadata(meta)
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(t.replace_schema_metadata(schema.metadata), row_group_size=ROW_GROUP_ROWS)
                n += len(df)
            if writer is None:   # no block: an empty table
                empty = spec.empty()
                empty.attrs = {"mctrack_table": spec.name, **{k: str(v) for k, v in attrs.items()}}
                empty.to_parquet(tmp, index=False)
        finally:
            if writer is not None:
                writer.close()
    return n
