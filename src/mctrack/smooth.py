"""Smoothing and gap filling of the triangulated 3D tracks (one track per global id).

Each global id's POINTS3D rows are cut into *segments* wherever more than
``max_gap`` consecutive frames lack a point; inside a segment every frame gets
a position from a Rauch–Tung–Striebel (RTS) smoother (filterpy's
``KalmanFilter.batch_filter`` + ``rts_smoother``; Rauch, Tung & Striebel,
AIAA J. 1965) on a constant-velocity model with white-noise acceleration
(filterpy's ``Q_discrete_white_noise``, per world axis, state
``[x, vx, y, vy, z, vz]``):

- measurement = the triangulated point, with covariance
  ``diag(std_x², std_y², std_z²)`` from :mod:`mctrack.triangulate` (so a
  poorly constrained point pulls less);
- process noise: acceleration standard deviation ``acceleration_std`` (m/s²);
- frames of the segment without a point are predicted through (``filled``);
  no frame before a segment's first or after its last point is produced,
  and gaps longer than ``max_gap`` are left empty (a target that left every
  view for long is not invented).

The output (TRACK3D, :mod:`mctrack.tables`) keeps the raw triangulated values
next to the smoothed ones. The RTS smoother of this model is the cubic
smoothing spline (Wahba 1978; Kohn & Ansley 1987) with the weights fixed by
the two noise levels, so it follows the triangulation's own uncertainty rather
than a tuned window.

The posterior ``std_x, std_y, std_z`` assumes measurement errors independent
from frame to frame. Centroid errors that persist over frames (a box centre
biased by the body's orientation) are not averaged away, so then it is
optimistic: on the rendered synthetic default scene the actual error is
1.25–1.4 × the smoothed std (1.5–1.6 on the hard scenario), and 0.6–0.97 × the
triangulation's std.

Cost: filterpy steps through frames in Python (≈ 0.1 ms per frame and global
id), i.e. a few seconds per 10⁴ track-frames; one call per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError
from .tables import TRACK3D

__all__ = ["SmoothConfig", "smooth_tracks"]


@dataclass(frozen=True)
class SmoothConfig:
    """Settings of :func:`smooth_tracks` (config section ``smooth``).

    ``acceleration_std``: m/s², standard deviation of the white-noise
    acceleration of the motion model (default 2 m/s²: above the accelerations
    of the synthetic fish, ≲ 3 m/s² peak, and of walking people; raise it for
    darting animals — too small a value lags behind turns).
    ``max_gap``: frames; missing stretches up to this long are filled, longer
    ones split the track into separate segments (default 15, 0.5 s at 30 fps).
    ``enabled``: False copies the raw points through (no smoothing, no filling).
    """

    acceleration_std: float = 2.0
    max_gap: int = 15
    enabled: bool = True

    def __post_init__(self):
        if not (np.isfinite(self.acceleration_std) and self.acceleration_std > 0):
            raise InputError(None, "smooth.acceleration_std", f"must be > 0, got {self.acceleration_std!r}",
                             "e.g. acceleration_std: 2.0 (m/s²)")
        if int(self.max_gap) != self.max_gap or self.max_gap < 0:
            raise InputError(None, "smooth.max_gap", f"must be an integer >= 0, got {self.max_gap!r}",
                             "e.g. max_gap: 15 (frames)")

    @classmethod
    def from_dict(cls, d: dict | None) -> "SmoothConfig":
        """Build from the config's ``smooth`` section (already schema-validated; unknown keys ignored)."""
        d = dict(d or {})
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _kalman(dt: float, acc_std: float):
    """filterpy constant-velocity filter, state ``[x, vx, y, vy, z, vz]``, measuring positions."""
    from filterpy.common import Q_discrete_white_noise
    from filterpy.kalman import KalmanFilter

    kf = KalmanFilter(dim_x=6, dim_z=3)
    f1 = np.array([[1.0, dt], [0.0, 1.0]])
    kf.F = np.kron(np.eye(3), f1)
    kf.H = np.zeros((3, 6))
    kf.H[[0, 1, 2], [0, 2, 4]] = 1.0
    kf.Q = Q_discrete_white_noise(dim=2, dt=dt, var=acc_std**2, block_size=3)
    return kf


