"""Start a project from a folder of videos (``mctrack init``) and find the packaged workflow (``mctrack run``).

:func:`scan_folder` groups videos into sessions (one per folder holding
videos, or by a regular expression with named groups ``session`` / ``camera``),
probes each video's header (fps, frame count, size), finds a calibration file
beside the videos (the session folder, then its parents up to the scanned
folder) and checks that the cameras of a session agree. :func:`write_project`
writes a camera sheet (absolute paths) and a config that ``snakemake
--configfile`` runs as it is.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import NAME_RE
from .errors import InputError, atomic_path

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm")
#: folder names that say "videos of the session above" rather than naming a session
GENERIC_DIRS = {"videos", "video", "cameras", "cams", "raw", "movies"}


@dataclass
class ScannedSession:
    """One session found by :func:`scan_folder`: ``videos`` ``{camera: path}``, probed ``fps``,
    ``n_frames``, ``sizes`` ``{camera: (w, h)}``, ``calibration`` file (or None) and
    ``calibration_names`` ``{camera: entry in that file}``."""

    name: str
    videos: dict[str, Path]
    fps: float = 0.0
    n_frames: int = 0
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    calibration: Path | None = None
    calibration_names: dict[str, str] = field(default_factory=dict)


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "session"


def find_videos(folder: Path, pattern: str | None = None) -> dict[str, dict[str, Path]]:
    """``{session: {camera: video}}`` for the videos under ``folder`` (recursive).

    Without ``pattern``: every folder that holds videos is a session named after
    it (after its parent when it is called ``videos``, ``cameras``, ...; after
    ``folder`` for videos directly inside it); camera = file stem. With
    ``pattern``: a regular expression matched against each video's path
    relative to ``folder`` (``/`` separators), with named groups ``camera`` and
    optionally ``session``, e.g. ``(?P<session>.+)_(?P<camera>cam\\d+)\\.mp4``.
    Raises InputError when no video is found, the pattern lacks ``camera``, or
    two videos give one session/camera.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, None, "not a folder", "pass the folder that holds the videos")
    vids = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file())
    rx = re.compile(pattern) if pattern else None
    if rx is not None and "camera" not in rx.groupindex:
        raise InputError(None, "--pattern", "has no named group 'camera'",
                         "write e.g. '(?P<session>[^/]+)/(?P<camera>[^/]+)\\.mp4'")
    out: dict[str, dict[str, Path]] = {}
    for v in vids:
        rel = v.relative_to(folder).as_posix()
        if rx is not None:
            m = rx.fullmatch(rel) or rx.search(rel)
            if m is None:
                continue
            session = m.groupdict().get("session") or folder.resolve().name
            camera = m.group("camera")
        else:
            d = v.parent
            if d.resolve() == folder.resolve():
                session = folder.resolve().name
            elif d.name.lower() in GENERIC_DIRS:
                session = d.parent.resolve().name
            else:
                session = d.name
            camera = v.stem
        session, camera = _clean(session), _clean(camera)
        cams = out.setdefault(session, {})
        if camera in cams:
            raise InputError(v, None, f"camera '{camera}' of session '{session}' also given by {cams[camera]}",
                             "rename one video, or pass --pattern to say how names map to sessions and cameras")
        cams[camera] = v
    if not out:
        what = f"matching {pattern!r}" if pattern else f"({', '.join(VIDEO_EXTS)})"
        raise InputError(folder, None, f"no video files {what}", "point mctrack init at the folder with the videos")
    return out


def _calibration_candidates(d: Path) -> list[Path]:
    """Calibration-looking files in folder ``d``: anipose/Pose2Sim TOML first, then the other formats."""
    try:
        from .calibration.formats import SUFFIXES
    except ImportError:  # single-module calibration (TOML only)
        SUFFIXES = {".toml": "toml"}
    files = [p for p in d.iterdir() if p.is_file() and (p.suffix.lower() in SUFFIXES
                                                        or p.name.lower().endswith(".qca.txt"))]
    return sorted(files, key=lambda p: (p.suffix.lower() != ".toml", p.name))


