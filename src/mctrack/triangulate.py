"""Multi-view triangulation of associated tracklet centroids.

For every ``(frame, global_id)`` seen by at least two calibrated cameras:

1. **Solve.** The linear (DLT) least-squares point in undistorted normalised
   image coordinates (Hartley & Zisserman, *Multiple View Geometry*, 2nd ed.,
   §12.2), for all points at once with a batched SVD, then refined by
   ``refine_iterations`` Gauss–Newton steps on the reprojection error in
   undistorted px (the maximum-likelihood point under Gaussian centroid
   noise, H&Z §12.3; the DLT minimises an algebraic error instead).
2. **Gate.** A camera that sees the point behind it (``z_cam <= 0``) or whose
   reprojection error (distorted px) exceeds ``max_reprojection_error`` is
   dropped, worst first, while ≥ 3 cameras remain, and the point is solved
   again. A point is then *rejected* (not written) when any camera it uses
   still sees it behind itself or above the threshold — in particular a
   two-camera point is kept only under the threshold. So no point lies behind
   a camera it was triangulated from and every point has finite quality.
3. **Quality** of each kept point:

   - ``reprojection_error``: mean over the cameras used of the distance in px
     between the observed centroid and the projected 3D point (with distortion),
     over the used image axes (for a border-cut box: the uncut axis only);
   - ``std_x, std_y, std_z``: linearised standard deviation of the position
     along each world axis (m), the square roots of the diagonal of
     ``Σ = σ² (JᵀJ)⁻¹`` with ``J`` the stacked ``(2n, 3)`` px-projection
     Jacobians of the ``n`` cameras used (first-order error propagation,
     H&Z §5.2.3); ``position_std = sqrt(trace Σ / 3)`` is their RMS (m);
   - ``σ`` (px, per image axis) is a shrinkage estimate of the centroid noise:
     ``σ² = (ν₀ σ₀² + ν s²) / (ν₀ + ν)`` with the point's own residual
     variance ``s² = Σ‖e‖² / ν``, ``ν = m − 3`` degrees of freedom (``m`` used
     equations: ``2n`` for ``n`` cameras without a border-cut box), and the
     pooled session value ``σ₀² = max(Σ‖e‖² / Σν, centroid_sigma²)`` as prior
     with ``ν₀ = 8`` (the posterior mean under a scaled-inverse-χ² prior;
     a point's few residuals alone would give a heavy-tailed σ, two-camera
     points only one degree of freedom);
   - ``n_cut``: used cameras whose box touched the image border (module docstring, "Border-cut boxes");
   - ``confidence``: mean detection confidence of the cameras used.

**Border-cut boxes.** A box within ``border_margin`` px of the image edge holds
only the part of the target inside the image, so its centre is biased along
the cut axis (``u`` for the left/right border, ``v`` for top/bottom) but not
along the other. Such an observation gives one equation (its uncut
coordinate) instead of two: its DLT row and Gauss–Newton residual on the cut
axis are left out, the gate measures its reprojection error on the uncut
axis only (``|Δv|`` or ``|Δu|``), and ``J`` of the std holds only the used
rows. A box cut on both axes (a corner) gives none. A point needs
``MIN_EQUATIONS`` = 4 equations from ≥ 2 cameras, one more than its 3
unknowns (a camera is dropped by the gate only while that still holds): an
exactly determined point has no residual, so the reprojection gate could not
check it. Where dropping the cut axes would leave fewer than 4 (e.g. two
cameras, one box cut), :func:`triangulate` uses both coordinates of that
point's boxes, as without the option; so does a point the gate rejects with
its cut axes dropped (it may not drop a camera below 4 equations): it is
solved again with both coordinates. Tried on the hard synthetic scene
(``benchmarks/border_boxes.py``), seeds 0-2: 3D IDF1 0.960 / 0.819 / 0.883,
against 0.957 / 0.811 / 0.884 when such points were solved exactly from 3
equations and 0.955 / 0.810 / 0.862 with both coordinates of every box;
held-out seeds 3-5: 0.880 / 0.841 / 0.783 against 0.876 / 0.838 / 0.774 with
both. ``n_cut`` in the points table counts the used cameras whose box
touched the border either way. Lens distortion couples the two coordinates:
on the pinhole path the cut one is replaced by the reprojection of a first
solve before the uncut one is undistorted again (the refractive path
measures residuals in distorted px already).

**Refraction.** When any camera carries a flat interface
(:class:`~mctrack.calibration.refraction.RefractiveCamera`, calibration
``[interface]`` table), the linear solve is replaced by the least-squares
closest point of the refracted rays (``X = (Σ Pᵢ)⁻¹ Σ Pᵢ oᵢ``, ``Pᵢ = I − dᵢdᵢᵀ``,
origins on the interface; H&Z §12.1's midpoint generalised to N rays), the
Gauss–Newton steps minimise the reprojection error in distorted px *through
the interface* with a central-difference Jacobian of
:meth:`RefractiveCamera.project` (vectorised over points; a step is taken only
where it lowers the error), and reprojection errors, residuals and the
position std (``J`` above) all use the refractive projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .calibration import Camera, border_cut
from .calibration.refraction import projection_jacobian
from .tables import POINTS3D, RESIDUALS

#: Prior degrees of freedom ν₀ of the centroid-noise estimate (see the module docstring).
PRIOR_DOF = 8.0

#: Equations (used image coordinates) a point needs: one more than its 3 unknowns, so that its
#: reprojection error can be gated (see the module docstring, "Border-cut boxes").
MIN_EQUATIONS = 4


@dataclass(frozen=True)
class TriangulationConfig:
    """Settings of :func:`triangulate`.

    ``max_reprojection_error``: px; a camera above it is dropped while ≥ 3
    remain, a point still above it is rejected (default 15 px, about 1.5 % of
    a 1088 px wide view; Pose2Sim's default
    ``reproj_error_threshold_triangulation`` is 15 px).
    ``centroid_sigma``: px per image axis, assumed noise of one centroid, the
    floor of the pooled noise estimate (default 2 px).
    ``use_coasted``: also triangulate coasted (predicted) boxes (default False).
    ``refine_iterations``: Gauss–Newton steps after the linear solve (default 1: from the
    linear solution one step converges — a second changed the RMS error by < 1e-4 mm on the
    4-camera test rig at 2 px noise; 0 = linear solve only).
    ``border_margin``: px; a box edge within this of the image edge (``x1 ≤ m`` or
    ``x2 ≥ W − 1 − m``; ``y`` alike, ``(W, H)`` = :attr:`Camera.size`) marks that axis of the box
    centre as cut: only its other coordinate is used (module docstring). Default 1 px (boxes
    clipped to the image by the detector touch it exactly); ``None`` = both coordinates of every box.
    ``batch_size``: points solved per batch (memory bound).
    """

    max_reprojection_error: float = 15.0
    centroid_sigma: float = 2.0
    use_coasted: bool = False
    refine_iterations: int = 1
    border_margin: float | None = 1.0
    batch_size: int = 65536

    @classmethod
    def from_dict(cls, d: dict | None) -> "TriangulationConfig":
        """Build from the config's ``triangulate`` section (already schema-validated; unknown keys ignored)."""
        d = dict(d or {})
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def observations(tracklets: pd.DataFrame, association: pd.DataFrame, use_coasted: bool = False) -> pd.DataFrame:
    """Join tracklet rows with their global ids.

    Returns one row per ``(frame, global_id, camera_id)`` with ``cx, cy`` (px),
    ``confidence`` and the box ``x1, y1, x2, y2`` (px); coasted rows are
    dropped unless ``use_coasted``. Should
    two rows of one camera share a frame and global id (association forbids
    it), the higher-confidence one is kept.
    """
    obs = tracklets if use_coasted else tracklets[(tracklets["frame_status"] == "detected").to_numpy()]
    # inner join on (camera_id, track_id) and the stable sort by (frame, global_id, camera_id, -confidence),
    # in numpy (same rows and order as DataFrame.merge + sort_values + drop_duplicates, which cost more
    # than the triangulation itself)
    cams = np.union1d(association["camera_id"].astype(str).unique(), obs["camera_id"].astype(str).unique())
    a_cam = np.searchsorted(cams, association["camera_id"].astype(str).to_numpy())
    o_cam = np.searchsorted(cams, obs["camera_id"].astype(str).to_numpy())
    a_tid = association["track_id"].to_numpy(np.int64)
    o_tid = obs["track_id"].to_numpy(np.int64)
    t0 = min(int(a_tid.min()) if len(a_tid) else 0, int(o_tid.min()) if len(o_tid) else 0)
    span = max(int(a_tid.max()) if len(a_tid) else 0, int(o_tid.max()) if len(o_tid) else 0) - t0 + 1
    a_key = a_cam * span + (a_tid - t0)
    o_key = o_cam * span + (o_tid - t0)
    srt = np.argsort(a_key, kind="stable")
    pos = np.minimum(np.searchsorted(a_key[srt], o_key), max(len(srt) - 1, 0))
    hit = (a_key[srt][pos] == o_key) if len(srt) else np.zeros(len(o_key), bool)
    rows = np.flatnonzero(hit)
    gid = association["global_id"].to_numpy()[srt[pos[rows]]]
    frame = obs["frame"].to_numpy()[rows]
    conf = obs["confidence"].to_numpy()[rows]
    cam = o_cam[rows]
    order = np.lexsort((-conf, cam, gid, frame))
    frame, gid, cam, rows = frame[order], gid[order], cam[order], rows[order]
    first = np.ones(len(order), bool)
    first[1:] = (frame[1:] != frame[:-1]) | (gid[1:] != gid[:-1]) | (cam[1:] != cam[:-1])
    rows = rows[first]
    cols = ["frame", "camera_id", "cx", "cy", "confidence", "x1", "y1", "x2", "y2"]
    out = obs.iloc[rows][cols].reset_index(drop=True)
    out.insert(1, "global_id", gid[first])
    return out