def _smooth_segment(frames: np.ndarray, xyz: np.ndarray, std: np.ndarray, dt: float,
                    acc_std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RTS-smooth one segment. ``frames (n,)`` sorted, ``xyz, std (n, 3)``.

    Returns ``all_frames (L,)`` (first..last), ``pos (L, 3)``, ``pos_std (L, 3)``.
    """
    first, last = int(frames[0]), int(frames[-1])
    L = last - first + 1
    idx = frames - first
    kf = _kalman(dt, acc_std)
    kf.x = np.array([xyz[0, 0], 0.0, xyz[0, 1], 0.0, xyz[0, 2], 0.0])
    # position prior: the first measurement; velocity prior: 1 m/s per axis (broad for fish and people)
    kf.P = np.diag([std[0, 0] ** 2, 1.0, std[0, 1] ** 2, 1.0, std[0, 2] ** 2, 1.0])
    zs = np.empty(L, dtype=object)  # None = no measurement (filterpy predicts through); object array so
    Rs: list = [kf.R] * L  # filterpy's np.size(zs, 0) works with the Nones
    var = np.maximum(std, 1e-6) ** 2
    for k, i in enumerate(idx):
        zs[i] = xyz[k]
        Rs[i] = np.diag(var[k])
    mu, cov, _, _ = kf.batch_filter(zs, Rs=Rs, update_first=True)
    xs, Ps, _, _ = kf.rts_smoother(mu, cov)
    pos = xs[:, [0, 2, 4]]
    pos_std = np.sqrt(np.clip(Ps[:, [0, 2, 4], [0, 2, 4]], 0, None))
    return np.arange(first, last + 1), pos, pos_std


def smooth_tracks(points: pd.DataFrame, fps: float, cfg: SmoothConfig | None = None) -> pd.DataFrame:
    """Smooth and gap-fill the 3D track of every global id.

    Parameters
    ----------
    points : DataFrame
        POINTS3D rows (``frame, global_id, x, y, z`` m, ``std_x, std_y,
        std_z`` m, ``n_cameras``); one row per ``(frame, global_id)``.
    fps : float
        Frame rate in Hz (> 0); the model's time step is ``1 / fps`` s.
    cfg : :class:`SmoothConfig`

    Returns
    -------
    DataFrame
        TRACK3D: one row per ``(frame, global_id)`` of every segment, sorted;
        ``x, y, z`` smoothed (m), ``std_x, std_y, std_z`` their posterior
        standard deviation (m), ``x_raw, y_raw, z_raw`` the triangulated point
        (m; NaN where ``filled``), ``filled`` True for frames without a
        triangulated point, ``n_cameras`` (0 where filled).

    Raises
    ------
    InputError
        Non-positive ``fps``, missing columns or duplicated ``(frame, global_id)``.
    """
    cfg = cfg or SmoothConfig()
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(None, "fps", f"must be > 0, got {fps!r}", "pass the session's frame rate")
    need = ["frame", "global_id", "x", "y", "z", "std_x", "std_y", "std_z", "n_cameras"]
    miss = [c for c in need if c not in points.columns]
    if miss:
        raise InputError(None, f"Points3D column '{miss[0]}'", "missing", "pass a POINTS3D table")
    if points.duplicated(["frame", "global_id"]).any():
        raise InputError(None, "Points3D", "several rows for one (frame, global_id)", "pass each point once")
    pts = points.sort_values(["global_id", "frame"], kind="stable")
    f = pts["frame"].to_numpy(np.int64)
    gid = pts["global_id"].to_numpy(np.int64)
    xyz = pts[["x", "y", "z"]].to_numpy(np.float64)
    std = pts[["std_x", "std_y", "std_z"]].to_numpy(np.float64)
    ncam = pts["n_cameras"].to_numpy(np.int32)
    # segment starts: new global id, or more than max_gap frames missing before this point
    new = np.ones(len(f), bool)
    new[1:] = (gid[1:] != gid[:-1]) | (np.diff(f) > cfg.max_gap + 1)
    bounds = np.r_[np.flatnonzero(new), len(f)]
    parts = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        if cfg.enabled and e - s >= 2:
            frames, pos, pos_std = _smooth_segment(f[s:e], xyz[s:e], std[s:e], 1.0 / fps, cfg.acceleration_std)
        else:
            frames, pos, pos_std = f[s:e], xyz[s:e], std[s:e]
        raw = np.full((len(frames), 3), np.nan)
        nc = np.zeros(len(frames), np.int32)
        at = np.searchsorted(frames, f[s:e])
        raw[at], nc[at] = xyz[s:e], ncam[s:e]
        filled = np.ones(len(frames), bool)
        filled[at] = False
        parts.append(pd.DataFrame({
            "frame": frames, "global_id": gid[s], "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2],
            "std_x": pos_std[:, 0], "std_y": pos_std[:, 1], "std_z": pos_std[:, 2],
            "x_raw": raw[:, 0], "y_raw": raw[:, 1], "z_raw": raw[:, 2], "filled": filled, "n_cameras": nc}))
    if not parts:
        return TRACK3D.empty()
    out = pd.concat(parts, ignore_index=True).sort_values(["frame", "global_id"], kind="stable")
    return TRACK3D.coerce(out.reset_index(drop=True))