def _find_calibration(videos: dict[str, Path], top: Path):
    """First calibration file (session folder, then parents up to ``top``) that names every camera."""
    from .calibration import find_camera, load_calibration

    d = next(iter(videos.values())).parent.resolve()
    top = top.resolve()
    tried = []
    while True:
        for cand in _calibration_candidates(d):
            tried.append(cand)
            try:
                cal = load_calibration(cand)
                names = {cam: find_camera(cal, cam, source=cand).name for cam in videos}
            except Exception:  # noqa: BLE001 - any file that is not this rig's calibration is skipped
                continue
            return cand, cal, names
        if d == top or d.parent == d or top not in d.parents:
            break
        d = d.parent
    return None, None, tried


def scan_folder(folder: str | os.PathLike, pattern: str | None = None) -> list[ScannedSession]:
    """Find sessions, probe their videos and calibration; raise on anything that would not run.

    Raises :class:`~mctrack.errors.InputError` naming the video when a video
    cannot be opened, has no frames, or when the cameras of one session
    differ in frame count or fps (``"cam03.mp4: 90 frames, but cam01.mp4 has
    100"``), and naming the calibration file when its image size for a camera
    differs from the video's.
    """
    from .video import video_info

    folder = Path(folder)
    sessions = []
    for name, videos in sorted(find_videos(folder, pattern).items()):
        infos = {cam: video_info(v) for cam, v in videos.items()}
        cams = sorted(videos)
        ref = cams[0]
        for cam in cams:
            i, r = infos[cam], infos[ref]
            if i.n_frames <= 0:
                raise InputError(videos[cam], None, "the header reports no frames", "re-encode the video")
            if i.n_frames != r.n_frames:
                raise InputError(videos[cam], "frame count", f"{i.n_frames} frames, but {videos[ref].name} of "
                                 f"session '{name}' has {r.n_frames}",
                                 "give synchronised videos of equal length (trim them), or set frame_offset in the "
                                 "camera sheet and max_frames in the config by hand")
            if abs(i.fps - r.fps) > 1e-3 * max(r.fps, 1):
                raise InputError(videos[cam], "fps", f"{i.fps:g} fps, but {videos[ref].name} of session '{name}' "
                                 f"has {r.fps:g}", "record or re-encode all cameras of a session at one frame rate")
        s = ScannedSession(name, {c: videos[c] for c in cams}, infos[ref].fps, infos[ref].n_frames,
                           {c: (infos[c].width, infos[c].height) for c in cams})
        cal_file, cal, names = _find_calibration(s.videos, folder)
        if cal_file is not None:
            for cam in cams:
                size = tuple(int(x) for x in cal[names[cam]].size)
                if size != s.sizes[cam]:
                    raise InputError(cal_file, f"[{names[cam]}].size", f"{size[0]}x{size[1]} px, but video "
                                     f"{videos[cam].name} is {s.sizes[cam][0]}x{s.sizes[cam][1]}",
                                     "use the calibration made for these cameras at this resolution")
            s.calibration, s.calibration_names = cal_file, names
        sessions.append(s)
    return sessions


def _schema_defaults(section: str) -> dict:
    """Defaults of one config section from the packaged schema (empty when not found)."""
    try:
        schema = yaml.safe_load((workflow_root() / "workflow/schemas/config.schema.yaml").read_text())
        props = schema["properties"][section]["properties"]
    except (FileNotFoundError, KeyError, TypeError):
        return {}
    return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}


