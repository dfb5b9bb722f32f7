"""Calibrate a camera rig from synchronised views of a planar board.

Two cases, one pipeline (:func:`calibrate_rig`):

- **extrinsics only** (intrinsics given, e.g. FishPy's ``intrinsics.json``);
- **full** (intrinsics and distortion per camera from ``cv2.calibrateCamera``,
  then everything refined jointly).

Steps:

1. ``observations``: per camera, per view (synchronised image index) the
   board corner ids and px (:meth:`Board.detect`).
2. Intrinsics (full case): ``cv2.calibrateCamera`` per camera on its views
   (OpenCV's default 5-coefficient model; ``fix_k3`` fixes k3 = 0 for few views).
3. Board pose per camera and view: ``cv2.solvePnP`` (``SOLVEPNP_IPPE``, planar).
4. Symmetric boards (checkerboards): each camera's corner order in each view
   is either OpenCV's or its 180° reversal. The reference camera's orders
   are kept; for every other camera the order per view is chosen so that its
   pose relative to the reference camera agrees across views
   (:func:`resolve_flips`): the wrong order turns the relative pose by ~180°,
   so the choice is unambiguous whenever two cameras share ≥ 2 views.
5. Initial relative poses: breadth-first over cameras sharing views with an
   already placed camera (the shared view with most corners).
6. Bundle adjustment: ``scipy.optimize.least_squares`` (trust-region,
   ``soft_l1`` loss with 1 px scale, sparse Jacobian) over camera extrinsics
   (reference camera fixed), board poses per view and, in the full case,
   ``fx, fy, cx, cy, k1, k2, p1, p2[, k3]`` per camera.
7. World frame: the board of the reference view (``world_view``; default
   the view seen by most cameras), z towards the cameras, metres.

:func:`board_report` then checks the rig the way a user would: triangulate
every view's corners with all cameras (no board model), measure the square
lengths and the reprojection error per camera.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from scipy.spatial.transform import Rotation

from ..errors import InputError
from .board import Board
from .camera import Camera

log = logging.getLogger("mctrack.calibrate")


@dataclass
class Observations:
    """Board corners seen by the cameras.

    ``cameras``: names (C); ``sizes``: (width, height) px per camera;
    ``views[c]``: ``{view index: (ids (n,) int, uv (n, 2) float64 px)}``.
    """

    cameras: list[str]
    sizes: list[tuple[int, int]]
    views: list[dict[int, tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat ``cam (n,)``, ``view (n,)``, ``corner id (n,)``, ``uv (n, 2)`` of every observation."""
        cam, view, ids, uv = [], [], [], []
        for c, vs in enumerate(self.views):
            for v, (i, p) in sorted(vs.items()):
                cam.append(np.full(len(i), c))
                view.append(np.full(len(i), v))
                ids.append(i)
                uv.append(p)
        return (np.concatenate(cam), np.concatenate(view), np.concatenate(ids), np.concatenate(uv))


def detect_board(board: Board, sources: dict[str, str], min_corners: int = 8, step: int = 1) -> Observations:
    """Detect ``board`` in every camera's footage (``{camera: folder | glob | video}``).

    Views with fewer than ``min_corners`` corners are dropped. Raises
    InputError when the cameras' image counts differ or a camera never sees the board.
    """
    from .board import board_frames

    obs = Observations(list(sources), [])
    counts = {}
    for cam, src in sources.items():
        views, size, n = {}, None, 0
        for i, img in board_frames(src, step):
            size, n = (img.shape[1], img.shape[0]), n + 1
            ids, uv = board.detect(img)
            if len(ids) >= min_corners:
                views[i] = (ids, uv)
        counts[cam] = n
        log.info("camera %s: board found in %d of %d images (%s)", cam, len(views), n, src)
        if not views:
            raise InputError(src, f"camera '{cam}'", "the board is never detected",
                             "check calibrate.board (squares are counted, not inner corners) and the footage")
        obs.views.append(views)
        obs.sizes.append(size)
    if len(set(counts.values())) > 1:
        raise InputError(None, "column 'board'", f"cameras have different numbers of board images {counts}",
                         "give every camera the same synchronised board images (index i = same instant)")
    return obs


