"""Camera sheet and session planning: what the workflow runs, checked before any work.

The config (validated against ``workflow/schemas/config.schema.yaml`` by the
Snakefile) names a camera sheet: a TSV with one row per camera and columns

=================  ========  ====================================================
column             required  meaning
=================  ========  ====================================================
session            yes       session name; outputs land in ``results/{session}/``
camera             yes       camera name (letters, digits, ``_ . -``)
video              yes       video file; relative paths are relative to the
                             working directory (where ``snakemake`` runs)
calibration        no        calibration file (anipose/Pose2Sim TOML, OpenCV YAML/XML,
                             Qualisys .qca.txt, JSON; see mctrack.calibration); with
                             ``board``: the intrinsics to keep (extrinsics-only calibration)
calibration_name   no        the camera's entry in that file (default: found by
                             camera name, see :func:`mctrack.calibration.find_camera`)
gt                 no        ground truth, MOTChallenge ``gt.txt`` (frame 1 = first decoded frame)
frame_offset       no        int; session frame = video frame − frame_offset (default 0)
board              no        board footage of this camera (image folder, glob such as
                             ``dir/*.png``, or video): the ``calibrate`` rule then writes
                             ``results/{session}/calibration.toml`` (config ``calibrate``)
=================  ========  ====================================================

Cameras of one session are frame-synchronised. :func:`plan_sessions` checks
every row (files exist, calibration entries resolve, one calibration file per
session, offsets are integers) and raises :class:`~mctrack.errors.InputError`
naming the sheet, row and column, before any job starts. Videos of the
synthetic session (``config['simulate']['session']``) do not exist yet when
the workflow is planned: the ``simulate`` rule writes them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import InputError

SHEET_COLUMNS = ("session", "camera", "video", "calibration", "calibration_name", "gt", "frame_offset", "board")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class CameraEntry:
    """One camera sheet row, with paths as given (str) and ``frame_offset`` (frames)."""

    camera: str
    video: str
    calibration: str | None = None
    calibration_name: str | None = None
    gt: str | None = None
    frame_offset: int = 0
    board: str | None = None


@dataclass(frozen=True)
class SessionPlan:
    """A session as the workflow runs it.

    ``n_frames``: session frames processed (the shortest camera after its
    offset, capped by ``max_frames``); ``fps``: Hz; ``chunks``: list of
    ``(start, stop)`` session-frame ranges, ``stop`` exclusive.
    ``calibrated``: ≥ 2 cameras with calibration, so association and
    triangulation run; otherwise they are skipped (logged).
    """

    session: str
    cameras: dict[str, CameraEntry]
    n_frames: int
    fps: float
    chunks: list[tuple[int, int]] = field(default_factory=list)
    synthetic: bool = False
    calibration_settings: dict = field(default_factory=dict)  # config calibrate.{rescale, unit}, for the jobs' checks

    @property
    def calibrate(self) -> bool:
        """True when the sheet names board footage: the ``calibrate`` rule makes the calibration."""
        return any(c.board for c in self.cameras.values())

    @property
    def intrinsics(self) -> str | None:
        """The sheet's calibration file (intrinsics only when :attr:`calibrate`), or None."""
        cals = {c.calibration for c in self.cameras.values() if c.calibration}
        return cals.pop() if cals else None

    @property
    def calibration(self) -> str | None:
        """The calibration later stages read: ``results/{session}/calibration.toml`` when
        :attr:`calibrate`, else the sheet's file, or None."""
        if self.calibrate:
            return f"results/{self.session}/calibration.toml"
        return self.intrinsics

    @property
    def calibrated(self) -> bool:
        """True when ≥ 2 cameras have a calibration (association/triangulation possible)."""
        return sum(1 for c in self.cameras.values() if c.calibration or c.board) >= 2

    @property
    def has_gt(self) -> bool:
        """True when at least one camera has a ground-truth file."""
        return any(c.gt for c in self.cameras.values())

    def chunk_ids(self) -> list[str]:
        """Chunk names ``"0000", "0001", …`` (the ``{chunk}`` wildcard)."""
        return [f"{i:04d}" for i in range(len(self.chunks))]


