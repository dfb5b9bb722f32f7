"""Deterministic synthetic multi-camera scene with ground truth (the workflow's default input).

The scene is a rectangular fish tank filmed by 2..12 fixed, calibrated
cameras: from above and around (``rig: orbit``, the default) or, as in many
fish labs, one camera straight above and the others level with the tank,
looking through its side walls (``rig: top_front``). Everything is generated from ``SimulationConfig.seed``:
same seed → identical trajectories, calibration and ground-truth files.

Conventions
-----------
World frame
    Metres, right-handed, origin at the centre of the tank floor, ``z`` up. The
    water volume is ``|x| <= X/2, |y| <= Y/2, 0 <= z <= Z`` with
    ``(X, Y, Z) = cfg.tank_size`` (the tank is filled to the brim). By default
    refraction is *not* modelled: rays are straight lines (glass walls seen
    through without refraction), so the written pinhole calibration is exact
    for the rendered images. With ``cfg.refraction`` (the *refractive tank*)
    every camera looks into the water through one flat face of the tank (air
    1.0 → water ``cfg.water_index``, :func:`tank_interface`): the water
    surface ``z = Z`` for a camera above the tank's rim, the side wall it
    faces for a camera level with the tank (``top_front``; the glass is taken
    as thin, one interface); the other faces are opaque. Rays bend there by
    Snell's law (:mod:`mctrack.calibration.refraction`), and the calibration
    carries the interfaces (``[interface]``, and ``[<camera>.interface]`` for
    cameras whose face differs), so it is again exact for the images.
Cameras
    :class:`~mctrack.calibration.Camera`, world→camera ``x_cam = R · X + t``
    (OpenCV: ``x`` right, ``y`` down, ``z`` forward), OpenCV
    radial-tangential distortion ``[k1, k2, p1, p2, k3]``.
Pixels
    The continuous image coordinate ``u`` produced by ``Camera.project`` has
    its origin at the *top-left corner* of the top-left pixel: pixel column
    ``j`` covers ``j <= u < j + 1`` and is rendered by the ray through
    ``u = j + 0.5`` (same for rows). A box ``x, y, w, h`` therefore spans
    ``[x, x + w) × [y, y + h)`` in projection coordinates, matching the
    "top-left pixel corner" box convention of :mod:`mctrack.tables`.
Targets
    Ellipsoids (fish bodies) with semi-axes ``target_length/2`` along the
    heading and ``target_width/2`` on both other axes, rendered by exact
    per-pixel ray casting through the distorted camera model, with Lambert
    shading, anti-aliased edges and painter's order (farthest first).
Frames
    ``frame`` is 0-based in arrays and in the 3D ground truth (``gt3d.csv``);
    MOTChallenge ``gt.txt`` files use 1-based frames (frame 1 = first decoded
    video frame).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .calibration import Camera, write_anipose_toml
from .calibration.refraction import FlatInterface, RefractiveCamera
from .errors import InputError, atomic_path
from .video import VideoWriter

__all__ = [
    "SimulationConfig",
    "make_rig",
    "simulate_trajectories",
    "headings_from_trajectories",
    "render_camera",
    "camera_rng",
    "visibility_plan",
    "run_simulation",
    "tank_interface",
    "GT2D_DTYPE",
]

#: One 2D ground-truth row as returned by :func:`render_camera` (0-based frame).
GT2D_DTYPE = np.dtype([("frame", np.int64), ("target_id", np.int64), ("x", np.int64), ("y", np.int64),
                       ("w", np.int64), ("h", np.int64), ("visibility", np.float64)])

_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_PAD = 64  # px rendered around the image to measure the off-image part of silhouettes
_N_SAMPLES = 128  # ellipsoid surface samples used to find a target's pixel patch
_VIS_CONF = 0.25  # MOTChallenge: conf = 1 iff visibility >= this


# --------------------------------------------------------------------------- config


@dataclass
class SimulationConfig:
    """Settings of the synthetic scene (config key ``simulate``).

    Attributes
    ----------
    seed : int
        Seed of every random choice (rig, trajectories, textures, noise).
    n_targets : int
        Number of fish, >= 1.
    n_frames : int
        Number of frames per camera, >= 1.
    fps : float
        Frame rate in Hz (> 0); also the video frame rate.
    width, height : int
        Image size in px; even (H.264 4:2:0) and >= 32.
    tank_size : (float, float, float)
        Water volume extent ``(X, Y, Z)`` in m. World origin at the centre of
        the tank floor, ``z`` up.
    target_length : float
        Body length in m (ellipsoid long axis, along the heading).
    target_width : float
        Body width and height in m (the two short ellipsoid axes).
    mean_speed : float
        Mean swimming speed in m/s.
    noise_sigma : float
        Standard deviation of the Gaussian sensor noise in grey levels (>= 0).

    Scenario knobs (defaults = the easy default scene; ``config/synthetic_hard.yaml``
    turns them all on):

    view_fraction : float
        Fraction of the image spanned by the tank's bounding box in each view
        (default 0.7: the whole tank is always in view). Above ~1 the cameras
        are zoomed in: the tank's edges fall outside the image, so targets
        leave and re-enter views.
    repulsion : float
        Scale (> 0) of the range at which targets avoid each other (default
        1: start turning away at 2 body lengths, pushed apart sideways within
        1 body length). Smaller values give closer crossings.
    gap_camera : int
        0-based index (in the camera list) of a camera that records black
        frames during ``gap_frames``; -1 (default) = none.
    gap_frames : (int, int)
        Half-open frame range ``[start, stop)`` of that camera's outage (black
        frames, no 2D ground truth), default ``(0, 0)``.
    two_camera_targets : int
        Number of targets (the last ones, highest ``target_id``) visible only
        in the first two cameras, as if a screen hid them from the others
        (default 0). They stay in the 3D ground truth.
    refraction : bool
        Refractive tank (default False): same rig and fish, but every camera
        looks through one face of the tank (the water surface, or the side
        wall a level camera faces), refracted; the other faces are opaque
        (module docstring).
    water_index : float
        Refractive index of the water (>= 1; default 1.333, fresh water,
        visible light); only with ``refraction``.
    rig : str
        Camera layout (:func:`make_rig`): ``"orbit"`` (default; around and
        above the tank) or ``"top_front"`` (first camera straight above, the
        others level with the tank's middle, 90° apart, starting in front;
        at most 5 cameras).

    Raises :class:`~mctrack.errors.InputError` on invalid values.
    """

    seed: int = 0
    n_targets: int = 6
    n_frames: int = 300
    fps: float = 30.0
    width: int = 640
    height: int = 480
    tank_size: tuple[float, float, float] = (1.0, 1.0, 0.5)
    target_length: float = 0.08
    target_width: float = 0.03
    mean_speed: float = 0.15
    noise_sigma: float = 4.0
    view_fraction: float = 0.7
    repulsion: float = 1.0
    gap_camera: int = -1
    gap_frames: tuple[int, int] = (0, 0)
    two_camera_targets: int = 0
    refraction: bool = False
    water_index: float = 1.333
    rig: str = "orbit"

    def __post_init__(self):
        def bad(key, problem, fix):
            raise InputError(None, f"simulate.{key}", problem, fix)

        for key in ("seed", "n_targets", "n_frames", "width", "height", "gap_camera", "two_camera_targets"):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
                if isinstance(val, float) and val.is_integer():
                    val = int(val)
                else:
                    bad(key, f"must be an integer, got {val!r}", "write a whole number")
            setattr(self, key, int(val))
        if self.rig not in RIGS:
            bad("rig", f"must be one of {list(RIGS)}, got {self.rig!r}", "e.g. rig: top_front")
        if not isinstance(self.refraction, (bool, np.bool_)):
            bad("refraction", f"must be true or false, got {self.refraction!r}", "write refraction: true")
        self.refraction = bool(self.refraction)
        for key in ("fps", "target_length", "target_width", "mean_speed", "noise_sigma", "view_fraction", "repulsion",
                    "water_index"):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
                bad(key, f"must be a number, got {val!r}", "write a number")
            setattr(self, key, float(val))
        try:
            ts = tuple(float(v) for v in self.tank_size)
        except (TypeError, ValueError):
            ts = ()
        if len(ts) != 3 or not all(np.isfinite(ts)) or min(ts) <= 0:
            bad("tank_size", f"must be three positive numbers [x, y, z] in m, got {self.tank_size!r}",
                "e.g. tank_size: [1.0, 1.0, 0.5]")
        self.tank_size = ts
        try:
            gf = tuple(int(v) for v in self.gap_frames if float(v).is_integer())
        except (TypeError, ValueError):
            gf = ()
        if len(gf) != 2 or gf[0] < 0 or gf[1] < gf[0]:
            bad("gap_frames", f"must be two frame indices [start, stop] with 0 <= start <= stop, got "
                f"{self.gap_frames!r}", "e.g. gap_frames: [200, 320]")
        self.gap_frames = gf
        if self.gap_camera < -1:
            bad("gap_camera", "must be a 0-based camera index or -1 (no outage)", "e.g. gap_camera: 1")
        if not 0 <= self.two_camera_targets <= self.n_targets:
            bad("two_camera_targets", f"must be in 0..n_targets ({self.n_targets})", "e.g. two_camera_targets: 1")
        if self.seed < 0:
            bad("seed", "must be >= 0", "use a non-negative seed")
        if self.n_targets < 1:
            bad("n_targets", "must be >= 1", "simulate at least one target")
        if self.n_frames < 1:
            bad("n_frames", "must be >= 1", "simulate at least one frame")
        if not (np.isfinite(self.fps) and self.fps > 0):
            bad("fps", "must be > 0", "e.g. fps: 30")
        for key in ("width", "height"):
            val = getattr(self, key)
            if val < 32 or val % 2:
                bad(key, f"must be an even number >= 32 px, got {val}", "H.264 (4:2:0) needs even image sizes")
        for key in ("target_length", "target_width", "mean_speed", "view_fraction", "repulsion"):
            if not (np.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                bad(key, "must be > 0", "use a positive value")
        if not (np.isfinite(self.water_index) and self.water_index >= 1.0):
            bad("water_index", f"must be a refractive index >= 1, got {self.water_index}", "e.g. water_index: 1.333")
        if not (np.isfinite(self.noise_sigma) and self.noise_sigma >= 0):
            bad("noise_sigma", "must be >= 0", "use 0 for noise-free images")
        if self.target_width > self.target_length:
            bad("target_width", "must not exceed target_length", "the long axis is the body length")
        if min(ts[0], ts[1]) < 4 * self.target_length or ts[2] < 2.5 * self.target_length:
            bad("tank_size", "too small for the targets (need x, y >= 4 and z >= 2.5 body lengths)",
                "enlarge tank_size or shrink target_length")

    @classmethod
    def from_dict(cls, d: dict, source: str | os.PathLike | None = None) -> "SimulationConfig":
        """Build a config from a mapping (e.g. the workflow's ``simulate`` section).

        Missing keys take their defaults; ``tank_size`` may be a list. Raises
        :class:`~mctrack.errors.InputError` naming the first unknown key (and
        ``source``, the file it came from, if given) or an invalid value.
        """
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise InputError(source, "simulate", f"must be a mapping, got {type(d).__name__}",
                             "write the simulate settings as key: value pairs")
        known = [f.name for f in fields(cls)]
        for key in d:
            if key not in known:
                raise InputError(source, f"simulate.{key}", "unknown simulation setting", f"use one of {known}")
        return cls(**d)


# --------------------------------------------------------------------------- rig


def _look_at(center: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """World→camera rotation of a camera at ``center`` looking at ``target`` (OpenCV axes, world z up)."""
    fwd = target - center
    fwd = fwd / np.linalg.norm(fwd)
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight down/up
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.vstack([right, down, fwd])
    c, s = np.cos(roll), np.sin(roll)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R


def _tank_corners(cfg: SimulationConfig) -> np.ndarray:
    X, Y, Z = cfg.tank_size
    return np.array([[sx * X / 2, sy * Y / 2, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0.0, Z)])


#: camera layouts of :func:`make_rig` (``simulate.rig``)
RIGS = ("orbit", "top_front")
_TOP_FRONT_MAX = 5  # top camera + the four sides


def make_rig(camera_names: list[str], cfg: SimulationConfig) -> list[Camera]:
    """Place ``len(camera_names)`` calibrated cameras around and above the tank.

    ``cfg.rig == "orbit"`` (default): azimuths are spread evenly around the
    tank (random start, small jitter), elevations are drawn in 35–70°.
    ``cfg.rig == "top_front"``: the first camera looks straight down
    (elevation 88–90°), the others are level with the tank's middle
    (elevation ±2°) at azimuths −90° (in front, on the ``−y`` side), 0°, 90°,
    180° (±1°), each looking through one side wall (the top and side views of
    fish labs, e.g. the 3D-ZeF rig of Pedersen et al. 2020, *CVPR*); at most
    5 cameras. Both: distances from the tank centre
    ``(0, 0, Z/2)`` in 1.5–2.2 m (scaled by the larger horizontal tank side
    for tanks bigger than 1 m); each camera looks at the tank centre (±2 cm,
    roll ±~2°). The focal length is chosen so that the tank's bounding box
    spans ``cfg.view_fraction`` (default 70 %) of the image (for
    ``view_fraction <= 0.95`` the whole water volume is always in view);
    ``fx ≈ fy``, principal point within ~2 % of the image centre, mild barrel
    distortion ``k1 ∈ [-0.2, -0.1]`` with ``k2 = 0.6·k1² + [0, 0.01]`` (which
    keeps the radial mapping monotonic, so nothing folds back into the
    image), ``|p1|, |p2| ≲ 1e-3``, ``k3 = 0``. Deterministic given
    ``cfg.seed`` and the number of cameras.

    Returns a list of :class:`~mctrack.calibration.Camera` (``name`` from
    ``camera_names``, ``size = (cfg.width, cfg.height)``, world→camera
    ``x_cam = R · X + t``, ``t`` in m). Raises
    :class:`~mctrack.errors.InputError` for fewer than 2 or more than 12
    cameras (5 for ``top_front``), duplicate names, or names that are not
    ``[A-Za-z0-9_-]+``.
    """
    names = list(camera_names)
    n = len(names)
    if not 2 <= n <= 12:
        raise InputError(None, "cameras", f"the simulation needs 2..12 cameras, got {n}",
                         "list between 2 and 12 cameras for the simulated session")
    if cfg.rig == "top_front" and n > _TOP_FRONT_MAX:
        raise InputError(None, "simulate.rig", f"top_front places at most {_TOP_FRONT_MAX} cameras (one above, "
                         f"one per side wall), the camera sheet lists {n}", "use rig: orbit or fewer cameras")
    if len(set(names)) != n:
        raise InputError(None, "cameras", f"duplicate camera names in {names}", "give every camera a unique name")
    for name in names:
        if not isinstance(name, str) or not _CAMERA_NAME.match(name):
            raise InputError(None, f"camera '{name}'", "name must match [A-Za-z0-9_-]+",
                             "rename the camera (it becomes a TOML table name and a file name)")
    rng = np.random.default_rng([cfg.seed, 0x51D, 1])
    X, Y, Z = cfg.tank_size
    W, H = cfg.width, cfg.height
    scale = max(1.0, max(X, Y))
    az = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n) / n + rng.uniform(-0.1, 0.1, n) * 2 * np.pi / n
    el = np.deg2rad(rng.uniform(35.0, 70.0, n))
    if cfg.rig == "top_front":  # extra draws for this rig only: an orbit rig is unchanged for its seed
        az = np.deg2rad(-90.0 + 90.0 * (np.arange(n) - 1) + rng.uniform(-1.0, 1.0, n))
        el = np.deg2rad(np.r_[90.0 - rng.uniform(0.0, 2.0), rng.uniform(-2.0, 2.0, n - 1)])
    dist = rng.uniform(1.5, 2.2, n) * scale
    aim = np.array([0.0, 0.0, Z / 2]) + rng.normal(0.0, 0.02, (n, 3)) * scale
    roll = np.deg2rad(rng.normal(0.0, 1.5, n))
    k1 = rng.uniform(-0.2, -0.1, n)
    k2 = 0.6 * k1 ** 2 + rng.uniform(0.0, 0.01, n)
    p12 = rng.normal(0.0, 3e-4, (n, 2))
    pp = rng.uniform(-0.015, 0.015, (n, 2)) * [W, H]
    aspect = 1.0 + rng.normal(0.0, 0.002, n)
    corners = _tank_corners(cfg)
    centre = np.array([0.0, 0.0, Z / 2])
    cams = []
    for i, name in enumerate(names):
        C = centre + dist[i] * np.array([np.cos(el[i]) * np.cos(az[i]), np.cos(el[i]) * np.sin(az[i]), np.sin(el[i])])
        R = _look_at(C, aim[i], roll[i])
        for _ in range(3):  # re-aim at the middle of the tank's image so it can fill the frame evenly
            xc = (corners - C) @ R.T
            xy = xc[:, :2] / xc[:, 2:3]
            mid = (xy.min(axis=0) + xy.max(axis=0)) / 2
            R = _look_at(C, C + R.T @ np.array([mid[0], mid[1], 1.0]), roll[i])
        t = -R @ C
        xc = corners @ R.T + t
        xy = xc[:, :2] / xc[:, 2:3]
        f = cfg.view_fraction * min(W / (2 * np.abs(xy[:, 0]).max()), H / (2 * np.abs(xy[:, 1]).max()))
        K = np.array([[f, 0.0, W / 2 + pp[i, 0]], [0.0, f * aspect[i], H / 2 + pp[i, 1]], [0.0, 0.0, 1.0]])
        dist_c = np.array([k1[i], k2[i], p12[i, 0], p12[i, 1], 0.0])
        cam = Camera(name=name, K=K, dist=dist_c, rvec=cv2.Rodrigues(R)[0].ravel(), tvec=t, size=(W, H))
        uv = cam.project(corners)
        whole = np.all(np.isfinite(uv)) and np.all(uv >= 0) and np.all(uv <= [W, H])
        if cfg.view_fraction <= 0.95 and not whole:  # pragma: no cover
            raise RuntimeError(f"simulated camera {name} does not see the whole tank (internal error)")
        cams.append(cam)
    return cams


# --------------------------------------------------------------------------- trajectories


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def simulate_trajectories(cfg: SimulationConfig) -> np.ndarray:
    """Smooth 3D fish-like motion of ``cfg.n_targets`` targets in the tank.

    Model (integrated at ``dt = 1/fps``, vectorised over targets, after a 3 s
    warm-up), per target: forward speed ``s`` relaxes to ``mean_speed``
    (time constant 2 s) driven by a smooth Ornstein–Uhlenbeck acceleration
    (std of ``s`` ≈ 0.3 × mean, clipped to 0.3–2.5 × mean); the yaw rate is an
    OU process (std 0.9 rad/s, correlation 0.7 s, |rate| <= 5 rad/s); pitch
    follows an OU target (std 0.2 rad) and stays within ±0.7 rad. Walls, floor,
    water surface and other targets repel a look-ahead point 0.8 s ahead; the
    repulsion steers the yaw rate (second order, so heading and velocity stay
    smooth) and the pitch toward the escape direction and slows a target that
    heads into a wall; bodies closer than one body length are also pushed
    apart sideways (both ranges scaled by ``cfg.repulsion``). This keeps every
    body centre >= half a body length + 1 cm
    from each face of the tank (the whole body in the water); a final clip to
    that inner box is only a safety net and does not engage in practice.
    Accelerations stay below ~3 m/s² for the defaults.

    Returns ``(n_frames, n_targets, 3) float64`` world positions in m of the
    body centres (world origin at the centre of the tank floor, ``z`` up).
    Deterministic given ``cfg.seed``.
    """
    rng = np.random.default_rng([cfg.seed, 0x51D, 2])
    N, T = cfg.n_targets, cfg.n_frames
    dt = 1.0 / cfg.fps
    mu = cfg.mean_speed
    X, Y, Z = cfg.tank_size
    m = cfg.target_length / 2 + 0.01
    lo = np.array([-X / 2 + m, -Y / 2 + m, m])
    hi = np.array([X / 2 - m, Y / 2 - m, Z - m])
    band = np.array([0.15, 0.15, 0.08]) * np.clip(np.array([X, Y, Z * 2]) / 1.0, 0.5, 1.0)
    # OU parameters
    tau_a, sig_s, tau_s = 0.5, 0.4 * mu, 2.0
    sig_a = sig_s * np.sqrt(2.0 / (tau_a * tau_s) * (1.0 + tau_a / tau_s))  # stationary std of s ≈ sig_s
    tau_w, sig_w = 0.7, 0.9
    tau_th, sig_th, tau_pitch = 1.5, 0.2, 0.4
    k_yaw, k_pitch, lookahead, w_max = 15.0, 1.5, 0.8, 5.0
    d_rep, w_rep = 2.0 * cfg.target_length * cfg.repulsion, 1.5
    d_sep, v_sep = cfg.target_length * cfg.repulsion, 2.0 * mu

    p = rng.uniform(lo + band, hi - band, (N, 3)) if np.all(hi - lo > 2 * band) else rng.uniform(lo, hi, (N, 3))
    psi = rng.uniform(-np.pi, np.pi, N)
    theta = np.zeros(N)
    s = np.full(N, mu)
    a_s = np.zeros(N)
    w = rng.normal(0.0, sig_w, N)
    th_n = rng.normal(0.0, sig_th, N)
    n_warm = int(round(3.0 * cfg.fps))
    out = np.empty((T, N, 3))
    sq = np.sqrt(dt)
    for k in range(n_warm + T):
        if k >= n_warm:
            out[k - n_warm] = p
        xi = rng.standard_normal((3, N))
        h = np.column_stack([np.cos(theta) * np.cos(psi), np.cos(theta) * np.sin(psi), np.sin(theta)])
        q = p + h * (s * lookahead)[:, None]
        rep = np.clip((band - (q - lo)) / band, 0, None) ** 2 - np.clip((band - (hi - q)) / band, 0, None) ** 2
        push = 0.0
        if N > 1:
            diff = q[:, None, :] - q[None, :, :]
            dd = np.linalg.norm(diff, axis=2) + np.eye(N)
            strength = np.clip((d_rep - dd) / d_rep, 0, None) ** 2
            np.fill_diagonal(strength, 0.0)
            rep += w_rep * np.einsum("ij,ijk->ik", strength / dd, diff)
            # short-range sideways separation of bodies that still come close (smooth in the positions)
            diff = p[:, None, :] - p[None, :, :]
            dd = np.linalg.norm(diff, axis=2) + np.eye(N)
            strength = np.clip((d_sep - dd) / d_sep, 0, None) ** 2
            np.fill_diagonal(strength, 0.0)
            push = v_sep * np.einsum("ij,ijk->ik", strength / dd, diff) * dt
        g = np.hypot(rep[:, 0], rep[:, 1])
        psi_r = np.arctan2(rep[:, 1], rep[:, 0])
        dpsi = _wrap(psi_r - psi)
        # facing (nearly) away from the escape direction (e.g. into a corner): keep turning the way we
        # already turn instead of dithering between left and right
        flip = (np.abs(dpsi) > 2.0) & (np.sign(dpsi) != np.sign(w)) & (np.abs(w) > 0.05)
        dpsi = np.where(flip, dpsi - np.sign(dpsi) * 2 * np.pi, dpsi)
        steer = k_yaw * np.minimum(g, 1.5) * dpsi * (g > 0)
        th_des = np.clip(th_n + k_pitch * rep[:, 2], -0.7, 0.7)
        # integrate
        # slow down while heading into a wall (continuous in all state variables)
        brake = 1.0 - 0.5 * np.clip(g, 0, 1) * np.clip(-np.cos(dpsi), 0, None)
        p = p + h * (s * brake * dt)[:, None] + push
        psi = _wrap(psi + w * dt)
        theta = np.clip(theta + (th_des - theta) * (dt / tau_pitch), -0.7, 0.7)
        s = np.clip(s + (a_s + (mu - s) / tau_s) * dt, 0.3 * mu, 2.5 * mu)
        a_s += -a_s * (dt / tau_a) + sig_a * sq * xi[0]
        w += (steer - w / tau_w) * dt + sig_w * np.sqrt(2.0 / tau_w) * sq * xi[1]
        w = np.clip(w, -w_max, w_max)
        th_n += -th_n * (dt / tau_th) + sig_th * np.sqrt(2.0 / tau_th) * sq * xi[2]
        p = np.clip(p, lo, hi)
    return out


def headings_from_trajectories(positions: np.ndarray, fps: float) -> np.ndarray:
    """Unit heading vectors ``(T, N, 3)`` from ``(T, N, 3)`` positions (central differences).

    Where a target does not move (or ``T == 1``) the heading falls back to the
    previous frame's heading, or ``+x``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    T = positions.shape[0]
    if T < 2:
        v = np.zeros_like(positions)
    else:
        v = np.gradient(positions, 1.0 / fps, axis=0)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    h = np.where(norm > 1e-9, v / np.maximum(norm, 1e-12), np.nan)
    for t in range(T):
        bad = np.isnan(h[t, :, 0])
        if bad.any():
            h[t, bad] = h[t - 1, bad] if t > 0 else np.array([1.0, 0.0, 0.0])
    return h


# --------------------------------------------------------------------------- rendering helpers


def _pixel_rays(camera: Camera, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ray directions ``(x/z, y/z)`` of every pixel centre of the image padded by ``pad`` px.

    Returns ``rays (H+2p, W+2p, 2) float64`` and ``valid (H+2p, W+2p) bool``
    (False where undistortion did not converge, i.e. the pixel is outside the
    invertible part of the lens model). Pixel ``(i, j)`` of the padded grid is
    image pixel ``(i - pad, j - pad)``, whose ray goes through
    ``u = j - pad + 0.5, v = i - pad + 0.5``.
    """
    W, H = camera.size
    u = np.arange(-pad, W + pad, dtype=np.float64) + 0.5
    v = np.arange(-pad, H + pad, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(u, v)
    uv = np.stack([uu, vv], axis=-1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    if camera.fisheye:
        xy = cv2.fisheye.undistortPoints(uv, camera.K, camera.dist, criteria=crit)
        back = cv2.fisheye.projectPoints(np.concatenate([xy, np.ones((len(xy), 1, 1))], axis=2),
                                         np.zeros(3), np.zeros(3), camera.K, camera.dist)[0]
    else:
        xy = cv2.undistortPointsIter(uv, camera.K, camera.dist, None, None, crit)
        back = cv2.projectPoints(np.concatenate([xy, np.ones((len(xy), 1, 1))], axis=2).reshape(-1, 3),
                                 np.zeros(3), np.zeros(3), camera.K, camera.dist)[0]
    err = np.linalg.norm(back.reshape(-1, 2) - uv.reshape(-1, 2), axis=1)
    shape = (H + 2 * pad, W + 2 * pad)
    valid = (err < 0.01) & np.all(np.isfinite(xy.reshape(-1, 2)), axis=1)
    return xy.reshape(*shape, 2), valid.reshape(shape)


def _radius_limit(camera: Camera, r_table: float) -> float:
    """Largest normalised radius ``|x/z, y/z|`` at which projections are trusted (before the lens model folds)."""
    r = np.linspace(0.0, 6.0, 6001)
    d = camera.dist
    if camera.fisheye:
        th = np.arctan(r)
        k = np.zeros(4)
        k[: min(4, len(d))] = d[:4]
        rd = th * (1 + k[0] * th ** 2 + k[1] * th ** 4 + k[2] * th ** 6 + k[3] * th ** 8)
    else:
        k = np.zeros(8)
        k[: min(8, len(d))] = d[:8]
        r2 = r ** 2
        rd = r * (1 + k[0] * r2 + k[1] * r2 ** 2 + k[4] * r2 ** 3) / (1 + k[5] * r2 + k[6] * r2 ** 2 + k[7] * r2 ** 3)
    dec = np.nonzero(np.diff(rd) <= 0)[0]
    r_fold = r[dec[0]] if len(dec) else r[-1]
    return float(min(1.3 * r_table, 0.95 * r_fold))


def _fbm(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, cell: float, octaves: int = 3,
         n: int = 128) -> np.ndarray:
    """Smooth fractal value noise (≈ zero mean, std ≈ 0.5) at world coordinates ``u, v`` (m), float32."""
    out = np.zeros(u.shape, np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        grid = rng.standard_normal((n, n)).astype(np.float32)
        mx = (u / cell).astype(np.float32) % n
        my = (v / cell).astype(np.float32) % n
        out += amp * cv2.remap(grid, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
        total += amp ** 2
        amp *= 0.5
        cell *= 0.5
    return out * (0.5 / np.sqrt(total))


def _rim_mask(camera: Camera, rays: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    """``(h, w) bool``: pixels (given their ``(h, w, 2)`` normalised rays) that see the opaque tank rim.

    The rim is a band ``2 % · max(X, Y)`` wide around the top edge of the tank
    (``z = Z``, just outside the walls). A ray that meets it crossed no water
    yet, so the rim hides any target behind it (it is a static occluder).
    """
    X, Y, Z = cfg.tank_size
    C = camera.center
    if C[2] <= Z:
        return np.zeros(rays.shape[:2], bool)
    d = np.concatenate([rays, np.ones(rays.shape[:2] + (1,))], axis=2) @ camera.R
    with np.errstate(divide="ignore", invalid="ignore"):
        tz = (Z - C[2]) / d[..., 2]
        P = C + d * tz[..., None]
        ex = np.maximum(np.abs(P[..., 0]) - X / 2, np.abs(P[..., 1]) - Y / 2)
        return (tz > 0) & (ex >= 0) & (ex < 0.02 * max(X, Y))


def tank_interface(cfg: SimulationConfig, camera: Camera | None = None) -> FlatInterface | None:
    """The refractive face of the tank that ``camera`` looks through (air 1.0 → ``cfg.water_index``), else None.

    None without ``cfg.refraction``. The water surface ``z = Z`` (normal
    ``+z``) for a camera above the tank's rim (every camera of the ``orbit``
    rig, the top camera of ``top_front``) or when ``camera`` is None; for a
    camera below the rim (``top_front``'s level cameras) the side wall it
    faces, ``x = ±X/2`` or ``y = ±Y/2`` (whichever the camera centre lies
    farthest beyond, relative to the tank's half sizes), normal pointing out
    of the tank towards the camera. The glass is taken as thin (one air–water
    interface, as 3D-ZeF's reconstruction does).
    """
    if not cfg.refraction:
        return None
    X, Y, Z = cfg.tank_size
    if camera is None or camera.center[2] >= Z:
        return FlatInterface.horizontal(Z, 1.0, cfg.water_index)
    c = camera.center
    k = int(np.argmax(np.abs(c[:2]) / np.array([X / 2, Y / 2])))
    normal = np.zeros(3)
    normal[k] = 1.0 if c[k] >= 0 else -1.0
    point = np.array([0.0, 0.0, Z / 2])
    point[k] = normal[k] * (X, Y)[k] / 2
    return FlatInterface(normal, point, 1.0, cfg.water_index)


def _water_rays(camera: Camera, rays: np.ndarray, cfg: SimulationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refracted rays of ``(h, w, 2)`` normalised pixel rays into the refractive tank's water.

    Returns world ``origins (h, w, 3)`` (refraction points on the camera's
    interface), unit ``directions (h, w, 3)`` and ``inside (h, w) bool``: the
    ray enters the water through the face of the tank that the interface
    holds (its refraction point lies within the tank's bounds, e.g.
    ``|x| < X/2, |y| < Y/2`` on the surface ``z = Z``); the other faces are
    opaque, so no other ray reaches the water.
    """
    X, Y, Z = cfg.tank_size
    shape = rays.shape[:2]
    d = np.concatenate([rays, np.ones(shape + (1,))], axis=2).reshape(-1, 3) @ camera.R
    with np.errstate(invalid="ignore"):
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        o, t = camera.interface.back_project(camera.center, d)
        eps = 1e-9  # the refraction point lies on a face of the box: one coordinate equals its bound
        inside = (np.abs(o[:, 0]) < X / 2 + eps) & (np.abs(o[:, 1]) < Y / 2 + eps) & (o[:, 2] > -eps) \
            & (o[:, 2] < Z + eps) & np.isfinite(t).all(1) & (np.abs(camera.interface.signed_distance(o)) < 1e-9)
    return o.reshape(shape + (3,)), t.reshape(shape + (3,)), inside.reshape(shape)


def _render_background(camera: Camera, rays: np.ndarray, cfg: SimulationConfig,
                       rng: np.random.Generator, water: tuple | None = None) -> np.ndarray:
    """Static background ``(H, W, 3) uint8`` BGR: tank floor and walls, rim, table, room.

    ``rays`` are the image's ``(H, W, 2)`` normalised pixel rays. Each ray is
    traced through the world (no refraction) to the first surface: the dark
    tank rim, else the inside of the tank (floor / far walls, through the
    water), else a table top at ``z = 0`` or the room floor below. With
    ``water`` (:func:`_water_rays` of the same pixels: refractive tank) the
    inside is seen only through the surface, along the refracted rays, and
    a ray meeting a wall from outside shows the opaque wall.
    """
    X, Y, Z = cfg.tank_size
    H, W = rays.shape[:2]
    R = camera.R
    C = camera.center
    d = np.concatenate([rays, np.ones((H, W, 1))], axis=2) @ R  # world directions (Rᵀ d_cam)
    with np.errstate(divide="ignore", invalid="ignore"):
        # slab test against the water box
        lo = np.array([-X / 2, -Y / 2, 0.0])
        hi = np.array([X / 2, Y / 2, Z])
        t1 = (lo - C) / d
        t2 = (hi - C) / d
        tmin = np.nanmax(np.minimum(t1, t2), axis=2)
        tmax = np.nanmin(np.maximum(t1, t2), axis=2)
        exit_axis = np.argmin(np.maximum(t1, t2), axis=2)
        enter_axis = np.argmax(np.minimum(t1, t2), axis=2)
        hit_box = (tmax > np.maximum(tmin, 0)) & np.isfinite(tmax)
        P = C + d * tmax[..., None]  # exit point (floor / far wall)
        interior = hit_box
        if water is not None:  # refracted rays from the surface to the floor / far walls
            Ow, Dw, interior = water
            t_exit = np.maximum((lo - Ow) / Dw, (hi - Ow) / Dw)
            exit_axis = np.where(interior, np.argmin(np.where(np.isnan(t_exit), np.inf, t_exit), axis=2), exit_axis)
            P = np.where(interior[..., None], Ow + Dw * np.nanmin(t_exit, axis=2)[..., None], P)
            P_in = C + d * tmin[..., None]  # where an air ray meets the tank from outside
        t0 = -C[2] / d[..., 2]  # z = 0 plane
        P0 = C + d * t0[..., None]
        tz = (Z - C[2]) / d[..., 2]  # water surface plane
        Pz = C + d * tz[..., None]
        t_room = (-0.8 - C[2]) / d[..., 2]
        Pr = C + d * t_room[..., None]

    img = np.zeros((H, W, 3), np.float32)
    # --- room floor / walls (everything not covered below)
    room = 75 + 14 * _fbm(rng, Pr[..., 0], Pr[..., 1], 0.5, 3)
    tiles = ((np.floor(Pr[..., 0] / 0.6) + np.floor(Pr[..., 1] / 0.6)) % 2) * 10
    room = np.where((t_room > 0) & (t_room < 12), room + tiles, 105.0)
    img[:] = room[..., None] * np.array([0.95, 1.0, 1.0], np.float32)
    # --- table top (z = 0, outside the tank)
    tx, ty = 1.6 * max(X, Y) / 2 + 0.3, 1.6 * max(X, Y) / 2 + 0.3
    table = (t0 > 0) & (np.abs(P0[..., 0]) < tx) & (np.abs(P0[..., 1]) < ty) & ~hit_box
    grain = 118 + 10 * _fbm(rng, P0[..., 0] * 0.3, P0[..., 1] * 4.0, 0.2, 3) + 6 * _fbm(rng, P0[..., 0], P0[..., 1], 0.05, 2)
    img[table] = (grain[table, None] * np.array([0.72, 0.86, 1.0], np.float32))
    # --- tank interior: floor and (far) walls
    floor = interior & (exit_axis == 2)
    fx, fy = P[..., 0], P[..., 1]
    floor_b = 196 + 16 * _fbm(rng, fx, fy, 0.3, 3) + 7 * _fbm(rng, fx, fy, 0.012, 2)
    gx = np.abs((fx / 0.1) - np.round(fx / 0.1)) * 0.1
    gy = np.abs((fy / 0.1) - np.round(fy / 0.1)) * 0.1
    floor_b -= 22 * np.exp(-(np.minimum(gx, gy) / 0.0025) ** 2)
    floor_b *= 0.82 + 0.18 * np.exp(-(fx ** 2 + fy ** 2) / (0.3 * max(X, Y) ** 2))
    img[floor] = floor_b[floor, None] * np.array([0.84, 0.94, 1.0], np.float32)
    walls = interior & (exit_axis != 2)
    s_w = np.where(exit_axis == 0, P[..., 1], P[..., 0])
    z_w = P[..., 2]
    wall_b = 182 + 12 * _fbm(rng, s_w, z_w, 0.25, 3) + 4 * _fbm(rng, s_w, z_w, 0.01, 2)
    wall_b *= 0.8 + 0.2 * np.clip(z_w / Z, 0, 1)
    corner = np.minimum(np.abs(np.abs(P[..., 0]) - X / 2) + np.abs(np.abs(P[..., 1]) - Y / 2), 1.0)
    wall_b *= 1 - 0.15 * np.exp(-(corner / 0.006) ** 2)  # vertical wall-wall seams
    wall_b *= 1 - 0.2 * np.exp(-(z_w / 0.005) ** 2)  # floor seam
    wall_b *= 1 - 0.25 * np.exp(-((Z - z_w) / 0.006) ** 2)  # waterline
    img[walls] = wall_b[walls, None] * np.array([1.0, 0.96, 0.86], np.float32)
    # seen through a side (glass) wall rather than the surface: slightly darker / greener
    if water is None:
        glass = hit_box & (enter_axis != 2) & (tmin > 0)
        img[glass] *= np.array([0.9, 0.95, 0.9], np.float32)
    # --- rim around the top of the tank (nearest surface for cameras above it)
    rim = _rim_mask(camera, rays, cfg)
    img[rim] = (52 + 6 * _fbm(rng, Pz[..., 0], Pz[..., 1], 0.05, 2))[rim, None]
    if water is not None:  # opaque (grey plastic) walls seen from outside
        outer = hit_box & ~interior & ~rim
        ext = 128 + 8 * _fbm(rng, P_in[..., 0] + P_in[..., 1], P_in[..., 2], 0.1, 2)
        img[outer] = ext[outer, None] * np.array([0.92, 0.95, 1.0], np.float32)
    # --- lens vignetting and a little optical blur
    K = camera.K
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx + 0.5 - K[0, 2]) ** 2 + (yy + 0.5 - K[1, 2]) ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)
    img *= (1 - 0.22 * r2)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _body_axes(headings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body frame ``(e1 heading, e2 lateral, e3 dorsal)`` unit vectors, each ``(..., 3)``."""
    e1 = headings / np.linalg.norm(headings, axis=-1, keepdims=True)
    up = np.broadcast_to(np.array([0.0, 0.0, 1.0]), e1.shape)
    e2 = np.cross(up, e1)
    n2 = np.linalg.norm(e2, axis=-1, keepdims=True)
    alt = np.cross(np.broadcast_to(np.array([0.0, 1.0, 0.0]), e1.shape), e1)
    e2 = np.where(n2 > 1e-6, e2, alt)
    e2 /= np.linalg.norm(e2, axis=-1, keepdims=True)
    e3 = np.cross(e1, e2)
    return e1, e2, e3


def _sphere_samples(n: int) -> np.ndarray:
    """``(n, 3)`` Fibonacci points on the unit sphere."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z ** 2)
    phi = i * np.pi * (3 - np.sqrt(5))
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def render_camera(camera: Camera, positions: np.ndarray, headings: np.ndarray, cfg: SimulationConfig,
                  rng: np.random.Generator, shown: np.ndarray | None = None,
                  blank: np.ndarray | None = None) -> tuple[Iterator[np.ndarray], np.ndarray]:
    """Render one camera's view of the targets and compute its 2D ground truth.

    Parameters
    ----------
    camera : Camera
        Calibrated camera (world→camera ``x_cam = R · X + t``; pinhole or
        fisheye). Images have ``camera.size``.
    positions : (T, N, 3) float
        Target centres in world m (frame index × target index).
    headings : (T, N, 3) float
        Heading vectors (ellipsoid long axes, any length > 0).
    cfg : SimulationConfig
        Body size (``target_length``, ``target_width``), tank size (for the
        background) and ``noise_sigma``.
    rng : numpy Generator
        Source of the background texture, per-target colours and sensor
        noise. The ground truth does not depend on it.
    shown : (T, N) bool, optional
        Whether this camera can see each target in each frame (default all);
        a hidden target is neither drawn nor occludes others and has no GT row.
    blank : (T,) bool, optional
        Frames in which the camera is out (black image plus sensor noise, no
        GT rows); default none.

    Returns
    -------
    frames : iterator of (H, W, 3) uint8 BGR
        ``T`` frames, rendered lazily: the static textured background, the
        targets as shaded, anti-aliased dark ellipsoids ray-cast through the
        full camera model (distortion included) and drawn farthest first
        (hidden where the opaque tank rim is in front of them), then
        Gaussian sensor noise (σ = ``cfg.noise_sigma`` grey levels).
    gt : (M,) structured array of :data:`GT2D_DTYPE`
        Computed eagerly, one row per (frame, target) whose silhouette has at
        least one pixel in the image, sorted by frame then target:
        ``frame`` (0-based), ``target_id`` (1-based = index + 1), the tight box
        ``x, y, w, h`` (int px, top-left corner convention, see module
        docstring) of the silhouette pixels inside the image, and
        ``visibility`` = (silhouette pixels inside the image and not hidden by
        a nearer target or the tank rim) / (all silhouette pixels, counted up
        to 64 px beyond the image border).

    Targets with any part behind the camera (``z_cam < 1 cm``) or outside the
    region where the lens model is invertible are skipped for that frame
    (never drawn, no row) instead of being wrapped around by the distortion.

    A :class:`~mctrack.calibration.refraction.RefractiveCamera` (refractive
    tank) renders through its interface: each pixel's ray is refracted at the
    water surface (:func:`_water_rays`) and cast from its refraction point;
    pixels whose ray does not enter the water through the tank's opening see
    no target (opaque walls); patch bounds come from the refractive
    projection of the ellipsoid samples.
    """
    positions = np.asarray(positions, dtype=np.float64)
    headings = np.asarray(headings, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[2] != 3 or headings.shape != positions.shape:
        raise ValueError(f"positions and headings must both be (T, N, 3), got {positions.shape}, {headings.shape}")
    T, N = positions.shape[:2]
    W, H = camera.size
    M = _PAD
    rays, ray_ok = _pixel_rays(camera, M)
    r_table = float(np.linalg.norm(rays[ray_ok], axis=1).max()) if ray_ok.any() else 0.0
    r_lim = _radius_limit(camera, r_table)
    R, tvec = camera.R, camera.tvec
    refractive = getattr(camera, "interface", None) is not None
    semi = np.array([cfg.target_length / 2, cfg.target_width / 2, cfg.target_width / 2])
    fpx = float(camera.K[0, 0])

    # ---- project ellipsoid surface samples of all targets in all frames (patch bounds, culling)
    e1, e2, e3 = _body_axes(headings)
    S = _sphere_samples(_N_SAMPLES) * semi  # (P, 3) body coordinates
    pts = (positions[:, :, None, :] + S[None, None, :, 0:1] * e1[:, :, None, :]
           + S[None, None, :, 1:2] * e2[:, :, None, :] + S[None, None, :, 2:3] * e3[:, :, None, :])
    pts = pts.reshape(-1, 3)
    if refractive:  # image of an underwater point = image of its refraction point on the surface
        pts = np.where((camera.interface.signed_distance(pts) < 0)[:, None],
                       camera.interface.refraction_point(camera.center, pts), pts)
    pc = pts @ R.T + tvec
    with np.errstate(divide="ignore", invalid="ignore"):
        rn = np.linalg.norm(pc[:, :2] / pc[:, 2:3], axis=1)
    ok = (pc[:, 2] > 0.01) & (rn < r_lim) & np.isfinite(pc).all(1)
    uv = np.full((len(pc), 2), np.nan)
    if ok.any():
        if camera.fisheye:
            uv[ok] = cv2.fisheye.projectPoints(pc[ok][:, None, :], np.zeros(3), np.zeros(3), camera.K,
                                               camera.dist)[0].reshape(-1, 2)
        else:
            uv[ok] = cv2.projectPoints(pc[ok], np.zeros(3), np.zeros(3), camera.K, camera.dist)[0].reshape(-1, 2)
    uv = uv.reshape(T, N, _N_SAMPLES, 2)
    target_ok = ok.reshape(T, N, _N_SAMPLES).all(axis=2)
    blank = np.zeros(T, bool) if blank is None else np.asarray(blank, bool)
    if shown is not None:
        target_ok &= np.asarray(shown, bool)
    target_ok &= ~blank[:, None]
    uv = np.where(target_ok[..., None, None], uv, 0.0)
    umin = np.floor(uv.min(axis=2)).astype(np.int64) - 3
    umax = np.floor(uv.max(axis=2)).astype(np.int64) + 4

    # ---- refracted pixel rays (camera frame), then the static background, then per-target appearance
    # (this order keeps the background independent of N)
    water = None
    if refractive:
        Ow, Dw, inside = _water_rays(camera, rays, cfg)
        water = (Ow, Dw, inside)
        o_cam = Ow @ R.T + tvec  # (Hp, Wp, 3) ray origins on the surface, camera frame
        d_cam = Dw @ R.T  # unit directions, camera frame
        ray_ok = ray_ok & inside
    background = _render_background(camera, rays[M:M + H, M:M + W], cfg, rng,
                                    None if water is None else tuple(a[M:M + H, M:M + W] for a in water))
    light_w = np.array([0.3, -0.2, 1.0])
    light_c = R @ (light_w / np.linalg.norm(light_w))
    albedo = (rng.uniform(52, 75, N)[:, None] * rng.uniform(0.85, 1.15, (N, 3))).astype(np.float32)

    cc_all = positions @ R.T + tvec  # (T, N, 3) camera-frame centres
    Q_all = np.stack([e1, e2, e3], axis=-1)  # (T, N, 3 world, 3 body)
    Q_all = np.einsum("ij,tnjk->tnik", R, Q_all)  # camera-frame body axes as columns

    Hp, Wp = H + 2 * M, W + 2 * M
    zbase = np.where(_rim_mask(camera, rays, cfg) & ray_ok, -np.inf, np.inf)  # the rim hides targets behind it
    zbuf = zbase.copy()
    label = np.full((Hp, Wp), -1, np.int16)
    gt_rows = []
    draws: list[list[tuple]] = []
    for t in range(T):
        items = []
        for n in range(N):
            if not target_ok[t, n]:
                continue
            j0, i0 = max(umin[t, n, 0] + M, 0), max(umin[t, n, 1] + M, 0)
            j1, i1 = min(umax[t, n, 0] + M, Wp), min(umax[t, n, 1] + M, Hp)
            if j1 <= j0 or i1 <= i0:
                continue
            rr = rays[i0:i1, j0:j1]
            Q, cc = Q_all[t, n], cc_all[t, n]
            if refractive:  # ray x = o + τ·d from the refraction point, ellipsoid-normalised x' = D⁻¹ Qᵀ x
                dp = (d_cam[i0:i1, j0:j1] @ Q) / semi
                cp = ((cc - o_cam[i0:i1, j0:j1]) @ Q) / semi  # (h, w, 3): centre relative to each origin
                dc = np.einsum("hwk,hwk->hw", dp, cp)
                cc2 = np.einsum("hwk,hwk->hw", cp, cp)
            else:  # ray x = τ·(rx, ry, 1) in ellipsoid-normalised coordinates: x' = D⁻¹ Qᵀ x
                dp = (rr[..., 0:1] * Q[0] + rr[..., 1:2] * Q[1] + Q[2]) / semi  # (h, w, 3)
                cp = (Q.T @ cc) / semi
                dc = dp @ cp
                cc2 = cp @ cp
            dd = np.einsum("hwk,hwk->hw", dp, dp)
            tau_c = dc / dd
            s2 = cc2 - dc * tau_c
            s2 = np.where(ray_ok[i0:i1, j0:j1], s2, np.inf)  # NaN rays (outside the water) give no hit
            hit = s2 < 1.0
            if not hit.any():
                continue
            tau = tau_c - np.sqrt(np.clip(1.0 - s2, 0, None) / dd)
            # anti-aliasing: (1 - s)·r_px ≈ signed px distance to the silhouette
            r_px = semi[1] * fpx / max(cc[2], 1e-6)
            alpha = np.clip(0.5 + (1.0 - np.sqrt(np.minimum(s2, 4.0))) * r_px, 0.0, 1.0).astype(np.float32)
            nb = tau[..., None] * dp - cp  # unit-sphere normal
            nc = (nb / semi) @ Q.T  # camera-frame normal (inverse-transpose)
            nc /= np.linalg.norm(nc, axis=-1, keepdims=True) + 1e-12
            lam = np.clip(nc @ light_c, 0, None)
            shade = (0.42 + 0.75 * lam).astype(np.float32)
            col = shade[..., None] * albedo[n]
            depth = np.where(hit, tau, np.inf)
            items.append((n, i0, i1, j0, j1, hit, depth, alpha, col, cc[2]))
        # z-buffer for visibility
        for n, i0, i1, j0, j1, _hit, depth, *_ in items:
            zb = zbuf[i0:i1, j0:j1]
            closer = depth < zb
            zb[closer] = depth[closer]
            label[i0:i1, j0:j1][closer] = n
        frame_draws = []
        for n, i0, i1, j0, j1, hit, _depth, alpha, col, zc in items:
            # image part of the patch
            a0, a1 = max(i0, M), min(i1, M + H)
            b0, b1 = max(j0, M), min(j1, M + W)
            if a1 > a0 and b1 > b0:
                sub = hit[a0 - i0:a1 - i0, b0 - j0:b1 - j0]
                if sub.any():
                    vis = np.count_nonzero(label[a0:a1, b0:b1] == n) / np.count_nonzero(hit)
                    rows = np.nonzero(sub.any(axis=1))[0]
                    cols = np.nonzero(sub.any(axis=0))[0]
                    x, y = b0 - M + cols[0], a0 - M + rows[0]
                    gt_rows.append((t, n + 1, x, y, cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1, vis))
                al = alpha[a0 - i0:a1 - i0, b0 - j0:b1 - j0] * (zbase[a0:a1, b0:b1] > 0)
                if al.any():
                    frame_draws.append((zc, a0 - M, b0 - M, al[..., None], col[a0 - i0:a1 - i0, b0 - j0:b1 - j0]))
        for _n, i0, i1, j0, j1, *_ in items:
            zbuf[i0:i1, j0:j1] = zbase[i0:i1, j0:j1]
            label[i0:i1, j0:j1] = -1
        frame_draws.sort(key=lambda d: -d[0])  # painter's order: farthest first
        draws.append([d[1:] for d in frame_draws])
    gt = np.array(gt_rows, dtype=GT2D_DTYPE)

    sigma = cfg.noise_sigma
    if sigma > 0:
        bank = np.clip(rng.standard_normal((4, H + 32, W + 32, 3)) * sigma, -4 * sigma, 4 * sigma)
        noise_pos = np.clip(bank, 0, 255).round().astype(np.uint8)
        noise_neg = np.clip(-bank, 0, 255).round().astype(np.uint8)
        del bank
        picks = rng.integers(0, [4, 33, 33, 33, 33], size=(T, 5))

    def frames() -> Iterator[np.ndarray]:
        for t in range(T):
            img = np.zeros_like(background) if blank[t] else background.copy()
            for y0, x0, al, col in draws[t]:
                h, w = al.shape[:2]
                reg = img[y0:y0 + h, x0:x0 + w].astype(np.float32)
                reg += al * (col - reg)
                img[y0:y0 + h, x0:x0 + w] = (reg + 0.5).astype(np.uint8)
            if sigma > 0:
                k, oy, ox, oy2, ox2 = picks[t]
                cv2.add(img, noise_pos[k, oy:oy + H, ox:ox + W], dst=img)
                cv2.subtract(img, noise_neg[k, oy2:oy2 + H, ox2:ox2 + W], dst=img)
            yield img

    return frames(), gt


# --------------------------------------------------------------------------- driver


def visibility_plan(cfg: SimulationConfig, n_cameras: int) -> tuple[np.ndarray, np.ndarray]:
    """Which camera may see which target when, from the scenario knobs of ``cfg``.

    Returns ``shown (C, T, N) bool`` (False: the last ``cfg.two_camera_targets``
    targets in every camera but the first two) and ``blank (C, T) bool``
    (camera ``cfg.gap_camera`` during ``cfg.gap_frames``). Raises
    :class:`~mctrack.errors.InputError` when ``gap_camera`` is not a camera
    index or ``two_camera_targets`` is set with fewer than 3 cameras.
    """
    C, T, N = n_cameras, cfg.n_frames, cfg.n_targets
    shown = np.ones((C, T, N), bool)
    blank = np.zeros((C, T), bool)
    if cfg.gap_camera >= C:
        raise InputError(None, "simulate.gap_camera", f"camera index {cfg.gap_camera} but only {C} cameras",
                         f"use 0..{C - 1} or -1")
    if cfg.gap_camera >= 0:
        blank[cfg.gap_camera, cfg.gap_frames[0]:cfg.gap_frames[1]] = True
    if cfg.two_camera_targets:
        if C < 3:
            raise InputError(None, "simulate.two_camera_targets", f"needs >= 3 cameras, got {C}",
                             "use 0 with two cameras")
        shown[2:, :, N - cfg.two_camera_targets:] = False
    return shown, blank


def camera_rng(cfg: SimulationConfig, index: int) -> np.random.Generator:
    """The random generator :func:`run_simulation` passes to :func:`render_camera` for camera ``index`` (0-based)."""
    return np.random.default_rng([cfg.seed, 0x51D, 3, int(index)])


def _format_gt2d(gt: np.ndarray) -> str:
    conf = (gt["visibility"] >= _VIS_CONF).astype(int)
    return "".join(f"{f + 1},{i},{x + 1},{y + 1},{w},{h},{c},1,{v:.4f}\n" for f, i, x, y, w, h, c, v in
                   zip(gt["frame"], gt["target_id"], gt["x"], gt["y"], gt["w"], gt["h"], conf, gt["visibility"]))


def _format_gt3d(positions: np.ndarray) -> str:
    T, N = positions.shape[:2]
    lines = ["frame,target_id,x,y,z\n"]
    for t in range(T):
        for n in range(N):
            x, y, z = positions[t, n]
            lines.append(f"{t},{n + 1},{x:.6f},{y:.6f},{z:.6f}\n")
    return "".join(lines)


def check_output_paths(camera_names, videos: dict, gt2d: dict) -> list[str]:
    """``camera_names`` as a list; InputError naming the mapping when ``videos`` or ``gt2d`` lacks a camera."""
    names = list(camera_names)
    for what, mapping in (("videos", videos), ("gt2d", gt2d)):
        missing = [c for c in names if c not in mapping]
        if missing:
            raise InputError(None, what, f"no output path for camera(s) {missing}", "give one path per camera")
    return names


def _render_and_write(cam, positions, headings, cfg, index, shown, blank, video, gt2d_path) -> None:
    """Render camera ``index`` and write its video and 2D ground truth (one job of :func:`run_simulation`)."""
    frames, gt = render_camera(cam, positions, headings, cfg, camera_rng(cfg, index), shown, blank)
    with VideoWriter(video, cfg.fps, cfg.width, cfg.height) as writer:
        for img in frames:
            writer.write(img)
    with atomic_path(gt2d_path) as tmp:
        Path(tmp).write_text(_format_gt2d(gt))


def run_simulation(cfg: SimulationConfig, camera_names: list[str], videos: dict[str, str | os.PathLike],
                   calibration: str | os.PathLike, gt3d: str | os.PathLike,
                   gt2d: dict[str, str | os.PathLike], workers: int = 1) -> None:
    """Generate the whole synthetic session and write it (every file atomically).

    Writes
    ------
    ``videos[name]``
        H.264 ``.mp4`` per camera, ``cfg.n_frames`` frames at ``cfg.fps``,
        ``cfg.width × cfg.height`` BGR (see :func:`render_camera`).
    ``calibration``
        anipose TOML of the rig from :func:`make_rig` (tables named after
        ``camera_names``; world→camera ``x_cam = R · X + t``, m); with
        ``cfg.refraction`` also the interfaces (:func:`tank_interface`):
        ``[interface]``, plus ``[<camera>.interface]`` for cameras looking
        through another face (``top_front``).
    ``gt3d``
        CSV with header ``frame,target_id,x,y,z``: 0-based frame, 1-based
        target id, body-centre world position in m (6 decimals).
    ``gt2d[name]``
        MOTChallenge ``gt.txt`` without header:
        ``frame,id,x,y,w,h,conf,class,visibility`` with 1-based frame (frame 1
        = first decoded video frame), ``id`` = target_id, the tight silhouette
        box clipped to the image (MOTChallenge 1-based px: ``bb_left = x + 1``,
        ``bb_top = y + 1`` for the 0-based top-left pixel x, y; width, height),
        ``conf`` = 1 if ``visibility >= 0.25`` else 0 (0 = ignore in
        MOTChallenge evaluation), ``class`` = 1, ``visibility`` = fraction of
        the silhouette inside the image and not occluded by nearer targets.
        Only targets whose silhouette overlaps the image get a row.

    ``workers`` > 1 renders that many cameras at once in worker processes
    (each camera has its own random generator, :func:`camera_rng`, so the
    output does not depend on it).

    Deterministic given ``cfg.seed``: trajectories, calibration and ground
    truth files are byte-identical between runs (the videos are too, as far as
    the H.264 encoder is). Raises :class:`~mctrack.errors.InputError` for an
    invalid rig (see :func:`make_rig`) or when ``videos`` / ``gt2d`` lack a
    camera of ``camera_names``.
    """
    names = check_output_paths(camera_names, videos, gt2d)
    cams = make_rig(names, cfg)
    if cfg.refraction:
        cams = [RefractiveCamera.of(c, tank_interface(cfg, c)) for c in cams]
    positions = simulate_trajectories(cfg)
    headings = headings_from_trajectories(positions, cfg.fps)
    shown, blank = visibility_plan(cfg, len(cams))
    jobs = [(cam, positions, headings, cfg, i, shown[i], blank[i], videos[cam.name], gt2d[cam.name])
            for i, cam in enumerate(cams)]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
            for f in [pool.submit(_render_and_write, *job) for job in jobs]:
                f.result()
    else:
        for job in jobs:
            _render_and_write(*job)
    write_anipose_toml(cams, calibration)
    with atomic_path(gt3d) as tmp:
        Path(tmp).write_text(_format_gt3d(positions))