@dataclass(frozen=True)
class _Rig:
    """Cameras stacked for vectorised maths: ``R (C, 3, 3)``, ``t (C, 3)``, ``f (C, 2)`` = (fx, fy) px."""

    R: np.ndarray
    t: np.ndarray
    f: np.ndarray

    @classmethod
    def of(cls, cameras: list[Camera]) -> "_Rig":
        return cls(np.stack([c.R for c in cameras]), np.stack([c.tvec for c in cameras]),
                   np.array([[c.K[0, 0], c.K[1, 1]] for c in cameras], dtype=np.float64))

    def to_camera(self, X: np.ndarray) -> np.ndarray:
        """World ``(G, 3)`` → camera coordinates ``(G, C, 3)``."""
        C = len(self.t)
        return (X @ self.R.reshape(C * 3, 3).T).reshape(len(X), C, 3) + self.t

    def jacobian(self, Xc: np.ndarray) -> np.ndarray:
        """``(G, C, 2, 3)`` pinhole Jacobian ∂(u, v)/∂X in px per m (undistorted px).

        ``∂(u, v)/∂X = [[fx, 0, −fx·x/z], [0, fy, −fy·y/z]] · R / z`` for
        camera-frame ``(x, y, z)``, i.e. rows ``fx/z·(R₀ − x/z·R₂)`` and
        ``fy/z·(R₁ − y/z·R₂)`` (distortion ignored: it scales the Jacobian by
        a few % at the image corners only).
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            iz = 1.0 / Xc[..., 2:3]
            xz, yz = Xc[..., 0:1] * iz, Xc[..., 1:2] * iz
            r0, r1, r2 = self.R[:, 0], self.R[:, 1], self.R[:, 2]
            ju = (self.f[:, 0:1] * iz) * (r0 - xz * r2)
            jv = (self.f[:, 1:2] * iz) * (r1 - yz * r2)
        return np.stack([ju, jv], axis=2)


def _normal_equations(J: np.ndarray, used: np.ndarray) -> np.ndarray:
    """``Σ Jᵀ J`` over used rows → ``(G, d, d)``: ``J (G, C, k, d)``, ``used (G, C)`` cameras or ``(G, C, k)`` rows."""
    G, C, k, d = J.shape
    Jm = np.where(used[..., None] if used.ndim == 3 else used[:, :, None, None], J, 0.0).reshape(G, C * k, d)
    return np.matmul(Jm.transpose(0, 2, 1), Jm)


def _inv3(M: np.ndarray) -> np.ndarray:
    """Invert ``(G, 3, 3)`` matrices in closed form (adjugate / det), NaN where singular.

    Vectorised arithmetic, much faster than batched LAPACK on 3 × 3. A matrix
    is singular to working precision when ``|det| <= 1e-12 · max|M|³``. The
    columns of the inverse are the cross products of the rows over ``det``.
    """
    c0 = np.cross(M[:, 1], M[:, 2])
    c1 = np.cross(M[:, 2], M[:, 0])
    c2 = np.cross(M[:, 0], M[:, 1])
    det = np.einsum("gi,gi->g", M[:, 0], c0)
    scale = np.abs(M).max((1, 2)) ** 3 if len(M) else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.stack([c0, c1, c2], axis=2) / det[:, None, None]
    return np.where((np.abs(det) > 1e-12 * scale)[:, None, None], inv, np.nan)


def _solve3(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``(G, 3, 3)`` systems ``M x = b`` (``b (G, 3)``) via :func:`_inv3`; NaN where singular."""
    return np.matmul(_inv3(M), b[..., None])[..., 0]