def read_camera_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """Read the camera sheet TSV (``#`` starts a comment) as strings; empty cells are ''.

    Raises :class:`~mctrack.errors.InputError` when the file is missing, a
    required column is absent or an unknown column is present.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "camera sheet not found", "set `cameras:` in the config to an existing TSV")
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#", keep_default_na=False, skip_blank_lines=True)
    sheet.columns = [c.strip() for c in sheet.columns]
    for col in ("session", "camera", "video"):
        if col not in sheet.columns:
            raise InputError(path, f"column '{col}'", "missing", "the sheet needs tab-separated columns session, camera, video")
    extra = [c for c in sheet.columns if c not in SHEET_COLUMNS]
    if extra:
        raise InputError(path, f"column '{extra[0]}'", "unknown", f"use only {list(SHEET_COLUMNS)} (tab-separated)")
    for col in SHEET_COLUMNS:
        if col not in sheet.columns:
            sheet[col] = ""
    return sheet.apply(lambda s: s.str.strip())


def plan_sessions(config: dict) -> dict[str, SessionPlan]:
    """Check the camera sheet named by ``config['cameras']`` and plan every session.

    ``config`` is the schema-validated workflow config (keys ``cameras``,
    ``chunk_frames``, ``max_frames``, ``simulate``). Reads video headers (not
    frames) to count frames. Raises :class:`~mctrack.errors.InputError` on the
    first problem found, naming the sheet row and column.
    """
    from .calibration.checks import check_session_calibration
    from .video import video_info

    path = Path(config["cameras"])
    sheet = read_camera_sheet(path)
    sim = config.get("simulate") or {}
    sim_session = sim.get("session")
    plans: dict[str, SessionPlan] = {}
    for session, rows in sheet.groupby("session", sort=True):
        synthetic = session == sim_session
        cams: dict[str, CameraEntry] = {}
        for i, r in rows.iterrows():
            where = f"row {i + 2}"  # 1-based, after the header line
            for col in ("session", "camera"):
                if not NAME_RE.match(r[col]):
                    raise InputError(path, f"{where} column '{col}'", f"'{r[col]}' is not a valid name",
                                     "use letters, digits, '_', '.', '-' only")
            if r["camera"] in cams:
                raise InputError(path, f"{where} column 'camera'", f"'{r['camera']}' repeats in session '{session}'",
                                 "give every camera of a session its own name")
            try:
                offset = int(r["frame_offset"] or 0)
            except ValueError:
                raise InputError(path, f"{where} column 'frame_offset'", f"'{r['frame_offset']}' is not an integer",
                                 "give a whole number of frames (may be negative)") from None
            for col in ("video", "calibration", "gt"):
                if r[col] and not synthetic and not Path(r[col]).exists():
                    raise InputError(path, f"{where} column '{col}'", f"file '{r[col]}' not found",
                                     "fix the path (relative paths are relative to the directory snakemake runs in)")
            cams[r["camera"]] = CameraEntry(r["camera"], r["video"], r["calibration"] or None,
                                            r["calibration_name"] or None, r["gt"] or None, offset,
                                            r["board"] or None)
        cal_files = {c.calibration for c in cams.values() if c.calibration}
        if len(cal_files) > 1:
            raise InputError(path, f"session '{session}' column 'calibration'", "cameras name different files",
                             "put all cameras of a session in one calibration file")
        if synthetic:
            n, fps = int(sim["n_frames"]), float(sim["fps"])
        else:
            infos = {c.camera: video_info(c.video) for c in cams.values()}
            check_session_calibration(path, session, cams, {k: (i.width, i.height) for k, i in infos.items()}, config)
            n = min(info.n_frames - cams[k].frame_offset for k, info in infos.items())
            fps = next(iter(infos.values())).fps
        if config.get("max_frames"):
            n = min(n, int(config["max_frames"]))
        if n <= 0:
            raise InputError(path, f"session '{session}'", "no frame is common to all cameras",
                             "check the videos and frame_offset values")
        L = int(config["chunk_frames"])
        chunks = [(s, min(s + L, n)) for s in range(0, n, L)]
        cal_cfg = config.get("calibrate") or {}
        plans[session] = SessionPlan(session, cams, n, fps, chunks, synthetic,
                                     {k: cal_cfg[k] for k in ("rescale", "unit") if k in cal_cfg})
    return plans


def load_session_cameras(plan: SessionPlan, config: dict | None = None) -> dict:
    """Calibrated :class:`~mctrack.calibration.Camera` per sheet camera of ``plan`` (empty if uncalibrated).

    Checked against the videos' decoded sizes (:func:`mctrack.calibration.checks.session_cameras`;
    ``rescale`` and ``unit`` from ``config['calibrate']`` or else the plan's ``calibration_settings``):
    raises InputError before any work.
    """
    from .calibration.checks import session_cameras
    from .video import video_info

    if not plan.calibration:
        return {}
    cal_cfg = (config or {}).get("calibrate") or plan.calibration_settings
    entries = {k: c for k, c in plan.cameras.items() if c.calibration or c.board}
    sizes = {k: (i.width, i.height) for k, i in ((k, video_info(c.video)) for k, c in entries.items())}
    return session_cameras(plan.calibration, entries, sizes, rescale=bool(cal_cfg.get("rescale", False)),
                           by_name=plan.calibrate, unit=None if plan.calibrate else cal_cfg.get("unit"))


def detector_settings(detect: dict) -> dict:
    """Flatten the config's ``detect`` section to the chosen backend's settings.

    ``{"backend": "ultralytics", "ultralytics": {...}, "background": {...}}`` →
    ``{"backend": "ultralytics", **detect["ultralytics"]}``: settings of other
    backends are dropped, so a config merged over the default never inherits them.
    """
    backend = detect.get("backend", "background")
    return {"backend": backend, **(detect.get(backend) or {})}


def check_stage_configs(config: dict) -> None:
    """Validate the detector and tracker settings before any job starts.

    Builds (without loading model weights or reading video) the detector of
    ``config['detect']`` and the tracker of ``config['track_2d']``. Raises
    :class:`~mctrack.errors.InputError` naming the config field as written in
    the config file (e.g. ``detect.ultralytics.model``).
    """
    from .detect import make_detector
    from .track2d import TrackerConfig

    detect = config.get("detect") or {}
    backend = detect.get("backend", "background")
    try:
        make_detector(detector_settings(detect))
    except InputError as exc:
        field = exc.field or "detect"
        if field.startswith("detect.") and field != "detect.backend":
            field = f"detect.{backend}.{field.removeprefix('detect.')}"
        raise InputError(exc.file, field, exc.problem, exc.fix) from None
    TrackerConfig.from_dict(config.get("track_2d") or {})
