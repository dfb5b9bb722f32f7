"""The compiled per-frame kernels of the frames tracker against numpy statements of their formulas.

Projection, ray intersection, prediction and the solver-free assignment are
checked in ``test_associate_frames.py`` (written-out formulas, OpenCV, the
LAP); here the gate costs and the track update.
"""

import numpy as np

from mctrack.associate import kernels

_BIG = 1e12


def _gate_numpy(uvp, depth, rc, cxy, w, h, tau0_sq, fpx, size_px, size_a, p00, conf, gate, last_track, recent, act,
                bonus):
    """The gate of the frames tracker's step 2 as broadcast numpy (the form before the kernel)."""
    U, Dp = uvp[rc], depth[rc]
    fr = fpx[:, None] / Dp
    duv = cxy[:, None, :] - U
    sq = duv * duv
    d2 = (sq[..., 0] + sq[..., 1]) / (tau0_sq[:, None] + p00[None, :] * fr ** 2)
    ok = (d2 <= gate ** 2) & ~(size_px[:, None] > (3.0 * size_a)[None, :] * fr)
    inside = ok & (size_px[:, None] > (1.3 * size_a)[None, :] * fr) & conf[None, :]
    inside &= (np.abs(duv[..., 0]) <= (w / 2)[:, None]) & (np.abs(duv[..., 1]) <= (h / 2)[:, None])
    ok &= (inside.sum(1) < 2)[:, None]
    cont = (last_track[:, None] == act[None, :]) & recent[:, None]
    return d2, ok, np.where(ok, d2 - bonus * cont, _BIG)


def test_gate_costs_equal_the_broadcast_formula():
    """Distances, gate (size test, merged-blob test) and continuity costs bit for bit as the numpy statement,
    on frames with NaN projections (tracks outside an image), tracks behind a camera and merged blobs."""
    rng = np.random.default_rng(3)
    n_merged = 0
    for _ in range(200):
        C, A, R = 3, int(rng.integers(1, 12)), int(rng.integers(1, 30))
        uvp = rng.uniform(0, 200, (C, A, 2))
        uvp[rng.random((C, A)) < 0.1] = np.nan
        depth = rng.uniform(0.5, 3.0, (C, A))
        depth[rng.random((C, A)) < 0.05] *= -1
        rc = np.sort(rng.integers(0, C, R))
        a_of = rng.integers(0, A, R)
        cxy = uvp[rc, a_of] + rng.normal(0, 4, (R, 2))
        size_px = rng.uniform(5, 30, R)
        size_px[rng.random(R) < 0.2] *= 4             # large blobs: the 3x-size test
        if A >= 2:   # a merged blob: a row twice a target's size midway between two tracks 6 px apart
            m = int(rng.integers(0, R))
            c, a = rc[m], a_of[m]
            uvp[c, (a + 1) % A] = uvp[c, a] + 6.0
            cxy[m] = uvp[c, a] + 3.0
            size_px[m] = 2.0 * 0.04 * 400 / abs(depth[c, a])   # size_a = 0.04 m below, f = 400 px
        w = size_px * rng.uniform(0.7, 1.4, R)
        h = size_px * size_px / w
        tau0_sq = (0.3 * size_px) ** 2 + 4.0
        fpx = np.full(R, 400.0)
        size_a = np.full(A, 0.04)
        p00 = rng.uniform(0, 1e-4, A)
        conf = rng.random(A) < 0.8
        act = np.sort(rng.choice(100, A, replace=False))
        last_track = np.where(rng.random(R) < 0.5, act[a_of], -1)
        recent = rng.random(R) < 0.7
        args = (uvp, depth, rc, cxy, w, h, tau0_sq, fpx, size_px, size_a, p00, conf)
        d2, ok, c2 = kernels.gate_costs(*args, 3.0 ** 2, last_track, recent, act, 0.5, _BIG)
        d2n, okn, c2n = _gate_numpy(*args, 3.0, last_track, recent, act, 0.5)
        np.testing.assert_array_equal(d2, d2n)
        np.testing.assert_array_equal(ok, okn)
        np.testing.assert_array_equal(c2, c2n)
        gated = (d2n <= 9) & ~(size_px[:, None] > (3.0 * size_a)[None, :] * fpx[:, None] / depth[rc])
        n_merged += int((gated.any(1) & ~okn.any(1)).sum())
    assert n_merged > 20          # the merged-blob rule was exercised