def project_config(sheet: Path, detector: str = "background", model: str | None = None,
                   classes: list[int] | None = None, max_frames: int | None = None, chunk_frames: int = 1000) -> dict:
    """The config :func:`write_project` writes: every stage section spelled out (schema defaults), so nothing is
    inherited from the synthetic default's settings when it is merged over ``config/config.yaml``."""
    if detector not in ("background", "ultralytics"):
        raise InputError(None, "--detector", f"unknown backend {detector!r}", "use background or ultralytics")
    detect: dict = {"backend": detector, "threads": 2}
    if detector == "ultralytics":
        if not model:
            raise InputError(None, "--model", "missing for the ultralytics detector",
                             "pass --model path/to/weights.pt (or an ONNX / OpenVINO model)")
        if not Path(model).exists():
            raise InputError(model, "--model", "not found", "pass an existing model file or folder")
        ul = {"model": str(Path(model).resolve()), "conf": 0.3, "iou": 0.6, "imgsz": 640, "device": "cpu"}
        if classes:
            ul["classes"] = [int(c) for c in classes]
        detect["ultralytics"] = ul
    cfg = {"cameras": str(Path(sheet).resolve()), "chunk_frames": int(chunk_frames), "max_frames": max_frames,
           "detect": detect}
    for sec in ("track_2d", "associate", "triangulate", "evaluate"):
        cfg[sec] = _schema_defaults(sec)
    return cfg


def write_project(sessions: list[ScannedSession], out_dir: str | os.PathLike, **config_kwargs) -> tuple[Path, Path]:
    """Write ``out_dir/cameras.tsv`` and ``out_dir/config.yaml``; return their paths.

    ``config_kwargs`` go to :func:`project_config`. Paths are absolute, so the
    config runs from any folder (outputs land in ``results/`` of the folder
    snakemake runs in).
    """
    out_dir = Path(out_dir)
    sheet, cfg_path = out_dir / "cameras.tsv", out_dir / "config.yaml"
    rows = ["session\tcamera\tvideo\tcalibration\tcalibration_name"]
    for s in sessions:
        for cam, v in s.videos.items():
            cal = str(s.calibration.resolve()) if s.calibration else ""
            rows.append(f"{s.name}\t{cam}\t{v.resolve()}\t{cal}\t{s.calibration_names.get(cam, '')}")
    cfg = project_config(sheet, **config_kwargs)
    for s in sessions:
        if not NAME_RE.match(s.name):
            raise InputError(None, "session", f"'{s.name}' is not a valid name", "rename the folder")
    lines = [f"# Written by `mctrack init` on {_dt.date.today()} for {len(sessions)} session(s):"]
    for s in sessions:
        cal = s.calibration.name if s.calibration else "none (association and triangulation are skipped)"
        lines.append(f"#   {s.name}: {len(s.videos)} cameras, {s.n_frames} frames at {s.fps:g} fps, calibration {cal}")
    lines += ["# Run: mctrack run --configfile config.yaml   (or snakemake --cores all --configfile config.yaml)",
              "# associate/triangulate values are generic defaults: the association kernel is derived from",
              "# the calibration and box sizes (associate.distance_scale: null).",
              "# Every key: workflow/schemas/config.schema.yaml", ""]
    with atomic_path(sheet) as tmp:
        Path(tmp).write_text("\n".join(rows) + "\n")
    with atomic_path(cfg_path) as tmp:
        Path(tmp).write_text("\n".join(lines) + yaml.safe_dump(cfg, sort_keys=False))
    return sheet, cfg_path


def workflow_root() -> Path:
    """Folder holding the workflow's ``Snakefile`` (with ``workflow/`` and ``config/`` beside it).

    Looked up in order: ``$MCTRACK_WORKFLOW``; ``mctrack/_workflow`` inside
    the installed package (where a wheel build puts the workflow files); the
    source checkout the package is imported from (editable install). Raises
    InputError when none has a Snakefile.
    """
    here = Path(__file__).resolve().parent
    cands = [Path(os.environ["MCTRACK_WORKFLOW"])] if os.environ.get("MCTRACK_WORKFLOW") else []
    cands += [here / "_workflow", here.parents[1]]
    for c in cands:
        if (c / "Snakefile").is_file():
            return c
    raise InputError(None, "workflow", f"no Snakefile in {[str(c) for c in cands]}",
                     "set MCTRACK_WORKFLOW to the mctrack repository folder")