def _solve_dlt(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Solve ``(G, C, 2, 4)`` DLT rows selected by bool ``w`` (``(G, C)`` cameras or ``(G, C, 2)`` rows) → ``(G, 3)``.

    Inhomogeneous linear least squares (H&Z §12.2): with ``X̃ = (X, 1)`` the
    rows ``a·X̃ = 0`` become ``A₃ X = −a₄``, solved through the 3 × 3 normal
    equations. Equivalent to the homogeneous SVD solution for points at finite
    distance (all of ours) and ~10× faster; the Gauss–Newton refinement then
    makes the estimate maximum-likelihood anyway.
    """
    N = _normal_equations(A, w)
    return _solve3(N[:, :3, :3], -N[:, :3, 3])


def _refine(X: np.ndarray, xy: np.ndarray, ax: np.ndarray, rig: _Rig, iterations: int) -> np.ndarray:
    """Gauss–Newton steps on the undistorted-px reprojection error of ``X (G, 3)``.

    ``xy (G, C, 2)`` observed normalised coordinates, ``ax (G, C, 2)`` used
    axes (residual rows). A step that would put the point behind a used
    camera, or is not finite, is not taken (the point keeps its previous estimate).
    """
    X = X.copy()
    G, C, _ = ax.shape
    used = ax.any(2)
    for _ in range(iterations):
        Xc = rig.to_camera(X)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (xy - Xc[..., :2] / Xc[..., 2:3]) * rig.f  # (G, C, 2) px
        J = np.where(ax[..., None], rig.jacobian(Xc), 0.0).reshape(G, 2 * C, 3)
        r = np.where(ax, r, 0.0).reshape(G, 2 * C, 1)
        Jt = J.transpose(0, 2, 1)
        step = _solve3(np.matmul(Jt, J), np.matmul(Jt, r)[..., 0])
        ok = np.isfinite(step).all(1)
        Xn = X + np.where(ok[:, None], step, 0.0)
        front = ((rig.to_camera(Xn)[..., 2] > 0) | ~used).all(1)
        X = np.where((ok & front & np.isfinite(Xn).all(1))[:, None], Xn, X)
    return X


def is_refractive(cameras: list[Camera]) -> bool:
    """Whether any camera looks through a refractive interface (then the general, ray-based path is used)."""
    return any(getattr(c, "interface", None) is not None for c in cameras)


def _ray_point(o: np.ndarray, d: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Least-squares closest point ``(G, 3)`` of rays ``o, d (G, C, 3)`` (unit ``d``) over ``used (G, C)``.

    ``X = (Σ Pᵢ)⁻¹ Σ Pᵢ oᵢ`` with ``Pᵢ = I − dᵢdᵢᵀ``; NaN where singular.
    """
    u = used[..., None, None]
    P = np.eye(3) - d[..., :, None] * d[..., None, :]
    P = np.where(u, np.nan_to_num(P), 0.0)
    b = np.matmul(P, np.nan_to_num(o)[..., None])[..., 0]
    return _solve3(P.sum(1), b.sum(1))


def _project_all(X: np.ndarray, used: np.ndarray, cameras: list[Camera]) -> np.ndarray:
    """``(G, C, 2)`` distorted px of ``X (G, 3)`` in every used camera (NaN elsewhere / behind)."""
    proj = np.full(used.shape + (2,), np.nan)
    for c, cam in enumerate(cameras):
        sel = used[:, c] & np.isfinite(X).all(1)
        if sel.any():
            proj[sel, c] = cam.project(X[sel])
    return proj


def _jacobians(X: np.ndarray, used: np.ndarray, cameras: list[Camera]) -> np.ndarray:
    """``(G, C, 2, 3)`` numerical px-projection Jacobians (zero where unused or not finite)."""
    J = np.zeros(used.shape + (2, 3))
    for c, cam in enumerate(cameras):
        sel = used[:, c] & np.isfinite(X).all(1)
        if sel.any():
            J[sel, c] = projection_jacobian(cam, X[sel])
    return np.nan_to_num(J, nan=0.0, posinf=0.0, neginf=0.0)


def _refine_general(X: np.ndarray, uv: np.ndarray, ax: np.ndarray, cameras: list[Camera],
                    iterations: int) -> np.ndarray:
    """Gauss–Newton on the distorted-px reprojection error through any camera model (refraction included).

    ``X (G, 3)`` start, ``uv (G, C, 2)`` observed px, ``ax (G, C, 2)`` used axes. Numerical
    Jacobians (:func:`~mctrack.calibration.refraction.projection_jacobian`); a
    step is kept only where it lowers the summed squared error (so a point
    never moves behind a camera, whose projection is NaN = infinite error).
    """
    X = X.copy()
    G, C, _ = ax.shape
    used = ax.any(2)

    def cost(Y):
        e = np.where(ax, uv - _project_all(Y, used, cameras), 0.0)
        return np.where(np.isnan(e), np.inf, e**2).sum((1, 2)), np.nan_to_num(e)

    c0, r = cost(X)
    for _ in range(iterations):
        J = np.where(ax[..., None], _jacobians(X, used, cameras), 0.0).reshape(G, 2 * C, 3)
        Jt = J.transpose(0, 2, 1)
        step = _solve3(np.matmul(Jt, J), np.matmul(Jt, r.reshape(G, 2 * C, 1))[..., 0])
        Xn = X + np.where(np.isfinite(step), step, 0.0)
        c1, r1 = cost(Xn)
        better = np.isfinite(step).all(1) & (c1 < c0)
        X[better], c0[better], r[better] = Xn[better], c1[better], r1[better]
    return X


def _n_equations(ax: np.ndarray | None, used: np.ndarray) -> np.ndarray:
    """``(G,)`` equations (used axes) of the used cameras: ``ax (G, C, 2)`` (None = both), ``used (G, C)``."""
    return 2 * used.sum(1) if ax is None else (ax & used[..., None]).sum((1, 2))


def _axes(mask: np.ndarray, axes: np.ndarray | None) -> np.ndarray:
    """``(G, C, 2)`` usable axes: both where ``mask (G, C)``, restricted by ``axes`` when given."""
    ax = np.repeat(np.asarray(mask, bool)[..., None], 2, axis=-1)
    return ax if axes is None else ax & np.asarray(axes, bool)


def triangulate_points(uv: np.ndarray, mask: np.ndarray, cameras: list[Camera],
                       max_reprojection_error: float = 15.0,
                       refine_iterations: int = 1,
                       axes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate ``G`` points from up to ``C`` cameras at once, gated (see the module docstring).

    Parameters
    ----------
    uv : (G, C, 2) float64
        Observed px (distorted image); ignored where ``mask`` is False.
    mask : (G, C) bool
        Which cameras observe each point.
    cameras : list of C :class:`~mctrack.calibration.Camera`
    max_reprojection_error : float
        px; the worst camera (behind counts as worst) is dropped and the point
        re-solved while one is above it, ≥ 3 cameras are used and
        ``MIN_EQUATIONS`` would remain; a point whose used cameras still include one
        behind it or above it is rejected. A camera's error is measured on its
        used axes only.
    refine_iterations : int
        Gauss–Newton steps after each DLT solve (0 = plain DLT). With a
        refractive camera: closest point of the refracted rays, then these
        steps through the interface (module docstring).
    axes : (G, C, 2) bool, optional
        Which image coordinates ``(u, v)`` of each observation give an
        equation (False = border-cut axis, module docstring); None = both.
        An observation with neither is not used; a point needs
        ``MIN_EQUATIONS`` (4) equations from ≥ 2 cameras, else it is not
        solved. With ``axes`` None or all True the result is the
        two-coordinate solve, bit for bit.

    Returns
    -------
    X : (G, 3) float64 world points; NaN where fewer than 2 cameras or 4
        equations observe the point or it was rejected
    used : (G, C) bool cameras used (all False for a rejected point); the
        equations used are ``axes & used[..., None]``
    proj : (G, C, 2) float64 reprojection of the final solve in each camera
        tried (px; NaN where behind the camera or not tried)
    """
    G, C = mask.shape
    if axes is None or np.asarray(axes, bool)[mask].all():
        ax, axn = mask[..., None], None  # both axes everywhere: (G, C, 1) broadcasts, counts as 2 equations
    else:
        ax = axn = _axes(mask, axes)
        mask = ax.any(2)
    if is_refractive(cameras):
        orig = np.full((G, C, 3), np.nan)
        D = np.full((G, C, 3), np.nan)
        for c, cam in enumerate(cameras):
            sel = mask[:, c]
            if sel.any():
                orig[sel, c], D[sel, c] = cam.rays(uv[sel, c])

        def solve(todo, use):  # start: closest point of the whole rays (cut ones too); refined on the used axes
            return _refine_general(_ray_point(orig[todo], D[todo], use.any(2)), uv[todo], use, cameras,
                                   refine_iterations)
    else:
        rig = _Rig.of(cameras)
        xy = np.full((G, C, 2), np.nan)
        A = np.zeros((G, C, 2, 4))

        def set_rows(sel, c, px):  # undistort px (n, 2) of points sel in camera c, and their DLT rows
            cam = cameras[c]
            xy[sel, c] = cam.normalize(px)
            Rt = np.hstack([cam.R, cam.tvec[:, None]])
            rows = np.stack([xy[sel, c, :1] * Rt[2] - Rt[0], xy[sel, c, 1:2] * Rt[2] - Rt[1]], axis=1)  # (n, 2, 4)
            rows /= np.linalg.norm(rows, axis=2, keepdims=True)
            A[sel, c] = rows

        for c in range(C):  # per camera (C ≤ 12): undistortion is one OpenCV call each
            sel = mask[:, c]
            if sel.any():
                set_rows(sel, c, uv[sel, c])

        def solve(todo, use):
            return _refine(_solve_dlt(A[todo], use), xy[todo], use, rig, refine_iterations)

        # A cut coordinate still enters the undistortion of the other one (lens distortion couples
        # u and v): replace it by the reprojection of a first solve and undistort again.
        part = mask & ~ax.all(2) if axn is not None else np.zeros((G, C), bool)
        cutp = np.flatnonzero(part.any(1) & (mask.sum(1) >= 2) & (_n_equations(axn, mask) >= MIN_EQUATIONS))
        if cutp.size:
            X0 = solve(cutp, ax[cutp])
            for c, cam in enumerate(cameras):
                s = part[cutp, c]
                if s.any():
                    px, p = uv[cutp[s], c].copy(), cam.project(X0[s])
                    fill = ~ax[cutp[s], c] & np.isfinite(p)
                    px[fill] = p[fill]
                    set_rows(cutp[s], c, px)
    used = mask.copy()
    proj = np.full((G, C, 2), np.nan)
    X = np.full((G, 3), np.nan)
    err = np.full((G, C), np.inf)
    todo = np.flatnonzero((used.sum(1) >= 2) & (_n_equations(axn, used) >= MIN_EQUATIONS))
    while todo.size:
        X[todo] = solve(todo, ax[todo] & used[todo, :, None])
        for c, cam in enumerate(cameras):
            sel = todo[used[todo, c]]
            proj[sel, c] = cam.project(X[sel])  # NaN behind the camera
        d = proj[todo] - uv[todo]
        e = np.linalg.norm(d if axn is None else np.where(axn[todo], d, 0.0), axis=2)
        e = np.where(np.isnan(e), np.inf, e)  # behind a camera (or a failed solve) counts as worst
        err[todo] = e
        e = np.where(used[todo], e, -np.inf)
        worst = np.argmax(e, axis=1)
        rest = used[todo].copy()
        rest[np.arange(todo.size), worst] = False
        bad = ((e[np.arange(todo.size), worst] > max_reprojection_error) & (used[todo].sum(1) >= 3)
               & (_n_equations(None if axn is None else axn[todo], rest) >= MIN_EQUATIONS))
        todo = todo[bad]
        used[todo, worst[bad]] = False
    worst_err = np.where(used, err, -np.inf).max(1)
    keep = ((used.sum(1) >= 2) & (_n_equations(axn, used) >= MIN_EQUATIONS) & (worst_err <= max_reprojection_error)
            & np.isfinite(X).all(1))
    X[~keep] = np.nan
    used[~keep] = False
    return X, used, proj


def position_cov(X: np.ndarray, used: np.ndarray, cameras: list[Camera],
                 axes: np.ndarray | None = None) -> np.ndarray:
    """``(G, 3, 3)`` unit-noise position covariance ``(JᵀJ)⁻¹`` in m² per px² (NaN: < 2 cameras or 3 equations).

    ``X (G, 3)`` world points, ``used (G, C)`` cameras, ``axes (G, C, 2)``
    bool the image axes that gave an equation (None = both; a border-cut
    axis contributes no row to ``J``); ``J``: the pinhole
    Jacobian, or with a refractive camera the numerical Jacobian of the
    projection through the interface. Multiply by the
    centroid noise variance σ² (px², per image axis) to get the covariance of
    the maximum-likelihood point (first-order propagation, H&Z §5.2.3).
    """
    rows = used if axes is None else np.asarray(axes, bool) & used[..., None]
    ok = (used.sum(1) >= 2) & (_n_equations(axes, used) >= 3) & np.isfinite(X).all(1)
    out = np.full((len(X), 3, 3), np.nan)
    if ok.any():
        if is_refractive(cameras):
            J = _jacobians(X[ok], used[ok], cameras)
        else:
            rig = _Rig.of(cameras)
            J = rig.jacobian(rig.to_camera(X[ok]))
        out[ok] = _inv3(_normal_equations(J, rows[ok]))
    return out


def noise_sigma(err: np.ndarray, used: np.ndarray, floor: float, prior_dof: float = PRIOR_DOF,
                axes: np.ndarray | None = None) -> np.ndarray:
    """Per-point centroid noise σ (px per image axis) from reprojection errors ``err (G, C)`` px.

    Shrinkage of each point's residual variance toward the pooled value (see
    the module docstring); ``floor`` (px) bounds the pooled value from below.
    ``err`` is measured on the used axes ``axes (G, C, 2)`` (None = both), whose
    count sets the degrees of freedom (``equations − 3``).
    Returns ``(G,)``; NaN where fewer than 2 cameras are used.
    """
    n = used.sum(1)
    dof = np.maximum(_n_equations(axes, used) - 3, 0).astype(np.float64)
    ss = np.where(used, np.nan_to_num(err, nan=0.0, posinf=0.0) ** 2, 0.0).sum(1)
    pooled = ss[n >= 2].sum() / max(dof[n >= 2].sum(), 1.0)
    s0 = max(pooled, floor**2)
    sigma2 = (prior_dof * s0 + ss) / (prior_dof + dof)
    return np.where(n >= 2, np.sqrt(sigma2), np.nan)


def position_std(X: np.ndarray, used: np.ndarray, cameras: list[Camera], sigma_px: np.ndarray,
                 axes: np.ndarray | None = None) -> np.ndarray:
    """``(G, 3)`` linearised standard deviation along world x, y, z (m) of triangulated points.

    ``X (G, 3)``, ``used (G, C)``, ``sigma_px (G,)`` centroid noise (px per
    image axis), ``axes (G, C, 2)`` the used image axes (None = both):
    ``sqrt(diag(σ² (JᵀJ)⁻¹))`` from the used equations (see :func:`position_cov`).
    NaN where fewer than 2 cameras are used.
    """
    cov = position_cov(X, used, cameras, axes)
    var = np.diagonal(cov, axis1=1, axis2=2)
    return np.asarray(sigma_px)[:, None] * np.sqrt(np.clip(var, 0, None))


def _border_cut(obs: pd.DataFrame, sizes: list[tuple[int, int]], cam: np.ndarray,
                margin: float | None) -> np.ndarray:
    """``(N, 2)`` bool: the ``u`` / ``v`` coordinate of each observation's box centre is border-cut.

    ``obs`` rows with ``x1, y1, x2, y2`` px, ``cam (N,)`` index into ``sizes``
    (``(W, H)`` px per camera); cut along ``u`` where ``x1 ≤ margin`` or
    ``x2 ≥ W − 1 − margin`` (``v`` alike with ``H``; :func:`~mctrack.calibration.border_cut`).
    ``margin`` None: nothing is cut.
    """
    if margin is None:
        return np.zeros((len(obs), 2), bool)
    return border_cut(*(obs[k].to_numpy() for k in ("x1", "y1", "x2", "y2")), np.asarray(sizes, np.float64)[cam],
                      margin, 1.0 + margin)


def triangulate(tracklets: pd.DataFrame, association: pd.DataFrame, cameras: dict[str, Camera],
                cfg: TriangulationConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Triangulate every ``(frame, global_id)`` seen by ≥ 2 cameras; gated (module docstring).

    Parameters
    ----------
    tracklets : TRACKLET2D table of all cameras of the session.
    association : ASSOCIATION table mapping ``(camera_id, track_id)`` → ``global_id``.
    cameras : calibrated cameras keyed by sheet ``camera_id``; tracklets of
        cameras not in it are ignored.
    cfg : :class:`TriangulationConfig`.

    Returns
    -------
    points : POINTS3D table (one row per kept point, world units); every
        quality column is finite; ``n_cut`` counts its used cameras whose box
        was border-cut (``cfg.border_margin``; only the uncut coordinate used
        where the point keeps ``MIN_EQUATIONS``, module docstring).
    residuals : RESIDUALS table (one row per camera used by a kept point);
        ``u_obs, v_obs`` the observed centre as given (the cut coordinate
        too), ``residual_px`` the distance over the used axes (for a box
        whose cut axis was dropped ``|Δ|`` along the uncut one).

    The number of rejected points is available as ``points.attrs["n_rejected"]``
    (observed by ≥ 2 cameras but not kept: behind a camera, above the
    reprojection threshold, or from near-parallel rays with no finite std).
    """
    cfg = cfg or TriangulationConfig()
    names = sorted(cameras)
    obs = observations(tracklets, association, cfg.use_coasted)
    obs = obs[obs["camera_id"].isin(names)]
    cam_idx = pd.Categorical(obs["camera_id"], categories=names).codes
    cut = _border_cut(obs, [cameras[n].size for n in names], cam_idx, cfg.border_margin)
    frame = obs["frame"].to_numpy(np.int64)
    gid = obs["global_id"].to_numpy(np.int64)
    g0 = int(gid.min()) if len(gid) else 0
    span = int(gid.max()) - g0 + 1 if len(gid) else 1
    code, g = np.unique(frame * span + (gid - g0), return_inverse=True)  # one int64 per (frame, global_id)
    uniq = np.column_stack([code // span, code % span + g0]).astype(np.int64)
    g = g.ravel()
    n_per = np.bincount(g, minlength=len(uniq))
    keep_groups = np.flatnonzero(n_per >= 2)
    remap = np.full(len(uniq), -1)
    remap[keep_groups] = np.arange(keep_groups.size)
    sel = remap[g] >= 0
    g, cam_idx, cut = remap[g[sel]], cam_idx[sel], cut[sel]
    cx = obs["cx"].to_numpy(np.float64)[sel]
    cy = obs["cy"].to_numpy(np.float64)[sel]
    conf = obs["confidence"].to_numpy(np.float64)[sel]
    uniq = uniq[keep_groups]
    G, C = len(uniq), len(names)
    cams = [cameras[n] for n in names]

    uv = np.full((G, C, 2), np.nan)
    cf = np.full((G, C), np.nan)
    uv[g, cam_idx, 0], uv[g, cam_idx, 1] = cx, cy
    cf[g, cam_idx] = conf
    boxcut = np.zeros((G, C), bool)
    ax = None  # (G, C, 2) equations of each box when one is border-cut
    if cut.any():
        boxcut[g, cam_idx] = cut.any(1)
        ax = np.zeros((G, C, 2), bool)
        ax[g, cam_idx] = ~cut
        weak = ax.sum((1, 2)) < MIN_EQUATIONS  # too few equations left: both coordinates of every box, as before
        ax[weak] = np.isfinite(uv[weak, :, :1])
    X = np.full((G, 3), np.nan)
    used = np.zeros((G, C), bool)
    proj = np.full((G, C, 2), np.nan)
    for b0 in range(0, G, cfg.batch_size):
        b = slice(b0, min(b0 + cfg.batch_size, G))
        X[b], used[b], proj[b] = triangulate_points(uv[b], np.isfinite(uv[b, :, 0]), cams,
                                                    cfg.max_reprojection_error, cfg.refine_iterations,
                                                    None if ax is None else ax[b])
    # rejected with a cut axis dropped (the gate may not drop a camera below MIN_EQUATIONS): both coordinates
    pres = np.isfinite(uv[..., :1])
    retry = np.zeros(0, int) if ax is None else np.flatnonzero(~used.any(1) & (ax != pres).any((1, 2)))
    for b0 in range(0, retry.size, cfg.batch_size):
        b = retry[b0:b0 + cfg.batch_size]
        ax[b] = pres[b]
        X[b], used[b], proj[b] = triangulate_points(uv[b], pres[b, :, 0], cams, cfg.max_reprojection_error,
                                                    cfg.refine_iterations)
    ok = used.any(1)
    X, used, proj, uv, cf, boxcut, key = X[ok], used[ok], proj[ok], uv[ok], cf[ok], boxcut[ok], uniq[ok]
    ax = None if ax is None else ax[ok]
    err = np.linalg.norm(proj - uv if ax is None else np.where(ax, proj - uv, 0.0), axis=2)
    err_used = np.where(used, err, np.nan)
    with np.errstate(invalid="ignore"):
        mean_err = np.nanmean(err_used, axis=1) if len(X) else np.zeros(0)
        conf_mean = np.nanmean(np.where(used, cf, np.nan), axis=1) if len(X) else np.zeros(0)
    sigma = noise_sigma(err, used, cfg.centroid_sigma, axes=ax)
    std = position_std(X, used, cams, sigma, ax)
    # degenerate geometry (near-parallel rays): singular JᵀJ, no finite std -> rejected, never written
    fin = np.isfinite(std).all(1) & np.isfinite(mean_err)
    if not fin.all():
        X, used, proj, uv, cf, boxcut, key = X[fin], used[fin], proj[fin], uv[fin], cf[fin], boxcut[fin], key[fin]
        ax = None if ax is None else ax[fin]
        err, mean_err, conf_mean, std = err[fin], mean_err[fin], conf_mean[fin], std[fin]
        ok[np.flatnonzero(ok)[~fin]] = False
    points = POINTS3D.coerce(pd.DataFrame({
        "frame": key[:, 0], "global_id": key[:, 1], "x": X[:, 0], "y": X[:, 1], "z": X[:, 2],
        "reprojection_error": mean_err, "n_cameras": used.sum(1), "position_std": np.sqrt((std**2).mean(1)),
        "std_x": std[:, 0], "std_y": std[:, 1], "std_z": std[:, 2],
        "confidence": np.nan_to_num(conf_mean, nan=0.0), "n_cut": (used & boxcut).sum(1)}))
    gi, ci = np.nonzero(used)
    residuals = RESIDUALS.coerce(pd.DataFrame({
        "frame": key[gi, 0], "global_id": key[gi, 1], "camera_id": np.asarray(names, dtype=object)[ci],
        "u_obs": uv[gi, ci, 0], "v_obs": uv[gi, ci, 1], "u_proj": proj[gi, ci, 0], "v_proj": proj[gi, ci, 1],
        "residual_px": err[gi, ci]}))
    points.attrs["n_rejected"] = int(G - ok.sum())
    return points, residuals
