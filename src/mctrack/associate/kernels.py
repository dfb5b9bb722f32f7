"""Compiled per-frame kernels of the frames tracker (:mod:`.frames`), with numba.

The per-frame 3D tracker runs one Python iteration per frame over a handful
of tracks and rows (4 cameras × 10 targets: ~40 rows, ~10 tracks). At that
size each numpy call costs about 1 µs of dispatch for a few nanoseconds of
arithmetic, and a frame took ~180 of them. These kernels do the arithmetic
of the hottest steps in one compiled call each (``numba.njit``, compiled on
first use and cached next to this file, or in numba's user-wide cache where
that is not writable):

- :func:`project_pinhole` — projection of the tracks into every camera;
- :func:`gate_costs` — gated assignment costs of the frame's rows;
- :func:`assign_mutual` — the solver-free assignment of :func:`.frames._assign_mutual`;
- :func:`intersect_rays` — least-squares ray intersection per track;
- :func:`predict_cv` — constant-velocity Kalman prediction;
- :func:`update_tracks` — the tracks' size and Kalman update.

Each computes exactly the operations of the numpy expressions it replaced,
in the same order (numba does not reorder or fuse floating-point operations
without ``fastmath``), so results are bit-identical to them; the docstrings
give each formula. ``tests/test_associate_kernels.py`` and
``tests/test_associate_frames.py`` check every kernel against a plain numpy
statement of its formula (and OpenCV's projection, the LAP solver).

Compilation takes a few seconds on the first call after installing or
editing this file; later processes load the compiled code from the cache
(about 0.3 s per process).
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def project_pinhole(R, t, X, k1, k2, k3, p1, p2, fx, fy, cx, cy, W, H):  # pragma: no cover - compiled
    """World points into pinhole cameras with OpenCV's 5-coefficient distortion.

    ``R (C, 3, 3)``, ``t (C, 3)`` world → camera (m); ``X (M, 3)`` world
    points (m); per-camera ``k1, k2, k3, p1, p2, fx, fy, cx, cy, W, H (C,)``.
    Returns ``uv (C, M, 2)`` px, NaN where the point is behind the camera
    (depth ≤ 0) or outside ``[-0.5, W) × [-0.5, H)``, and ``depth (C, M)``
    (camera-frame z, m). The model is ``cv2.projectPoints``' (OpenCV
    documentation, "Detailed description"): ``x' = x/z``, ``r² = x'² + y'²``,
    ``x'' = x'(1 + k1 r² + k2 r⁴ + k3 r⁶) + 2 p1 x'y' + p2 (r² + 2x'²)``,
    ``y'' = y'(…) + p1 (r² + 2y'²) + 2 p2 x'y'``, ``u = fx x'' + cx`` (skew
    ignored, as OpenCV). The camera-frame sums are taken as
    ``(R₀X₀ + R₂X₂) + R₁X₁ + t``, the order of ``np.einsum("cij,mj->cmi")``.
    """
    C = R.shape[0]
    M = X.shape[0]
    uv = np.empty((C, M, 2))
    depth = np.empty((C, M))
    for c in range(C):
        for m in range(M):
            x0, x1, x2 = X[m, 0], X[m, 1], X[m, 2]
            xc = (R[c, 0, 0] * x0 + R[c, 0, 2] * x2) + R[c, 0, 1] * x1 + t[c, 0]
            yc = (R[c, 1, 0] * x0 + R[c, 1, 2] * x2) + R[c, 1, 1] * x1 + t[c, 1]
            z = (R[c, 2, 0] * x0 + R[c, 2, 2] * x2) + R[c, 2, 1] * x1 + t[c, 2]
            depth[c, m] = z
            x = xc / z
            y = yc / z
            sx = x * x
            sy = y * y
            r2 = sx + sy
            rad = 1 + r2 * (k1[c] + r2 * (k2[c] + r2 * k3[c]))
            dx = x * rad
            dy = y * rad
            dx += (2 * p1[c]) * x * y
            dy += p1[c] * (r2 + 2 * sy)
            dx += p2[c] * (r2 + 2 * sx)
            dy += (2 * p2[c]) * x * y
            u = dx * fx[c] + cx[c]
            v = dy * fy[c] + cy[c]
            if z > 0 and u >= -0.5 and u < W[c] and v >= -0.5 and v < H[c]:
                uv[c, m, 0] = u
                uv[c, m, 1] = v
            else:
                uv[c, m, 0] = np.nan
                uv[c, m, 1] = np.nan
    return uv, depth


@numba.njit(**_JIT)
def gate_costs(uvp, depth, rc, cxy, w, h, tau0_sq, fpx, size_px, size_a, p00, confirmed, gate2, last_track,
               recent, act, bonus, big):  # pragma: no cover - compiled
    """Gated assignment costs of one frame's rows against the live tracks (step 2 of :mod:`.frames`).

    Rows (``R``): camera ``rc``, centre ``cxy (R, 2)`` px, box ``w, h`` px,
    ``tau0_sq = (box_fraction·s)² + centroid_sigma²`` px², focal length
    ``fpx`` px, box size ``size_px = sqrt(w·h)`` px, ``last_track`` the track
    of the row's tracklet's last assigned row and ``recent`` whether that was
    within ``continuity_frames``. Tracks (``A``, ids ``act``): projections
    ``uvp (C, A, 2)`` px and ``depth (C, A)`` m (:func:`project_pinhole`),
    size ``size_a`` m, position variance ``p00`` m², ``confirmed``.

    Returns ``d2 (R, A)`` = ``(du² + dv²) / (tau0_sq + p00 (f/z)²)``, ``ok
    (R, A)`` = ``d2 ≤ gate2`` and the row not larger than 3 target sizes at
    the track's depth, and no merged blob (a row larger than 1.3 target
    sizes whose box holds the predictions of ≥ 2 confirmed gated tracks), and
    ``c2 (R, A)`` = ``d2 − bonus`` for continuity, ``big`` outside the gate.
    """
    R = rc.shape[0]
    A = act.shape[0]
    d2 = np.empty((R, A))
    ok = np.empty((R, A), np.bool_)
    c2 = np.empty((R, A))
    for r in range(R):
        c = rc[r]
        n_inside = 0
        for a in range(A):
            fr = fpx[r] / depth[c, a]
            du = cxy[r, 0] - uvp[c, a, 0]
            dv = cxy[r, 1] - uvp[c, a, 1]
            d = (du * du + dv * dv) / (tau0_sq[r] + p00[a] * (fr * fr))
            d2[r, a] = d
            g = (d <= gate2) and not (size_px[r] > (3.0 * size_a[a]) * fr)
            ok[r, a] = g
            if g and confirmed[a] and size_px[r] > (1.3 * size_a[a]) * fr and \
                    abs(du) <= w[r] / 2 and abs(dv) <= h[r] / 2:
                n_inside += 1
        if n_inside >= 2:
            for a in range(A):
                ok[r, a] = False
        for a in range(A):
            if ok[r, a]:
                if recent[r] and last_track[r] == act[a]:
                    c2[r, a] = d2[r, a] - bonus
                else:
                    c2[r, a] = d2[r, a] - 0.0
            else:
                c2[r, a] = big
    return d2, ok, c2


@numba.njit(**_JIT)
def assign_mutual(rc, c2, d2, act, n_ok, margin, assigned, dn):  # pragma: no cover - compiled
    """:func:`.frames._assign_mutual` compiled: True (and ``assigned``, ``dn`` filled) when every row with a
    gated track has its own cheapest track, cheaper than its second by more than ``margin`` (relative).

    ``rc (R,)`` camera of each row, ``c2, d2 (R, A)`` costs and squared
    normalised distances, ``act (A,)`` track ids, ``n_ok (R,)`` gated tracks per row. The
    cheapest track is the first minimum of the row (``np.argmin``); the
    second cheapest the row's second smallest value (``np.partition``).
    """
    R, A = c2.shape
    col = np.full(R, -1, np.int64)
    for r in range(R):
        if n_ok[r] == 0:
            continue
        best = 0
        for a in range(1, A):
            if c2[r, a] < c2[r, best]:
                best = a
        if A >= 2:
            second = np.inf
            for a in range(A):
                if a != best and c2[r, a] < second:
                    second = c2[r, a]
            lo = c2[r, best]
            if not (second - lo > margin * max(abs(lo), 1.0)):
                return False
        for q in range(r):
            if col[q] == best and rc[q] == rc[r]:
                return False
        col[r] = best
    for r in range(R):
        if col[r] >= 0:
            assigned[r] = act[col[r]]
            dn[r] = np.sqrt(d2[r, col[r]])
    return True


@numba.njit(**_JIT)
def intersect_rays(g, w, G):  # pragma: no cover - compiled
    """Least-squares intersection of the rays of each group (the midpoint method; :func:`.frames._intersect`).

    ``g (n,)`` group of each ray (its rays in camera order), ``w (n, 9)`` the
    per-ray terms ``dx², dy², dz², dx·dy, dx·dz, dy·dz`` and ``o − d (d·o)``
    (:func:`.frames._ray_weights`). Solves ``Σ(I − d dᵀ) X = Σ(I − d dᵀ) o``
    per group in closed form (adjugate / determinant, the products and sums
    in the order written in :func:`.frames._intersect`). Returns ``X (G, 3)``
    (NaN for groups with < 2 rays or ``|det| ≤ 1e-12``) and the ray counts
    ``n (G,)``.
    """
    n = np.zeros(G, np.int64)
    s = np.zeros((G, 9))
    for i in range(g.shape[0]):
        n[g[i]] += 1
        for k in range(9):
            s[g[i], k] += w[i, k]
    X = np.empty((G, 3))
    for j in range(G):
        a = n[j] - s[j, 0]
        e = n[j] - s[j, 1]
        i_ = n[j] - s[j, 2]
        b = -s[j, 3]
        c = -s[j, 4]
        f = -s[j, 5]
        A0 = e * i_ - f * f
        A1 = c * f - b * i_
        A2 = b * f - c * e
        B1 = a * i_ - c * c
        B2 = b * c - a * f
        C2 = a * e - b * b
        det = a * A0 + b * A1 + c * A2
        b0, b1, b2 = s[j, 6], s[j, 7], s[j, 8]
        if n[j] < 2 or not (abs(det) > 1e-12):
            X[j, 0] = np.nan
            X[j, 1] = np.nan
            X[j, 2] = np.nan
        else:
            X[j, 0] = (A0 * b0 + A1 * b1 + A2 * b2) / det
            X[j, 1] = (A1 * b0 + B1 * b1 + B2 * b2) / det
            X[j, 2] = (A2 * b0 + B2 * b1 + C2 * b2) / det
    return X, n


@numba.njit(**_JIT)
def predict_cv(X, V, P, size, act, dt, c4, c3, motion_noise):  # pragma: no cover - compiled
    """Constant-velocity prediction of tracks ``act`` over ``dt`` frames, in place (:func:`.frames._predict`).

    ``X, V (T, 3)`` position m and velocity m/frame, ``P (T, 2, 2)`` the
    position/velocity covariance shared by the axes, ``size (T,)`` m;
    ``c4 = dt⁴``, ``c3 = dt³``. White-noise acceleration ``qa = (motion_noise
    · size)²`` (Bar-Shalom et al. 2001, §6.3.2): ``p00 + 2dt p01 + dt² p11 +
    qa dt⁴/4``, ``p01 + dt p11 + qa dt³/2``, ``p11 + qa dt²``.
    """
    for q in range(act.shape[0]):
        j = act[q]
        for k in range(3):
            X[j, k] += V[j, k] * dt
        p00, p01, p11 = P[j, 0, 0], P[j, 0, 1], P[j, 1, 1]
        qa = (motion_noise * size[j]) * (motion_noise * size[j])
        s0 = p00 + p01 * (2 * dt)
        s1 = p01 + p11 * dt
        s2 = p11 + p11 * 0.0
        s0 += p11 * (dt * dt)
        s1 += p11 * 0.0
        s2 += p11 * 0.0
        s0 += (qa * c4) * 0.25
        s1 += (qa * c3) * 0.5
        s2 += (qa * dt) * dt
        P[j, 0, 0] = s0
        P[j, 0, 1] = s1
        P[j, 1, 0] = s1
        P[j, 1, 1] = s2


@numba.njit(**_JIT)
def _max0(x):  # pragma: no cover - compiled
    """``np.maximum(x, 0)`` for a scalar (NaN propagates)."""
    return x if (x != x or x > 0.0) else 0.0


@numba.njit(**_JIT)
def update_tracks(X, V, P, size, streak, last_multi, act, Xm, n, ap, r, rh, o_all, d_all, size_px, f_px, R2, t2,
                  t):  # pragma: no cover - compiled
    """Size and Kalman update of the tracks with rows (step 3 of :mod:`.frames`), in place.

    Tracks ``act (A,)`` (ids into ``X, V (T, 3)``, ``P (T, 2, 2)``, ``size,
    streak, last_multi (T,)``); ``Xm (A, 3)`` their triangulated rows and
    ``n (A,)`` the ray count (:func:`intersect_rays`), ``Xm`` filled in place
    for one-ray tracks. Rows: ``ap`` position of the row's track in ``act``,
    ``r`` index into the frame's ``o_all, d_all (n, 3)`` rays, ``size_px``
    box size, ``rh`` camera, ``f_px (C,)`` focal length px, ``R2, t2`` the
    cameras' third rotation row and translation (camera-frame depth).

    - A track with one ray, or whose rays have no finite intersection, is
      measured at the point of its first ray nearest to its prediction
      (ray parameter clipped at 0).
    - Size (m): ``box px × depth / f`` averaged over the track's rows,
      EMA ``0.9 old + 0.1 new`` (the new value alone for a new track).
    - Kalman update with isotropic measurement noise ``0.15`` target sizes
      for a multi-camera point, ``0.3`` for a one-ray point (gains
      ``k0 = p00 / (p00 + σ²)``, ``k1 = p10 / (p00 + σ²)``; Bar-Shalom et al.
      2001, §5.2).
    - ``streak`` counts consecutive multi-camera updates; ``last_multi``
      is ``t`` for them.
    """
    A = act.shape[0]
    first = np.full(A, -1, np.int64)
    for q in range(ap.shape[0] - 1, -1, -1):
        first[ap[q]] = q
    single = np.zeros(A, np.bool_)
    for a in range(A):
        if n[a] >= 1:
            fin = Xm[a, 0] == Xm[a, 0] and Xm[a, 1] == Xm[a, 1] and Xm[a, 2] == Xm[a, 2] and \
                abs(Xm[a, 0]) < np.inf and abs(Xm[a, 1]) < np.inf and abs(Xm[a, 2]) < np.inf
            if not (n[a] >= 2 and fin):
                single[a] = True
                k = r[first[a]]
                j = act[a]
                s_ = ((X[j, 0] - o_all[k, 0]) * d_all[k, 0] + (X[j, 2] - o_all[k, 2]) * d_all[k, 2]) + \
                    (X[j, 1] - o_all[k, 1]) * d_all[k, 1]
                s_ = _max0(s_)
                for c in range(3):
                    Xm[a, c] = o_all[k, c] + s_ * d_all[k, c]
    sz_sum = np.zeros(A)
    for q in range(ap.shape[0]):
        a = ap[q]
        c = rh[q]
        dep = ((R2[c, 0] * Xm[a, 0] + R2[c, 2] * Xm[a, 2]) + R2[c, 1] * Xm[a, 1]) + t2[c]
        sz_sum[a] += size_px[r[q]] * _max0(dep) / f_px[c]
    for a in range(A):
        if n[a] < 1:
            continue
        j = act[a]
        sz_t = sz_sum[a] / max(n[a], 1)
        old = size[j]
        sz = 0.9 * old + 0.1 * sz_t if old > 0 else sz_t
        size[j] = sz
        good_multi = n[a] >= 2 and not single[a]
        rm = (0.15 if good_multi else 0.3) * sz
        p00, p01, p10, p11 = P[j, 0, 0], P[j, 0, 1], P[j, 1, 0], P[j, 1, 1]
        Sx = p00 + rm * rm
        k0 = p00 / Sx
        k1 = p10 / Sx
        for c in range(3):
            innov = Xm[a, c] - X[j, c]
            X[j, c] = X[j, c] + k0 * innov
            V[j, c] += k1 * innov
        P[j, 0, 0] = (1 - k0) * p00
        P[j, 0, 1] = (1 - k0) * p01
        P[j, 1, 0] = (1 - k0) * p10
        P[j, 1, 1] = p11 - k1 * p01
        if good_multi:
            streak[j] += 1
            last_multi[j] = t
        else:
            streak[j] = 0