# ------------------------------------------------------------------ geometry helpers


def _T(rvec, tvec) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3))[0]
    T[:3, 3] = np.ravel(tvec)
    return T


def _rt(T) -> tuple[np.ndarray, np.ndarray]:
    return cv2.Rodrigues(T[:3, :3])[0].ravel(), T[:3, 3].copy()


def _inv(T) -> np.ndarray:
    Ti = np.eye(4)
    Ti[:3, :3] = T[:3, :3].T
    Ti[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return Ti


def _pose_distance(A, B, scale: float) -> float:
    """Rotation angle (rad) + translation difference / ``scale`` between two 4×4 poses."""
    dR = A[:3, :3] @ B[:3, :3].T
    ang = np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1))
    return float(ang + np.linalg.norm(A[:3, 3] - B[:3, 3]) / scale)


def project_points(Xc: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Project ``(n, 3)`` camera-frame points with per-point intrinsics ``k (n, 9)``
    = ``fx, fy, cx, cy, k1, k2, p1, p2, k3`` → ``(n, 2)`` px (OpenCV pinhole model,
    same as ``cv2.projectPoints`` without skew)."""
    x, y = Xc[:, 0] / Xc[:, 2], Xc[:, 1] / Xc[:, 2]
    r2 = x * x + y * y
    rad = 1 + r2 * (k[:, 4] + r2 * (k[:, 5] + r2 * k[:, 8]))
    xd = x * rad + 2 * k[:, 6] * x * y + k[:, 7] * (r2 + 2 * x * x)
    yd = y * rad + k[:, 6] * (r2 + 2 * y * y) + 2 * k[:, 7] * x * y
    return np.column_stack([k[:, 0] * xd + k[:, 2], k[:, 1] * yd + k[:, 3]])


def _intr_vector(K, dist) -> np.ndarray:
    d = np.zeros(5)
    d[: min(5, len(dist))] = np.ravel(dist)[:5]
    return np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2], d[0], d[1], d[2], d[3], d[4]])


def _board_pose(obj, uv, K, dist) -> np.ndarray:
    ok, r, t = cv2.solvePnP(obj, uv, K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        ok, r, t = cv2.solvePnP(obj, uv, K, dist)
    return _T(r, t)


# ------------------------------------------------------------------ steps


def calibrate_intrinsics(board: Board, obs: Observations, c: int, fix_k3: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """``cv2.calibrateCamera`` on camera ``c``'s views → ``K (3, 3)``, ``dist (5,)``, RMS px."""
    P = board.object_points
    objs = [P[i].astype(np.float32) for i, _ in obs.views[c].values()]
    imgs = [uv.astype(np.float32) for _, uv in obs.views[c].values()]
    if len(objs) < 3:
        raise InputError(None, f"camera '{obs.cameras[c]}'", f"board seen in only {len(objs)} images",
                         "full calibration needs >= 3 views of the board per camera (10-20 recommended)")
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    rms, K, dist, _, _ = cv2.calibrateCamera(objs, imgs, obs.sizes[c], None, None, flags=flags)
    return K, dist.ravel()[:5], float(rms)


def resolve_flips(board: Board, obs: Observations, intr: list[tuple[np.ndarray, np.ndarray]], ref: int) -> list[dict[int, bool]]:
    """Choose, per camera and view, OpenCV's corner order or its 180° reversal (symmetric boards).

    Returns ``flips[c][view]`` (True = reversed). The reference camera keeps
    OpenCV's order. For camera ``c`` the relative pose ``T_c · T_ref⁻¹`` is
    computed from every shared view under both orders; the order of the
    first shared view (``f0``) is tried both ways and every other view takes
    the order whose relative pose is nearest; the ``f0`` with the smaller
    total disagreement wins. Cameras sharing no view with ``ref`` are
    resolved against an already resolved camera (breadth-first).
    """
    C = len(obs.cameras)
    P = board.object_points
    flip_ids = board.flipped_ids
    flips: list[dict[int, bool]] = [dict() for _ in range(C)]
    poses: list[dict[int, np.ndarray]] = [dict() for _ in range(C)]  # resolved board poses
    for v, (i, uv) in obs.views[ref].items():
        flips[ref][v] = False
        poses[ref][v] = _board_pose(P[i], uv, *intr[ref])
    done = {ref}
    scale = board.square_length * max(board.squares)
    while len(done) < C:
        best = max(((c, a, sorted(set(obs.views[c]) & set(poses[a]))) for c in set(range(C)) - done for a in done),
                   key=lambda b: len(b[2]), default=None)
        if best is None or not best[2]:
            raise InputError(None, "board footage", f"cameras {[obs.cameras[c] for c in set(range(C)) - done]} "
                             "share no board view with the others", "film the board where cameras overlap")
        c, a, shared = best
        cand = {}
        for v in obs.views[c]:
            i, uv = obs.views[c][v]
            cand[v] = (_board_pose(P[i], uv, *intr[c]), _board_pose(P[flip_ids[i]], uv, *intr[c]))
        rel = {v: [cand[v][f] @ _inv(poses[a][v]) for f in (0, 1)] for v in shared}
        results = []
        for f0 in (0, 1):
            R0 = rel[shared[0]][f0]
            choice, cost = {shared[0]: f0}, 0.0
            for v in shared[1:]:
                d = [_pose_distance(rel[v][f], R0, scale) for f in (0, 1)]
                choice[v] = int(np.argmin(d))
                cost += min(d)
            results.append((cost, choice))
        cost, choice = min(results, key=lambda r: r[0])
        if len(shared) < 2:
            log.warning("camera %s shares one view with %s: its corner order cannot be checked",
                        obs.cameras[c], obs.cameras[a])
        # views not shared with `a`: nearest to the agreed relative pose through any resolved camera
        T_rel = rel[shared[0]][choice[shared[0]]]
        for v in obs.views[c]:
            if v not in choice:
                # board v in camera a's frame, through a resolved camera b that saw v and shared[0]:
                # T_a<-v = T_a<-s0 · T_s0<-b · T_b<-v
                ref_pose = next((poses[a][shared[0]] @ _inv(poses[b][shared[0]]) @ poses[b][v] for b in done
                                 if v in poses[b] and shared[0] in poses[b]), None)
                if ref_pose is None:
                    choice[v] = 0
                else:
                    choice[v] = int(np.argmin([_pose_distance(cand[v][f] @ _inv(ref_pose), T_rel, scale) for f in (0, 1)]))
        for v, f in choice.items():
            flips[c][v] = bool(f)
            poses[c][v] = cand[v][f]
        log.info("camera %s: corner order reversed in views %s (pose disagreement %.3f)", obs.cameras[c],
                 sorted(v for v, f in choice.items() if f), cost)
        done.add(c)
    return flips


@dataclass
class RigSolution:
    """Result of :func:`calibrate_rig`: ``cameras`` (world = reference board, metres),
    ``board_poses`` ``{view: 4×4 board→world}``, per-observation ``residuals`` (n, 2) px
    with ``obs_cam``/``obs_view`` (n,), ``flips`` per camera and view, ``world_view``."""

    cameras: list[Camera]
    board_poses: dict[int, np.ndarray]
    residuals: np.ndarray
    obs_cam: np.ndarray
    obs_view: np.ndarray
    flips: list[dict[int, bool]]
    world_view: int
    intrinsics_rms: dict[str, float] = field(default_factory=dict)


def calibrate_rig(board: Board, obs: Observations, intrinsics: dict[str, Camera] | None = None,
                  world_view: int | None = None, fix_k3: bool = False, refine_intrinsics: bool | None = None,
                  max_nfev: int = 100, ftol: float = 1e-6, tr_solver: str = "lsmr") -> RigSolution:
    """Calibrate the rig (module docstring) → :class:`RigSolution`.

    ``intrinsics``: ``{camera: Camera}`` with K / dist / size of every camera
    (extrinsics-only case) or None (full calibration). ``refine_intrinsics``
    defaults to ``intrinsics is None``. Raises InputError when the image size
    of the board footage differs from a given intrinsic calibration's.
    """
    C = len(obs.cameras)
    P = board.object_points
    rms = {}
    intr = []
    for c, name in enumerate(obs.cameras):
        if intrinsics is not None:
            cam = intrinsics[name]
            if cam.size != tuple(obs.sizes[c]) and cam.size != (0, 0):
                raise InputError(cam.meta.get("source"), f"camera '{name}' field 'size'",
                                 f"intrinsics are for {cam.size[0]}x{cam.size[1]} px, board images are "
                                 f"{obs.sizes[c][0]}x{obs.sizes[c][1]} px", "use board images at the calibrated resolution")
            intr.append((cam.K.copy(), np.pad(cam.dist, (0, max(0, 5 - cam.dist.size)))[:5].copy()))
        else:
            K, dist, r = calibrate_intrinsics(board, obs, c, fix_k3)
            rms[name] = r
            intr.append((K, dist))
            log.info("camera %s: calibrateCamera RMS %.3f px on %d views", name, r, len(obs.views[c]))
    refine = intrinsics is None if refine_intrinsics is None else refine_intrinsics
    ref = int(np.argmax([len(v) for v in obs.views]))
    if board.symmetric:
        flips = resolve_flips(board, obs, intr, ref)
    else:
        flips = [{v: False for v in vs} for vs in obs.views]
    # corner ids in the chosen orders
    views = [{v: (board.flipped_ids[i] if flips[c][v] else i, uv) for v, (i, uv) in vs.items()}
             for c, vs in enumerate(obs.views)]
    pnp = [{v: _board_pose(P[i], uv, *intr[c]) for v, (i, uv) in vs.items()} for c, vs in enumerate(views)]
    # initial camera poses relative to ref (breadth-first over shared views)
    T_cam = {ref: np.eye(4)}
    queue = deque([ref])
    while queue:
        a = queue.popleft()
        for c in range(C):
            if c in T_cam:
                continue
            shared = set(pnp[c]) & set(pnp[a])
            if shared:
                v = max(shared, key=lambda v: min(len(views[c][v][0]), len(views[a][v][0])))
                T_cam[c] = pnp[c][v] @ _inv(pnp[a][v]) @ T_cam[a]
                queue.append(c)
    if len(T_cam) < C:
        raise InputError(None, "board footage", "some cameras share no board view with the others",
                         "film the board where the cameras' views overlap")
    all_views = sorted({v for vs in views for v in vs})
    T_board = {}
    for v in all_views:
        c = max((c for c in range(C) if v in pnp[c]), key=lambda c: len(views[c][v][0]))
        T_board[v] = _inv(T_cam[c]) @ pnp[c][v]  # board → ref camera
    # ---- bundle adjustment
    cam_c = np.concatenate([np.full(len(i), c) for c in range(C) for v, (i, _) in sorted(views[c].items())])
    cam_v = np.concatenate([np.full(len(i), v) for c in range(C) for v, (i, _) in sorted(views[c].items())])
    ids = np.concatenate([i for c in range(C) for v, (i, _) in sorted(views[c].items())])
    uv = np.concatenate([p for c in range(C) for v, (_, p) in sorted(views[c].items())])
    vidx = {v: k for k, v in enumerate(all_views)}
    ov = np.array([vidx[v] for v in cam_v])
    free = [c for c in range(C) if c != ref]
    fidx = {c: k for k, c in enumerate(free)}
    n_e, n_v = 6 * len(free), 6 * len(all_views)
    ni = (9 if not fix_k3 else 8) if refine else 0
    x0 = np.concatenate([np.concatenate(_rt(T_cam[c])) for c in free] + [np.concatenate(_rt(T_board[v])) for v in all_views]
                        + ([_intr_vector(*intr[c])[:ni] for c in range(C)] if refine else []))
    fixed_intr = np.array([_intr_vector(*intr[c]) for c in range(C)])
    obj = P[ids]

    def unpack(x):
        ce = np.zeros((C, 6))
        ce[free] = x[:n_e].reshape(-1, 6)
        ve = x[n_e:n_e + n_v].reshape(-1, 6)
        k = fixed_intr.copy()
        if refine:
            k[:, :ni] = x[n_e + n_v:].reshape(C, ni)
        return ce, ve, k

    def residuals(x):
        ce, ve, k = unpack(x)
        Rv = Rotation.from_rotvec(ve[ov, :3]).as_matrix()
        Xw = np.einsum("nij,nj->ni", Rv, obj) + ve[ov, 3:]
        Rc = Rotation.from_rotvec(ce[cam_c, :3]).as_matrix()
        Xc = np.einsum("nij,nj->ni", Rc, Xw) + ce[cam_c, 3:]
        return (project_points(Xc, k[cam_c]) - uv).ravel()

    n_obs = len(ids)
    # Jacobian sparsity: residual rows 2i, 2i+1 depend on camera cam_c[i]'s extrinsics (unless it is the
    # reference), board view ov[i]'s pose and, when refined, cam_c[i]'s intrinsics
    cols = [n_e + 6 * ov[:, None] + np.arange(6)]
    free_obs = cam_c != ref
    ext = np.full((n_obs, 6), -1)
    ext[free_obs] = 6 * np.array([fidx[c] for c in cam_c[free_obs]], dtype=int)[:, None] + np.arange(6)
    cols.append(ext)
    if refine:
        cols.append(n_e + n_v + ni * cam_c[:, None] + np.arange(ni))
    cols = np.hstack(cols)
    rows = np.repeat(np.arange(n_obs), cols.shape[1]).reshape(n_obs, -1)
    keep = cols >= 0
    r, c = rows[keep], cols[keep]
    J = coo_matrix((np.ones(2 * r.size, np.int8), (np.concatenate([2 * r, 2 * r + 1]), np.concatenate([c, c]))),
                   shape=(2 * n_obs, len(x0))).tocsr()
    res = least_squares(residuals, x0, jac_sparsity=J, loss="soft_l1", f_scale=1.0, x_scale="jac", method="trf",
                        max_nfev=max_nfev, ftol=ftol, tr_solver=tr_solver, verbose=0)
    log.info("bundle adjustment: %d evaluations, cost %.4g -> %.4g, %s", res.nfev, 0.5 * np.sum(residuals(x0) ** 2), res.cost, res.message)
    ce, ve, k = unpack(res.x)
    # world = board of world_view, z towards the cameras
    counts = {v: sum(v in views[c] for c in range(C)) for v in all_views}
    if world_view is None:
        world_view = max(all_views, key=lambda v: (counts[v], -v))
    elif world_view not in T_board:
        raise InputError(None, "calibrate.world_view", f"view {world_view} has no board detection",
                         f"use one of {all_views}")
    W = _T(ve[vidx[world_view], :3], ve[vidx[world_view], 3:])  # board(world) → ref camera
    centres_w = [(_inv(W) @ _inv(_T(ce[c, :3], ce[c, 3:])))[:3, 3] for c in range(C)]
    if np.mean([p[2] for p in centres_w]) < 0:
        W = W @ np.diag([1.0, -1.0, -1.0, 1.0])  # rotate the world 180° about x: z towards the cameras
    cams = []
    for c, name in enumerate(obs.cameras):
        Tc = _T(ce[c, :3], ce[c, 3:]) @ W
        K = np.array([[k[c, 0], 0, k[c, 2]], [0, k[c, 1], k[c, 3]], [0, 0, 1]])
        r, t = _rt(Tc)
        cams.append(Camera(name, K, k[c, 4:9], r, t, obs.sizes[c]))
    poses = {v: _inv(W) @ _T(ve[vidx[v], :3], ve[vidx[v], 3:]) for v in all_views}
    resid = residuals(res.x).reshape(-1, 2)
    return RigSolution(cams, poses, resid, cam_c, cam_v, flips, world_view, rms)


def board_report(board: Board, obs: Observations, sol: RigSolution) -> dict:
    """Check a calibrated rig against the board (no board model): triangulate every view's corners.

    For each view seen by ≥ 2 cameras, corners seen by ≥ 2 cameras are
    triangulated (:func:`mctrack.triangulate.triangulate_points`, all cameras
    kept) in the chosen corner orders. Returns a JSON-able dict:

    - ``cameras[name]``: ``bundle_median_px`` / ``bundle_rms_px`` (residuals of
      the bundle adjustment), ``triangulated_median_px`` (reprojection of the
      triangulated corners), ``views`` used;
    - ``views[v]``: ``square_mean_m``, ``square_rel_error`` (mean of adjacent
      corner distances vs the board's square, relative), ``n_cameras``;
    - ``square_length_m``, ``square_rel_error_max`` (worst view), ``world_view``,
      ``flips`` (views whose corner order was reversed, per camera).
    """
    from ..triangulate import triangulate_points

    C = len(obs.cameras)
    N = len(board.object_points)
    pairs = board.neighbour_pairs
    out = {"square_length_m": board.square_length, "world_view": int(sol.world_view), "cameras": {}, "views": {},
           "flips": {obs.cameras[c]: sorted(int(v) for v, f in sol.flips[c].items() if f) for c in range(C)}}
    tri_err = [[] for _ in range(C)]
    for v in sorted(sol.board_poses):
        uv = np.full((N, C, 2), np.nan)
        mask = np.zeros((N, C), bool)
        for c in range(C):
            if v in obs.views[c]:
                i, p = obs.views[c][v]
                i = board.flipped_ids[i] if sol.flips[c].get(v) else i
                uv[i, c] = p
                mask[i, c] = True
        if (mask.sum(0) > 0).sum() < 2:
            continue
        X, used, proj = triangulate_points(uv, mask, sol.cameras, max_reprojection_error=np.inf)
        err = np.linalg.norm(proj - uv, axis=2)
        for c in range(C):
            tri_err[c].append(err[used[:, c], c])
        ok = np.isfinite(X).all(1)
        pp = pairs[ok[pairs[:, 0]] & ok[pairs[:, 1]]]
        d = np.linalg.norm(X[pp[:, 0]] - X[pp[:, 1]], axis=1)
        out["views"][int(v)] = {"n_cameras": int((mask.sum(0) > 0).sum()), "n_squares": int(len(d)),
                                "square_mean_m": float(d.mean()), "square_median_m": float(np.median(d)),
                                "square_rel_error": float(d.mean() / board.square_length - 1)}
    for c, name in enumerate(obs.cameras):
        r = np.linalg.norm(sol.residuals[sol.obs_cam == c], axis=1)
        e = np.concatenate(tri_err[c]) if tri_err[c] else np.zeros(0)
        out["cameras"][name] = {"bundle_median_px": float(np.median(r)), "bundle_rms_px": float(np.sqrt((r ** 2).mean())),
                                "triangulated_median_px": float(np.median(e)) if e.size else None,
                                "views": len(obs.views[c]),
                                "intrinsics_rms_px": sol.intrinsics_rms.get(name)}
    rel = [abs(v["square_rel_error"]) for v in out["views"].values()]
    out["square_rel_error_max"] = float(max(rel)) if rel else None
    return out
