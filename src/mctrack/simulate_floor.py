"""Synthetic floor scene: people-sized targets walking on the ground plane ``z = 0`` (issue 8, item 4).

Selected by ``simulate.scene: floor`` (``config/synthetic_ground.yaml``); the
default scene stays the fish tank of :mod:`mctrack.simulate`, whose output
files this scene writes in the same formats.

Conventions
-----------
World frame
    Metres, right-handed, ``z`` up, the floor is the plane ``z = 0``; the walking
    area is ``|x| <= X/2, |y| <= Y/2`` with ``(X, Y) = cfg.floor_size``.
Targets
    Upright prisms (16-gon cylinders) of diameter ``cfg.target_width`` and
    height ``cfg.target_height`` standing on the floor; the *foot point* of a
    target is its axis at ``z = 0``. The 3D ground truth (``gt3d.csv``) holds
    the foot points (``z = 0``) of the frames in which some camera sees the
    target, so ground-plane positions are compared with it directly.
Cameras
    Four pinhole cameras (no lens distortion) 3 m above the floor near its
    long sides, looking across it obliquely (~50° down): ``cam1``/``cam2``
    watch the left part (``x ≈ -X/2 · 0.75``) from the front and the back and
    overlap in the middle of it, ``cam3``/``cam4`` the right part; the two
    parts do not overlap (a strip around ``x = 0`` is unseen), so walking from
    one part into the other is a handoff across a gap.
    With more than four cameras the extra ones repeat the layout rotated by
    180° (still on the floor's edge). Camera ``k`` of ``camera_names`` gets
    the ``k``-th pose. World→camera ``x_cam = R · X + t`` (OpenCV axes).
Rendering
    Flat-shaded convex silhouettes (the hull of the projected prism vertices)
    drawn farthest first over a tiled floor texture (per-pixel ray–floor
    intersection), then Gaussian sensor noise — enough for the background
    detector; boxes and visibility follow the same rules as
    :func:`mctrack.simulate.render_camera` (tight box of the silhouette inside
    the image; visibility = unoccluded silhouette pixels inside the image /
    all silhouette pixels, off-image ones included).
Frames
    0-based in arrays and ``gt3d.csv``; MOTChallenge ``gt.txt`` is 1-based.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .calibration import Camera, write_anipose_toml
from .errors import InputError, atomic_path
from .simulate import GT2D_DTYPE, _format_gt2d, _look_at, check_output_paths
from .video import VideoWriter

__all__ = ["FloorConfig", "floor_rig", "floor_trajectories", "render_floor_camera", "run_floor_simulation"]

_N_SIDES = 16  # polygon sides of the cylinder


@dataclass
class FloorConfig:
    """Settings of the floor scene (the workflow's ``simulate`` section with ``scene: floor``).

    Attributes
    ----------
    seed : int
        Seed of every random choice.
    n_targets, n_frames : int
        Number of walkers (>= 1) and frames (>= 1).
    fps : float
        Frame rate, Hz.
    width, height : int
        Image size, px, even.
    floor_size : (float, float)
        Walking area ``(X, Y)`` in m, centred on the origin (default 12 × 8).
    target_width, target_height : float
        Cylinder diameter and height in m (default 0.5, 1.7: a person).
    mean_speed : float
        Mean walking speed, m/s (default 1.2; per target ×U(0.8, 1.2)).
    noise_sigma : float
        Gaussian sensor noise, grey levels.

    Keys of the tank scene (``tank_size``, ``view_fraction`` …) are accepted
    by :meth:`from_dict` and ignored. Raises
    :class:`~mctrack.errors.InputError` on invalid values.
    """

    seed: int = 0
    n_targets: int = 6
    n_frames: int = 300
    fps: float = 30.0
    width: int = 640
    height: int = 360
    floor_size: tuple[float, float] = (12.0, 8.0)
    target_width: float = 0.5
    target_height: float = 1.7
    mean_speed: float = 1.2
    noise_sigma: float = 3.0

    def __post_init__(self):
        for key in ("seed", "n_targets", "n_frames", "width", "height"):
            v = getattr(self, key)
            if isinstance(v, bool) or not float(v).is_integer():
                raise InputError(None, f"simulate.{key}", f"must be an integer, got {v!r}", "write a whole number")
            setattr(self, key, int(v))
        for key in ("fps", "target_width", "target_height", "mean_speed", "noise_sigma"):
            setattr(self, key, float(getattr(self, key)))
        try:
            fs = tuple(float(v) for v in self.floor_size)
        except (TypeError, ValueError):
            fs = ()
        if len(fs) != 2 or min(fs) < 4 * self.target_width:
            raise InputError(None, "simulate.floor_size", f"must be two sizes [x, y] in m, each >= 4 target widths, "
                             f"got {self.floor_size!r}", "e.g. floor_size: [12, 8]")
        self.floor_size = fs
        if self.n_targets < 1 or self.n_frames < 1:
            raise InputError(None, "simulate.n_targets/n_frames", "must be >= 1", "simulate at least one target and frame")
        for key in ("fps", "target_width", "target_height", "mean_speed"):
            if not getattr(self, key) > 0:
                raise InputError(None, f"simulate.{key}", "must be > 0", "use a positive value")
        for key in ("width", "height"):
            if getattr(self, key) < 32 or getattr(self, key) % 2:
                raise InputError(None, f"simulate.{key}", "must be an even number >= 32 px", "e.g. 640 x 360")

    @classmethod
    def from_dict(cls, d: dict | None, source: str | os.PathLike | None = None) -> "FloorConfig":
        """Build from the ``simulate`` mapping; ``session``/``scene`` and tank-only keys are ignored."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def floor_rig(camera_names: list[str], cfg: FloorConfig) -> list[Camera]:
    """Head-height cameras around the walking area (see the module docstring for the layout).

    Focal length ``f = 0.8 · width`` px (horizontal field of view ≈ 64°),
    principal point at the image centre, no distortion. Returns
    :class:`~mctrack.calibration.Camera` objects; raises
    :class:`~mctrack.errors.InputError` for fewer than 1 or more than 8 cameras.
    """
    names = list(camera_names)
    if not 1 <= len(names) <= 8:
        raise InputError(None, "cameras", f"the floor scene takes 1..8 cameras, got {len(names)}",
                         "list 1 to 8 cameras for the session")
    X, Y = cfg.floor_size
    rng = np.random.default_rng([cfg.seed, 0xF10, 1])
    # (centre, aim) in units of the half sizes (X/2, Y/2); z in m. Each camera hangs 3 m above a point near a
    # long side of the floor and looks across it, pitched ~50 degrees down
    poses = [((-0.7, -1.1, 3.0), (-0.7, -0.15, 0.0)), ((-0.7, 1.1, 3.0), (-0.7, 0.15, 0.0)),
             ((0.7, -1.1, 3.0), (0.7, -0.15, 0.0)), ((0.7, 1.1, 3.0), (0.7, 0.15, 0.0))]
    W, H = cfg.width, cfg.height
    f = 0.8 * W
    K = np.array([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])
    cams = []
    for k, name in enumerate(names):
        (cx, cy, cz), (ax, ay, az) = poses[k]
        C = np.array([cx * X / 2, cy * Y / 2, cz + rng.uniform(-0.1, 0.1)])
        A = np.array([ax * X / 2, ay * Y / 2, az]) + np.r_[rng.normal(0, 0.1, 2), 0.0]
        R = _look_at(C, A, np.deg2rad(rng.normal(0, 1.0)))
        cams.append(Camera(name=name, K=K.copy(), dist=np.zeros(5), rvec=cv2.Rodrigues(R)[0].ravel(),
                           tvec=-R @ C, size=(W, H)))
    return cams


def floor_trajectories(cfg: FloorConfig) -> np.ndarray:
    """Foot points of the walkers, ``(T, N, 2) float64`` world m (``z = 0`` implied).

    Each target walks at a constant speed ``mean_speed · U(0.8, 1.2)`` with a
    smoothly varying heading (angular velocity an Ornstein–Uhlenbeck process,
    σ ≈ 0.6 rad/s, correlation time 1 s) and turns towards the centre when
    within 1 m of the area's edge, so it stays inside the walking area.
    Targets do not avoid each other (people pass close by and occlude one
    another). Deterministic given ``cfg.seed``.
    """
    rng = np.random.default_rng([cfg.seed, 0xF10, 2])
    T, N = cfg.n_frames, cfg.n_targets
    X, Y = cfg.floor_size
    half = np.array([X / 2, Y / 2]) - cfg.target_width
    dt = 1.0 / cfg.fps
    pos = rng.uniform(-1, 1, (N, 2)) * (half - 0.5)
    theta = rng.uniform(-np.pi, np.pi, N)
    omega = np.zeros(N)
    speed = cfg.mean_speed * rng.uniform(0.8, 1.2, N)
    out = np.empty((T, N, 2))
    for t in range(T):
        out[t] = pos
        omega += -omega * dt + 0.6 * np.sqrt(2 * dt) * rng.standard_normal(N)
        near = np.any(np.abs(pos) > half - 1.0, axis=1)
        to_centre = np.arctan2(-pos[:, 1], -pos[:, 0])
        turn = np.angle(np.exp(1j * (to_centre - theta)))
        theta = theta + omega * dt + np.where(near, np.clip(turn, -1.5 * dt, 1.5 * dt) * 2.0, 0.0)
        pos = np.clip(pos + speed[:, None] * dt * np.c_[np.cos(theta), np.sin(theta)], -half, half)
    return out


def _floor_background(cam: Camera, cfg: FloorConfig, rng: np.random.Generator) -> np.ndarray:
    """Tiled floor (0.5 m tiles, two grey levels, texture) below the horizon, a plain wall above."""
    W, H = cam.size
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    d = np.stack([(u - cam.K[0, 2]) / cam.K[0, 0], (v - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(u)], -1)
    dw = d @ cam.R  # world directions (R^T d)
    C = cam.center
    with np.errstate(divide="ignore", invalid="ignore"):
        s = -C[2] / dw[..., 2]
    floor = (dw[..., 2] < -1e-6) & (s < 60)
    xy = C[:2] + s[..., None] * dw[..., :2]
    tile = (np.floor(xy[..., 0] / 0.5) + np.floor(xy[..., 1] / 0.5)) % 2
    img = np.where(floor, 150 + 25 * tile, 200).astype(np.float32)
    tex = cv2.GaussianBlur(rng.normal(0, 12, (H, W)).astype(np.float32), (0, 0), 2.0)
    img = np.clip(img + tex, 0, 255)
    bgr = np.stack([img * 0.95, img, img * 1.05], -1)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def render_floor_camera(cam: Camera, feet: np.ndarray, cfg: FloorConfig, rng: np.random.Generator,
                        colours: np.ndarray | None = None) -> tuple[Iterator[np.ndarray], np.ndarray]:
    """Render one camera's view of the walkers and its 2D ground truth.

    Parameters
    ----------
    cam : Camera
        Pinhole camera (distortion ignored: the floor rig has none).
    feet : (T, N, 2) float
        Foot points, world m.
    cfg : FloorConfig
        Target size and noise.
    rng : numpy Generator
        Floor texture, noise, the camera's white balance and (without ``colours``) the walkers' colours (the
        ground truth does not depend on it).
    colours : (N, 3) float BGR 0-255, optional
        The walkers' colours, the same in every camera (clothing); this camera sees them through its own
        white balance and exposure, a gain per channel drawn from ``rng`` in [0.85, 1.15]. None = colours
        drawn from ``rng`` (different in every camera).

    Returns
    -------
    frames : iterator of (H, W, 3) uint8 BGR, rendered lazily.
    gt : (M,) structured array of :data:`mctrack.simulate.GT2D_DTYPE`
        One row per (frame, target) with at least one silhouette pixel in the
        image (targets with a vertex less than 0.2 m in front of the camera
        are skipped), sorted by frame then target.
    """
    T, N = feet.shape[:2]
    W, H = cam.size
    ang = 2 * np.pi * np.arange(_N_SIDES) / _N_SIDES
    ring = 0.5 * cfg.target_width * np.c_[np.cos(ang), np.sin(ang)]
    verts = np.concatenate([np.c_[ring, np.zeros(_N_SIDES)], np.c_[ring, np.full(_N_SIDES, cfg.target_height)]])
    P = feet[:, :, None, :] + verts[None, None, :, :2]
    P = np.concatenate([P, np.broadcast_to(verts[:, 2], P.shape[:3])[..., None]], -1)  # (T, N, V, 3)
    pc = P @ cam.R.T + cam.tvec
    ok = (pc[..., 2] > 0.2).all(-1)
    uv = (pc[..., :2] / np.maximum(pc[..., 2:3], 1e-6)) * [cam.K[0, 0], cam.K[1, 1]] + cam.K[:2, 2]
    depth = np.linalg.norm(feet - cam.center[:2], axis=-1)
    background = _floor_background(cam, cfg, rng)
    if colours is None:
        colours = rng.uniform(20, 110, (N, 3))
    else:
        colours = np.clip(np.asarray(colours, float) * rng.uniform(0.85, 1.15, 3), 0, 255)
    pad = 2 * max(W, H)
    gt_rows, polys = [], []
    label = np.empty((H, W), np.int16)
    for t in range(T):
        label.fill(-1)
        frame_polys = []
        for n in np.argsort(-depth[t]):
            if not ok[t, n]:
                continue
            hull = cv2.convexHull(np.clip(uv[t, n], -pad, W + pad).astype(np.float32)).reshape(-1, 2)
            x0, y0 = hull.min(0)
            x1, y1 = hull.max(0)
            if x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
                continue
            pts = np.round(hull * 16).astype(np.int32)  # 4 bits of sub-pixel precision
            cv2.fillConvexPoly(label, pts, int(n), lineType=cv2.LINE_8, shift=4)
            frame_polys.append((n, pts))
        for n, pts in frame_polys:
            bx0, by0 = np.maximum(pts.min(0) // 16 - 1, 0)
            bx1, by1 = np.minimum(pts.max(0) // 16 + 2, [W, H])
            mask = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
            cv2.fillConvexPoly(mask, pts - 16 * np.array([bx0, by0], np.int32), 1, lineType=cv2.LINE_8, shift=4)
            ys, xs = np.nonzero(mask)
            if not len(xs):
                continue
            area = max(cv2.contourArea(pts.astype(np.float32) / 16.0), float(len(xs)))
            vis = np.count_nonzero(label[by0:by1, bx0:bx1] == n) / area
            gt_rows.append((t, n + 1, bx0 + xs.min(), by0 + ys.min(), xs.max() - xs.min() + 1,
                            ys.max() - ys.min() + 1, min(vis, 1.0)))
        polys.append(frame_polys)
    gt = np.array(sorted(gt_rows), dtype=GT2D_DTYPE)
    sigma = cfg.noise_sigma

    def frames() -> Iterator[np.ndarray]:
        for t in range(T):
            img = background.copy()
            for n, pts in polys[t]:
                shade = colours[n]
                cv2.fillConvexPoly(img, pts, tuple(float(c) for c in shade), lineType=cv2.LINE_AA, shift=4)
            if sigma > 0:
                noise = rng.normal(0, sigma, img.shape).astype(np.float32)
                img = np.clip(img + noise, 0, 255).astype(np.uint8)
            yield img

    return frames(), gt


def _format_gt3d_floor(feet: np.ndarray, seen: np.ndarray) -> str:
    T, N = feet.shape[:2]
    f = np.repeat(np.arange(T), N)
    i = np.tile(np.arange(1, N + 1), T)
    xy = feet.reshape(-1, 2)
    keep = seen.reshape(-1)
    return "frame,target_id,x,y,z\n" + "".join(f"{a},{b},{x:.6f},{y:.6f},0.000000\n"
                                               for a, b, (x, y) in zip(f[keep], i[keep], xy[keep]))


def run_floor_simulation(cfg: FloorConfig, camera_names: list[str], videos: dict, calibration, gt3d,
                         gt2d: dict, workers: int = 1) -> None:
    """Generate the floor session: videos, anipose calibration, ``gt3d.csv`` (foot points, z = 0), MOT gt.

    Same files and formats as :func:`mctrack.simulate.run_simulation`, except
    that ``gt3d.csv`` (foot points, ``z = 0``) lists a target only in frames in
    which some part of it is in some camera's image (it has a MOT gt row): a
    walker in the unseen strip between views cannot be tracked there. The
    handoff ground truth is derived from the MOT gt files
    (:func:`mctrack.associate.ground.gt_handoffs`). Every file is written atomically.
    ``workers`` is accepted for the signature of ``run_simulation``; the flat-shaded
    floor renders are cheap and run in this process.
    """
    names = check_output_paths(camera_names, videos, gt2d)
    cams = floor_rig(names, cfg)
    feet = floor_trajectories(cfg)
    seen = np.zeros(feet.shape[:2], bool)
    colours = np.random.default_rng([cfg.seed, 0xF10, 4]).uniform(20, 110, (feet.shape[1], 3))  # clothing
    for i, cam in enumerate(cams):
        frames, gt = render_floor_camera(cam, feet, cfg, np.random.default_rng([cfg.seed, 0xF10, 3, i]), colours)
        seen[gt["frame"], gt["target_id"] - 1] = True
        with VideoWriter(videos[cam.name], cfg.fps, cfg.width, cfg.height) as writer:
            for img in frames:
                writer.write(img)
        with atomic_path(gt2d[cam.name]) as tmp:
            Path(tmp).write_text(_format_gt2d(gt))
    write_anipose_toml(cams, calibration)
    with atomic_path(gt3d) as tmp:
        Path(tmp).write_text(_format_gt3d_floor(feet, seen))