def test_update_tracks_equals_the_kalman_formulas():
    """Size EMA, one-ray points and the Kalman update of kernels.update_tracks equal the textbook statement
    (gain k = P Hᵀ / (H P Hᵀ + σ²), H = [1 0], shared by the axes) to 1e-12."""
    rng = np.random.default_rng(8)
    for _ in range(50):
        Tn, A, C = 20, 6, 4
        X, V = rng.normal(size=(Tn, 3)), rng.normal(size=(Tn, 3)) * 0.01
        L = rng.normal(size=(Tn, 2, 2)) * 0.01
        P = L @ L.transpose(0, 2, 1)
        size = np.where(rng.random(Tn) < 0.2, 0.0, rng.uniform(0.02, 0.06, Tn))
        streak = rng.integers(0, 5, Tn)
        last_multi = np.zeros(Tn, np.int64)
        act = np.sort(rng.choice(Tn, A, replace=False))
        # rows: per track 0..C cameras, in (track, camera) order like the tracker's frame rows
        ap, rh = [], []
        for a in range(A):
            for c in np.sort(rng.choice(C, int(rng.integers(0, C + 1)), replace=False)):
                ap.append(a)
                rh.append(c)
        ap, rh = np.array(ap, np.int64), np.array(rh, np.int64)
        r = np.arange(len(ap))
        n = np.bincount(ap, minlength=A)
        o = rng.normal(size=(len(ap), 3))
        d = rng.normal(size=(len(ap), 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        Xm = X[act] + rng.normal(0, 0.01, (A, 3))
        Xm[n < 2] = np.nan
        Xm[(n >= 2) & (rng.random(A) < 0.2)] = np.nan     # parallel rays: no intersection
        size_px = rng.uniform(5, 30, len(ap))
        f_px = np.full(C, 500.0)
        R2 = rng.normal(size=(C, 3))
        t2 = rng.uniform(1, 2, C)
        state = [a.copy() for a in (X, V, P, size, streak, last_multi)]
        Xm_k = Xm.copy()
        kernels.update_tracks(*state, act, Xm_k, n, ap, r, rh, o, d, size_px, f_px, R2, t2, 7)
        Xk, Vk, Pk, sk, stk, lmk = state
        for a, j in enumerate(act):
            if n[a] == 0:                                  # no row: untouched
                assert (Xk[j] == X[j]).all() and sk[j] == size[j] and stk[j] == streak[j]
                continue
            single = not (n[a] >= 2 and np.isfinite(Xm[a]).all())
            if single:   # the first ray's point nearest to the prediction
                k = r[np.flatnonzero(ap == a)[0]]
                z = o[k] + max((X[j] - o[k]) @ d[k], 0.0) * d[k]
            else:
                z = Xm[a]
            np.testing.assert_allclose(Xm_k[a], z, atol=1e-12)
            rows = np.flatnonzero(ap == a)
            dep = R2[rh[rows]] @ z + t2[rh[rows]]
            new = np.mean(size_px[rows] * np.maximum(dep, 0) / f_px[rh[rows]])
            s = 0.9 * size[j] + 0.1 * new if size[j] > 0 else new
            np.testing.assert_allclose(sk[j], s, rtol=1e-12)
            sigma = (0.3 if single else 0.15) * s
            K = P[j][:, 0] / (P[j][0, 0] + sigma ** 2)            # (2,) gain for position, velocity
            np.testing.assert_allclose(Xk[j], X[j] + K[0] * (z - X[j]), atol=1e-12)
            np.testing.assert_allclose(Vk[j], V[j] + K[1] * (z - X[j]), atol=1e-12)
            Pn = (np.eye(2) - np.outer(K, [1.0, 0.0])) @ P[j]
            np.testing.assert_allclose(Pk[j], Pn, atol=1e-15)
            assert stk[j] == (0 if single else streak[j] + 1)
            assert lmk[j] == (0 if single else 7)
