"""Refraction through a flat interface (air → water) for cameras looking into a tank from above.

A :class:`FlatInterface` is a plane in world coordinates separating medium 1
(the cameras' side, refractive index ``n1``, air = 1.0) from medium 2 (the
targets' side, ``n2``, water = 1.333 by default). Its unit ``normal`` points
*into medium 1* (toward the cameras; ``+z`` for a water surface with ``z`` up).

A :class:`RefractiveCamera` is a :class:`~mctrack.calibration.Camera` that
carries an interface; it keeps the camera's interface to the rest of mctrack:

- ``rays(uv) -> (origins (N, 3), directions (N, 3))``: the pinhole ray from
  the camera centre is cut with the plane and bent by Snell's law; the origin
  is the refraction point on the plane. A pixel whose ray does not reach the
  plane keeps its straight ray (origin = camera centre).
- ``project(X) -> (N, 2) px``: a point on the far side of the plane is
  projected through its refraction point (solved per point, see
  :func:`FlatInterface.refraction_point`); a point on the cameras' side is
  projected straight.

Formulation (single flat interface): the camera centre ``C``, the point ``X``
and the refraction point lie in the *plane of refraction* spanned by the
interface normal and ``X − C`` (Agrawal, Ramalingam, Taguchi & Chari, "A
theory of multi-layer flat refractive geometry", CVPR 2012, §3: the
refraction point of one flat layer solves a quartic in that plane). With
``h_c`` the camera's height above the plane, ``h_x`` the point's depth below
it and ``r`` the distance between their feet on the plane, the refraction
point lies at distance ``s ∈ [0, r]`` from the camera's foot where Snell's law
``n1 sin θ1 = n2 sin θ2`` holds::

    f(s) = n1 · s / √(s² + h_c²) − n2 · (r − s) / √((r − s)² + h_x²) = 0

``f`` is strictly increasing on ``[0, r]`` with ``f(0) ≤ 0 ≤ f(r)``, so the
root is unique; we find it with Newton steps on the equivalent equation in
``u = tan θ1`` (see :meth:`FlatInterface.refraction_point`: monotone,
quadratic convergence from the straight line ``X − C``), vectorised over
points — the same root as the quartic, without picking among its four roots.

The vector form of Snell's law used for back-projection (Glassner, *An
Introduction to Ray Tracing*, 1989, §5.3): with unit incident direction
``d``, unit normal ``n`` facing the incident side (``n·d < 0``),
``η = n1 / n2``, ``c = −n·d``: ``t = η d + (η c − √(1 − η²(1 − c²))) n``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .camera import UNIT_TO_M, Camera

#: default refractive indices: air (medium 1, cameras) and fresh water at ~20 °C, visible light
N_AIR = 1.0
N_WATER = 1.333
#: keys of the calibration TOML's ``[interface]`` table
INTERFACE_KEYS = ("normal", "point", "height", "n1", "n2")


@dataclass(frozen=True, eq=False)
class FlatInterface:
    """A flat refractive interface (plane) in world coordinates (m).

    Attributes
    ----------
    normal : (3,) float64
        Unit normal pointing into medium 1, the cameras' side (normalised on
        construction; ``(0, 0, 1)`` for a water surface, world ``z`` up).
    point : (3,) float64
        Any point on the plane, world m.
    n1, n2 : float
        Refractive indices of the cameras' side (default air 1.0) and of the
        far side (default water 1.333).

    Raises ValueError for a zero or non-finite normal, a non-finite point or
    indices that are not positive.
    """

    normal: np.ndarray
    point: np.ndarray
    n1: float = N_AIR
    n2: float = N_WATER

    def __post_init__(self):
        n = np.asarray(self.normal, dtype=np.float64).reshape(3)
        p = np.asarray(self.point, dtype=np.float64).reshape(3)
        norm = np.linalg.norm(n)
        if not np.isfinite(norm) or norm < 1e-12:
            raise ValueError(f"interface normal {n.tolist()} is not a non-zero vector")
        if not np.isfinite(p).all():
            raise ValueError(f"interface point {p.tolist()} is not finite")
        n1, n2 = float(self.n1), float(self.n2)
        if not (np.isfinite(n1) and np.isfinite(n2) and n1 > 0 and n2 > 0):
            raise ValueError(f"refractive indices must be positive numbers, got n1={n1}, n2={n2}")
        object.__setattr__(self, "normal", n / norm)
        object.__setattr__(self, "point", p)
        object.__setattr__(self, "n1", n1)
        object.__setattr__(self, "n2", n2)

    def __eq__(self, other) -> bool:
        """Exact equality of normal, point and indices (e.g. after a TOML round trip)."""
        return isinstance(other, FlatInterface) and np.array_equal(self.normal, other.normal) \
            and np.array_equal(self.point, other.point) and (self.n1, self.n2) == (other.n1, other.n2)

    __hash__ = object.__hash__

    @classmethod
    def horizontal(cls, height: float, n1: float = N_AIR, n2: float = N_WATER) -> "FlatInterface":
        """The plane ``z = height`` (m) with normal ``+z`` (cameras above, e.g. a water surface)."""
        return cls(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, float(height)]), n1, n2)

    def signed_distance(self, X: np.ndarray) -> np.ndarray:
        """``(N,)`` signed distance (m) of ``(N, 3)`` world points: > 0 on the cameras' side, < 0 beyond."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, 3)
        return (X - self.point) @ self.normal

    def to_dict(self) -> dict:
        """The ``[interface]`` table: ``normal``, ``point`` (m), ``n1``, ``n2`` (JSON/TOML-ready lists)."""
        return {"normal": self.normal.tolist(), "point": self.point.tolist(), "n1": self.n1, "n2": self.n2}

    @classmethod
    def from_dict(cls, d, source: str | os.PathLike | None = None, unit: str = "m",
                  where: str = "interface") -> "FlatInterface":
        """Parse an ``[interface]`` table (calibration TOML); lengths in ``unit``, converted to m.

        Keys: ``normal`` (3 numbers, toward the cameras; default ``[0, 0, 1]``),
        exactly one of ``point`` (3 numbers) or ``height`` (a number: a point
        at ``height · normal`` from the origin, i.e. ``z = height`` for the
        default normal), ``n1`` (default 1.0) and ``n2`` (default 1.333).
        Raises :class:`~mctrack.errors.InputError` naming ``source`` and the
        field for unknown keys, wrong shapes, non-finite values, a zero normal
        or indices that are not positive numbers.
        """
        from .fields import array

        if not isinstance(d, dict):
            raise InputError(source, f"table '{where}'", f"must be a table, got {type(d).__name__}",
                             "write [interface] with normal, point (or height), n1, n2")
        unknown = sorted(set(d) - set(INTERFACE_KEYS))
        if unknown:
            raise InputError(source, f"field '{where}.{unknown[0]}'", "unknown interface field",
                             f"use only {list(INTERFACE_KEYS)}")
        if ("point" in d) == ("height" in d):
            raise InputError(source, f"table '{where}'", "needs exactly one of 'point' or 'height'",
                             "give a point on the plane, e.g. point = [0, 0, 0.5], or height = 0.5 (plane z = height)")
        normal = array(d.get("normal", [0.0, 0.0, 1.0]), (3,), source, None, f"{where}.normal")
        if np.linalg.norm(normal) < 1e-12:
            raise InputError(source, f"field '{where}.normal'", "is the zero vector",
                             "give the plane's normal toward the cameras, e.g. [0, 0, 1]")
        normal = normal / np.linalg.norm(normal)
        scale = UNIT_TO_M[unit]
        if "point" in d:
            point = array(d["point"], (3,), source, None, f"{where}.point") * scale
        else:
            h = d["height"]
            if isinstance(h, bool) or not isinstance(h, (int, float)) or not np.isfinite(h):
                raise InputError(source, f"field '{where}.height'", f"must be a number, got {h!r}",
                                 "write the plane's height in the file's world unit, e.g. height = 0.5")
            point = normal * float(h) * scale
        idx = {}
        for key, default in (("n1", N_AIR), ("n2", N_WATER)):
            v = d.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise InputError(source, f"field '{where}.{key}'", f"must be a positive number, got {v!r}",
                                 "refractive index, e.g. n1 = 1.0 (air), n2 = 1.333 (water)")
            idx[key] = float(v)
        return cls(normal, point, idx["n1"], idx["n2"])

    # ------------------------------------------------------------------ geometry

    def refract(self, d: np.ndarray) -> np.ndarray:
        """Bend ``(N, 3)`` unit directions travelling from medium 1 into medium 2 (Snell, vector form).

        Returns ``(N, 3)`` unit directions; NaN for rays parallel to the plane
        or going away from it (``n·d >= 0``), and for total internal
        reflection (only possible when ``n1 > n2``).
        """
        d = np.asarray(d, dtype=np.float64).reshape(-1, 3)
        c = -(d @ self.normal)
        eta = self.n1 / self.n2
        k = 1.0 - eta**2 * (1.0 - c**2)
        with np.errstate(invalid="ignore"):
            t = eta * d + (eta * c - np.sqrt(k))[:, None] * self.normal
        t[(c <= 0) | (k < 0)] = np.nan
        return t

    def intersect(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cut rays with the plane: ``(points (N, 3), lam (N,))`` with ``points = o + lam·d``.

        ``origins`` ``(3,)`` or ``(N, 3)``, ``directions (N, 3)``. ``lam`` is
        NaN (and the point NaN) where the ray is parallel to the plane or the
        plane lies behind the origin (``lam <= 0``).
        """
        d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
        o = np.broadcast_to(np.asarray(origins, dtype=np.float64), d.shape)
        den = d @ self.normal
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = ((self.point - o) @ self.normal) / den
        lam = np.where(np.isfinite(lam) & (lam > 0), lam, np.nan)
        return o + lam[:, None] * d, lam

    def back_project(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refracted rays of straight rays from the cameras' side: ``(origins (N, 3), directions (N, 3))``.

        A ray that meets the plane starts at its refraction point with the
        bent unit direction; any other ray (parallel to the plane, pointing
        away from it, or from an origin beyond the plane) is returned
        unchanged, since it never enters medium 2.
        """
        d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
        o = np.array(np.broadcast_to(np.asarray(origins, dtype=np.float64), d.shape))
        P, lam = self.intersect(o, d)
        t = self.refract(d)
        ok = np.isfinite(lam) & np.isfinite(t).all(1) & (self.signed_distance(o) > 0)
        o_out, d_out = o.copy(), d.copy()
        o_out[ok], d_out[ok] = P[ok], t[ok]
        return o_out, d_out

    def refraction_point(self, C: np.ndarray, X: np.ndarray, tol: float = 1e-13,
                         max_iter: int = 60) -> np.ndarray:
        """Points ``(N, 3)`` on the plane where the light path from ``X`` to camera centre ``C`` refracts.

        ``C`` ``(3,)`` or ``(N, 3)`` on the cameras' side, ``X (N, 3)`` on the
        far side. Solves the 1D Snell equation of the module docstring in
        ``u = tan θ1 = s / h_c``: ``F(u) = h_c u + h_x tan θ2(u) − r = 0`` with
        ``tan θ2 = k u / √(1 + (1 − k²) u²)``, ``k = n1 / n2``. ``F`` is
        increasing, and concave for ``k < 1`` (air → water), so Newton steps
        from the straight line ``u₀ = r / (h_c + h_x)`` (where ``F ≤ 0``)
        approach the root monotonically from below with quadratic convergence
        (3–4 steps to ``tol`` relative to ``r + h_c + h_x`` on the synthetic
        tank); steps leaving the bracket ``[0, r / h_c]`` (capped at grazing
        incidence in medium 2; possible only for ``k > 1``) bisect instead. Points with ``C`` or ``X`` on the wrong
        side get NaN.
        """
        X = np.asarray(X, dtype=np.float64).reshape(-1, 3)
        C = np.broadcast_to(np.asarray(C, dtype=np.float64), X.shape)
        n = self.normal
        hc = self.signed_distance(C)
        hx = -self.signed_distance(X)
        Cf = C - hc[:, None] * n
        Xf = X + hx[:, None] * n
        rv = Xf - Cf
        r = np.linalg.norm(rv, axis=1)
        valid = (hc > 0) & (hx > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(r[:, None] > 0, rv / r[:, None], 0.0)
            hi = np.where(valid, r / hc, 0.0)
            u = np.where(valid, r / (hc + hx), 0.0)
        k2 = (self.n1 / self.n2) ** 2
        k = np.sqrt(k2)
        if k2 > 1:  # tan θ2 → ∞ as u → 1 / √(k² − 1) (grazing in medium 2): the root lies below
            hi = np.minimum(hi, (1 - 1e-12) / np.sqrt(k2 - 1))
            u = np.minimum(u, hi)
        lo = np.zeros_like(r)
        tol_u = tol * (r + np.abs(hc) + np.abs(hx)) / np.where(hc > 0, hc, 1.0)
        active = valid & (r > 0)
        for _ in range(max_iter):
            if not active.any():
                break
            idx = np.flatnonzero(active)
            ua, ca, xa, ra = u[idx], hc[idx], hx[idx], r[idx]
            q = 1.0 + (1.0 - k2) * ua**2
            with np.errstate(invalid="ignore"):
                F = ca * ua + xa * k * ua / np.sqrt(q) - ra
                dF = ca + xa * k / q**1.5
            lo_a = np.where(F < 0, ua, lo[idx])
            hi_a = np.where(F > 0, ua, hi[idx])
            with np.errstate(divide="ignore", invalid="ignore"):
                un = ua - F / dF
            bad = ~np.isfinite(un) | (un < lo_a) | (un > hi_a)
            un = np.where(bad, 0.5 * (lo_a + hi_a), un)
            done = (np.abs(un - ua) <= tol_u[idx]) | (F == 0)
            u[idx], lo[idx], hi[idx] = un, lo_a, hi_a
            active[idx[done]] = False
        P = Cf + (hc * u)[:, None] * e
        P[~valid] = np.nan
        return P


@dataclass(frozen=True)
class RefractiveCamera(Camera):
    """A :class:`~mctrack.calibration.Camera` looking through a :class:`FlatInterface`.

    Same attributes and methods as ``Camera`` (``K``, ``R``, ``center``,
    ``scaled`` ... describe the physical camera in air) plus ``interface``;
    :meth:`project` and :meth:`rays` are refraction-aware. ``meta['interface']``
    holds :meth:`FlatInterface.to_dict` (stored in the session HDF5's ``/rig``).
    The camera centre must lie on the interface's medium-1 side (ValueError).
    """

    interface: FlatInterface | None = field(default=None)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.interface, FlatInterface):
            raise ValueError("RefractiveCamera needs a FlatInterface")
        if self.has_extrinsics and self.interface.signed_distance(self.center)[0] <= 0:
            raise ValueError(f"camera '{self.name}' is not on the cameras' side of the interface "
                             "(the interface normal must point toward the cameras)")
        self.meta["interface"] = self.interface.to_dict()

    @classmethod
    def of(cls, camera: Camera, interface: FlatInterface) -> "RefractiveCamera":
        """``camera`` (any :class:`Camera`) seen through ``interface``."""
        return cls(camera.name, camera.K, camera.dist, camera.rvec, camera.tvec, camera.size, camera.fisheye,
                   dict(camera.meta), interface)

    @property
    def pinhole(self) -> Camera:
        """The same camera without the interface (refraction ignored)."""
        meta = {k: v for k, v in self.meta.items() if k != "interface"}
        return Camera(self.name, self.K, self.dist, self.rvec, self.tvec, self.size, self.fisheye, meta)

    def project(self, X: np.ndarray) -> np.ndarray:
        """Project ``(N, 3)`` world points to ``(N, 2) float64`` distorted px through the interface.

        A point beyond the interface is imaged through its refraction point
        (:meth:`FlatInterface.refraction_point`); a point on the cameras' side
        straight. NaN behind the camera (as :meth:`Camera.project`).
        """
        X = np.array(np.asarray(X, dtype=np.float64).reshape(-1, 3))
        under = self.interface.signed_distance(X) < 0
        if under.any():
            X[under] = self.interface.refraction_point(self.center, X[under])
        return super().project(X)

    def rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Back-project ``(N, 2)`` px to refracted world rays: ``origins (N, 3)``, unit ``directions (N, 3)``.

        Origins lie on the interface (the refraction point); a pixel whose ray
        misses the interface keeps the straight ray from the camera centre.
        """
        C, d = super().rays(uv)
        return self.interface.back_project(C, d)


def with_interface(cameras: dict, interface: FlatInterface | None) -> dict:
    """``{name: Camera}`` → the same cameras seen through ``interface`` (None: plain cameras)."""
    return {k: without_interface(c) if interface is None else RefractiveCamera.of(without_interface(c), interface)
            for k, c in cameras.items()}


def shared_interface(cameras) -> FlatInterface | None:
    """The interface every camera of ``cameras`` (a dict or list of Camera) looks through, else None.

    None also when some cameras have none or when they look through different
    planes (per-camera interfaces, e.g. a top view through the surface and a
    side view through the glass wall).
    """
    per = [getattr(c, "interface", None) for c in (cameras.values() if isinstance(cameras, dict) else cameras)]
    if not per or any(i is None for i in per) or len({str(i.to_dict()) for i in per}) != 1:
        return None
    return per[0]


def without_interface(camera: Camera) -> Camera:
    """The plain :class:`Camera` of ``camera`` (a RefractiveCamera loses its interface)."""
    return camera.pinhole if isinstance(camera, RefractiveCamera) else camera


def projection_jacobian(camera: Camera, X: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """``(N, 2, 3)`` Jacobian ∂(u, v)/∂X (px per m) of ``camera.project`` by central differences.

    One vectorised projection of the ``6 N`` perturbed points (``step`` m
    along each world axis); works for any camera model (refractive included).
    NaN where a perturbed point does not project.
    """
    X = np.asarray(X, dtype=np.float64).reshape(-1, 3)
    N = len(X)
    E = np.eye(3) * step
    pts = (X[:, None, None, :] + np.stack([E, -E])[None]).reshape(-1, 3)  # (N, 2, 3, 3)
    uv = camera.project(pts).reshape(N, 2, 3, 2)
    return ((uv[:, 0] - uv[:, 1]) / (2 * step)).transpose(0, 2, 1)

