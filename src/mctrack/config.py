"""Camera sheet and session planning: what the workflow runs, checked before any work.

The config (validated against ``workflow/schemas/config.schema.yaml`` by the
Snakefile) names a camera sheet: a TSV with one row per camera and columns

=================  ========  ====================================================
column             required  meaning
=================  ========  ====================================================
session            yes       session name; outputs land in ``results/{session}/``
camera             yes       camera name (letters, digits, ``_ . -``)
video              yes*      video file; relative paths are relative to the
                             working directory (where ``snakemake`` runs)
                             (*optional with ``detect.backend: precomputed``)
detections         no        MOTChallenge ``det.txt`` of the camera (backend
                             ``precomputed``; frame 1 = first decoded frame)
fps                no*       Hz; *required for a camera without video
n_frames           no*       frames; *required for a camera without video
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

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import InputError

if TYPE_CHECKING:  # pandas is imported where a sheet is read: planning from the cache needs none of it
    import pandas as pd

SHEET_COLUMNS = ("session", "camera", "video", "calibration", "calibration_name", "gt", "frame_offset",
                 "detections", "fps", "n_frames", "board", "homography")
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
    detections: str | None = None
    fps: float | None = None
    n_frames: int | None = None
    board: str | None = None
    homography: str | None = None  # point-pair CSV u,v,x,y (ground-plane mode, mctrack.ground)


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
    calibration_settings: dict = field(default_factory=dict)  # config calibrate.{rescale, unit, refraction}, for the jobs

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
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "camera sheet not found", "set `cameras:` in the config to an existing TSV")
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#", keep_default_na=False, skip_blank_lines=True)
    sheet.columns = [c.strip() for c in sheet.columns]
    for col in ("session", "camera"):
        if col not in sheet.columns:
            raise InputError(path, f"column '{col}'", "missing", "the sheet needs tab-separated columns session, camera, video")
    if "video" not in sheet.columns and "detections" not in sheet.columns:
        raise InputError(path, "column 'video'", "missing", "give each camera a video (or a detections det.txt)")
    extra = [c for c in sheet.columns if c not in SHEET_COLUMNS]
    if extra:
        raise InputError(path, f"column '{extra[0]}'", "unknown", f"use only {list(SHEET_COLUMNS)} (tab-separated)")
    for col in SHEET_COLUMNS:
        if col not in sheet.columns:
            sheet[col] = ""
    return sheet.apply(lambda s: s.str.strip())


def plan_sessions(config: dict, cache_dir: str | os.PathLike | None = None) -> dict[str, SessionPlan]:
    """Check the camera sheet named by ``config['cameras']`` and every input it names; plan every session.

    ``config`` is the checked workflow config (keys ``cameras``,
    ``chunk_frames``, ``max_frames``, ``simulate``). Every video gets a header
    read and one cheap decode probe (:func:`mctrack.video.probe_video`,
    cached in ``cache_dir`` between invocations); ground-truth files are
    parsed. Policy for the frames of a session (documented in the README):

    - a video whose header promises more frames than decode is an error,
      unless ``max_frames`` keeps the session inside the decodable frames;
    - cameras of one session must cover the same number of session frames
      (``n_frames - frame_offset``) and have the same frame rate (relative
      difference ≤ 1e-3); otherwise an error names both cameras and suggests
      ``frame_offset`` or ``max_frames``;
    - ground truth may not name frames beyond its video.

    With ``cache_dir``, the finished plan is memoised there too
    (:func:`memoised`): a later call with the same config, the same mctrack and
    library code and unchanged input files (the sheet and every file it names,
    compared by size, modification time and inode) returns it without reading
    anything else, so that ``snakemake`` parses the workflow quickly.

    Raises :class:`~mctrack.errors.InputError` on the first problem found,
    naming the sheet row and column, or the video / ground-truth file.
    """
    if cache_dir is None:
        return _plan_sessions(config, None)
    return memoised(cache_dir, "plan", config, lambda: _plan_sessions(config, cache_dir),
                    lambda plans: [config["cameras"], *_plan_inputs(plans)])


def _plan_inputs(plans: dict[str, SessionPlan]) -> list[str]:
    """Every file or folder named by the planned sessions' sheet rows (what planning read)."""
    out = []
    for p in plans.values():
        for c in p.cameras.values():
            out += [f for f in (c.video, c.calibration, c.gt, c.detections, c.board) if f]
    return out


#: bump when the meaning of a memoised result changes without a code change that :func:`_code_stamp` sees
_MEMO_VERSION = 1
#: packages whose installed version changes what planning accepts (tracker parameters, model formats)
_MEMO_PACKAGES = ("boxmot", "openvino", "onnxruntime", "ultralytics")


def _file_stamp(path: str | os.PathLike) -> list:
    """What identifies a file's content cheaply: ``[size, mtime_ns, inode]`` (a folder: also its entries';
    a glob pattern: its matches'), or None when it does not exist."""
    import glob

    p = str(path)
    if glob.has_magic(p) and not os.path.exists(p):
        return ["glob", [[m, _file_stamp(m)] for m in sorted(glob.glob(p))]]
    try:
        st = os.stat(p)
    except OSError:
        return None
    out = [st.st_size, st.st_mtime_ns, st.st_ino]
    if os.path.isdir(p):
        out.append(sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in os.scandir(p)))
    return out


@functools.lru_cache(maxsize=1)
def _code_stamp() -> list:
    """Modification times of mctrack's own modules and of the packages in :data:`_MEMO_PACKAGES`."""
    import importlib.util

    root = Path(__file__).resolve().parent
    newest, count = 0, 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(dirpath, f)).st_mtime_ns)
                count += 1
    packages = []
    for name in _MEMO_PACKAGES:
        spec = importlib.util.find_spec(name)
        packages.append([name, spec.origin if spec else None, _file_stamp(spec.origin) if spec and spec.origin else None])
    return [_MEMO_VERSION, str(root), newest, count, packages]


def memoised(cache_dir: str | os.PathLike, name: str, key, compute: Callable, inputs: Callable[[object], list]):
    """``compute()``, or its earlier result stored in ``cache_dir`` if nothing it depends on changed.

    ``key``: JSON-able description of the call (config values); together with
    the working directory and :func:`_code_stamp` it names the cache file
    ``{cache_dir}/{name}-{sha1}.pkl``. ``inputs(result)``: the files and folders
    the computation read; their :func:`_file_stamp` is stored with the result
    and compared on reuse. Exceptions are never stored (a bad input raises
    again on every call); an unreadable cache file is recomputed.
    """
    import hashlib
    import json
    import pickle
    import tempfile

    digest = hashlib.sha1(json.dumps([name, os.getcwd(), key, _code_stamp()], sort_keys=True, default=str).encode())
    cache = Path(cache_dir) / f"{name}-{digest.hexdigest()}.pkl"
    try:
        deps, result = pickle.loads(cache.read_bytes())
        if all(_file_stamp(f) == stamp for f, stamp in deps):
            return result
    except Exception:  # noqa: BLE001 - missing, stale or unreadable cache: compute again
        pass
    result = compute()
    deps = [(str(f), _file_stamp(f)) for f in inputs(result)]
    try:  # concurrent planners (cluster jobs) may write the same file: each renames its own complete copy
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cache.name}.", suffix=".tmp", dir=cache.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pickle.dumps((deps, result)))
            os.replace(tmp, cache)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:  # a read-only or full disk only costs the next call the recomputation
        pass
    return result


def _plan_sessions(config: dict, cache_dir) -> dict[str, SessionPlan]:
    from .calibration.checks import check_session_calibration

    path = Path(config["cameras"])
    sheet = read_camera_sheet(path)
    sim = config.get("simulate") or {}
    sim_session = sim.get("session")
    if sim_session is not None and sim_session not in set(sheet["session"]):
        raise InputError(path, "column 'session'", f"has no session '{sim_session}' (config simulate.session)",
                         f"add the simulated session's cameras to the sheet, or remove the config's simulate section "
                         f"(sessions in the sheet: {sorted(set(sheet['session']))})")
    max_frames = config.get("max_frames")
    plans: dict[str, SessionPlan] = {}
    for session, rows in sheet.groupby("session", sort=True):
        synthetic = session == sim_session
        cams: dict[str, CameraEntry] = {}
        rownum: dict[str, str] = {}
        for i, r in rows.iterrows():
            where = f"row {i + 2}"  # 1-based, after the header line
            for col in ("session", "camera"):
                if not r[col]:
                    raise InputError(path, f"{where} column '{col}'", "is empty", f"give the {col} of every row")
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
            for col in ("video", "calibration", "gt", "detections", "homography"):
                if r[col] and not synthetic and not Path(r[col]).exists():
                    raise InputError(path, f"{where} column '{col}'", f"file '{r[col]}' not found",
                                     "fix the path (relative paths are relative to the directory snakemake runs in)")
            if r["homography"] and not synthetic:  # issue 8: a bad point-pair CSV fails before any work
                from .ground import read_homography_csv

                read_homography_csv(r["homography"])
            cams[r["camera"]] = CameraEntry(r["camera"], r["video"], r["calibration"] or None,
                                            r["calibration_name"] or None, r["gt"] or None, offset,
                                            board=r["board"] or None, homography=r["homography"] or None,
                                            **_detections_columns(path, where, r, config, synthetic))
            rownum[r["camera"]] = where
        cal_files = {c.calibration for c in cams.values() if c.calibration}
        if len(cal_files) > 1:
            raise InputError(path, f"session '{session}' column 'calibration'", "cameras name different files",
                             "put all cameras of a session in one calibration file")
        if synthetic:
            n, fps = int(sim["n_frames"]), float(sim["fps"])
            if max_frames:
                n = min(n, int(max_frames))
        else:
            n, fps, probes = _check_session_videos(path, session, cams, rownum, max_frames, cache_dir)
            check_session_calibration(path, session, cams, {k: (p.width, p.height) for k, p in probes.items()
                                                            if p.width > 0}, config)
            for c in cams.values():
                if c.gt:
                    _check_gt(c, probes[c.camera].decodable, cache_dir)
        if n <= 0:
            raise InputError(path, f"session '{session}'", "no frame is common to all cameras",
                             "check the videos and frame_offset values")
        L = int(config["chunk_frames"])
        chunks = [(s, min(s + L, n)) for s in range(0, n, L)]
        cal_cfg = config.get("calibrate") or {}
        plans[session] = SessionPlan(session, cams, n, fps, chunks, synthetic,
                                     {k: cal_cfg[k] for k in ("rescale", "unit", "refraction") if k in cal_cfg})
    return plans


def _detections_columns(path: Path, where: str, r: pd.Series, config: dict, synthetic: bool) -> dict:
    """Check a row's ``detections`` / ``fps`` / ``n_frames`` cells (and video presence); return CameraEntry fields.

    A ``detections`` file is validated line by line
    (:func:`mctrack.detect.validate_det_file`) when the precomputed backend is
    chosen. A camera without ``video`` needs the precomputed backend, a
    ``detections`` file and positive ``fps`` and ``n_frames``.
    """
    from .detect import validate_det_file

    backend = (config.get("detect") or {}).get("backend", "background")
    out: dict = {"detections": r["detections"] or None}
    if backend == "precomputed" and not synthetic:
        if not r["detections"]:
            raise InputError(path, f"{where} column 'detections'", "empty, but detect.backend is 'precomputed'",
                             "name the camera's MOTChallenge det.txt")
        validate_det_file(r["detections"])
    for col, typ in (("fps", float), ("n_frames", int)):
        if r[col]:
            try:
                v = typ(r[col])
            except ValueError:
                v = None
            if v is None or not v > 0:
                raise InputError(path, f"{where} column '{col}'", f"'{r[col]}' is not a positive {typ.__name__}",
                                 f"give the camera's {'frame rate in Hz' if col == 'fps' else 'number of frames'}")
            out[col] = v
    if not r["video"] and not synthetic:
        if backend != "precomputed":
            raise InputError(path, f"{where} column 'video'", "is empty", "give the camera's video file (only "
                             "detect.backend: precomputed works without videos)")
        for col in ("fps", "n_frames"):
            if col not in out:
                raise InputError(path, f"{where} column '{col}'", "required for a camera without video",
                                 f"add a '{col}' column to the camera sheet (or give the video)")
    return out


def _check_session_videos(sheet: Path, session: str, cams: dict[str, CameraEntry], rownum: dict[str, str],
                          max_frames: int | None, cache_dir) -> tuple[int, float, dict]:
    """Probe every video of a session; apply the frame-count / fps policy of :func:`plan_sessions`.

    A camera without video (precomputed detections) counts with the sheet's
    ``n_frames`` and ``fps`` (width and height 0). Returns ``(n_frames, fps,
    {camera: VideoProbe})`` of the session.
    """
    from .video import VideoProbe, probe_video

    probes = {}
    for name, c in cams.items():
        if not c.video:  # precomputed detections: the sheet's fps / n_frames stand in for the header
            probes[name] = VideoProbe(int(c.n_frames), float(c.fps), 0, 0, int(c.n_frames), "none")
            continue
        try:
            probes[name] = probe_video(c.video, cache_dir)
        except InputError as exc:
            raise InputError(sheet, f"{rownum[name]} column 'video' ({c.video})", exc.problem, exc.fix) from None
    cap = int(max_frames) if max_frames else None
    for name, p in probes.items():
        if p.decodable < p.n_frames and (cap is None or cap + cams[name].frame_offset > p.decodable):
            raise InputError(cams[name].video, None,
                             f"truncated or damaged: the header promises {p.n_frames} frames but only about "
                             f"{p.decodable} decode", "copy the complete recording again, or process only the "
                             f"frames that decode with max_frames: {max(p.decodable - cams[name].frame_offset, 0)}")
    spans = {name: p.n_frames - cams[name].frame_offset for name, p in probes.items()}
    n = min(spans.values())
    if len(set(spans.values())) > 1 and (cap is None or cap > n):
        (a, na), (b, nb) = max(spans.items(), key=lambda kv: kv[1]), min(spans.items(), key=lambda kv: kv[1])
        raise InputError(sheet, f"session '{session}'",
                         f"cameras cover different numbers of frames ({a}: {na}, {b}: {nb}; n_frames - frame_offset)",
                         f"synchronise them with the frame_offset column, or process the common frames only "
                         f"with max_frames: {nb}")
    if cap is not None:
        n = min(n, cap)
    fps0_name, fps0 = next(iter(probes.items()))
    for name, p in probes.items():
        if abs(p.fps - fps0.fps) > 1e-3 * fps0.fps:
            raise InputError(sheet, f"session '{session}'",
                             f"cameras have different frame rates ({fps0_name}: {fps0.fps:g} fps, {name}: {p.fps:g} fps)",
                             "cameras of a session must be frame-synchronised: resample the videos to one rate")
    return n, float(fps0.fps), probes


def _check_gt(cam: CameraEntry, video_frames: int, cache_dir) -> None:
    """Parse a camera's MOTChallenge ``gt`` file now (cached); its frames must lie within the video."""
    import json

    from .errors import atomic_path

    gt = Path(cam.gt)
    st = gt.stat()
    key = f"gt|{gt.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache = None
    if cache_dir is not None:
        import hashlib

        cache = Path(cache_dir) / f"{hashlib.sha1(key.encode()).hexdigest()}.json"
    if cache is not None and cache.is_file():
        last = json.loads(cache.read_text())["last_frame"]
    else:
        from .evaluate import read_mot_gt

        table = read_mot_gt(gt)
        last = int(table["frame"].max()) if len(table) else -1
        if cache is not None:
            with atomic_path(cache) as tmp:
                tmp.write_text(json.dumps({"key": key, "last_frame": last}))
    if last >= video_frames:
        raise InputError(gt, f"frame {last + 1}", f"is beyond the end of video {cam.video} ({video_frames} frames)",
                         "check that this gt.txt belongs to this camera's video (frame 1 = first decoded frame)")

# --------------------------------------------------------------------------- config model

#: the schema: the one source of config keys, defaults and documentation
SCHEMA_FILE = Path("workflow") / "schemas" / "config.schema.yaml"


def load_schema(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict:
    """Read the JSON schema (YAML) of the workflow config (libyaml's parser when available: ~10x faster).

    With ``cache_dir``, the parsed schema is memoised there (:func:`memoised`, keyed by the file's size,
    mtime and inode): every ``snakemake`` call parses the workflow, and reading the pickle takes ~1 ms
    where parsing the YAML takes 6-20 ms.
    """
    import yaml

    def read() -> dict:
        return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

    if cache_dir is None:
        return read()
    return memoised(cache_dir, "schema", [str(Path(path).resolve())], read, lambda _: [path])


def fill_defaults(config: dict, schema: dict) -> dict:
    """Fill ``config`` in place with the schema's ``default`` values, recursively; return it.

    A key missing from ``config`` whose property has a ``default`` gets a deep
    copy of it; mappings (given or defaulted) are then filled from their own
    ``properties``. Keys without a default (e.g. ``simulate``) stay absent.
    """
    import copy

    for key, sub in (schema.get("properties") or {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and "properties" in sub:
            fill_defaults(config[key], sub)
    return config


def _key_source(path: list, sources: list[tuple[str, dict]]) -> str:
    """The last config file (of ``sources``: ``(name, mapping)``) that sets key ``path``."""
    for name, data in reversed(sources):
        d = data
        for k in path:
            if not isinstance(d, dict) or k not in d:
                break
            d = d[k]
        else:
            return name
    return sources[-1][0] if sources else "config"


def _subschema(schema: dict, path: list) -> dict:
    for k in path:
        schema = (schema.get("properties") or {}).get(k, {}) if isinstance(k, str) else schema.get("items", {})
    return schema


def _expected(sub: dict) -> str:
    """Short description of what a schema property accepts (type, enum, bounds, description)."""
    parts = []
    if "enum" in sub:
        parts.append("one of " + ", ".join(map(str, sub["enum"])))
    elif "type" in sub:
        t = sub["type"]
        parts.append(" or ".join(t) if isinstance(t, list) else t)
    for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if k in sub:
            parts.append(f"{op} {sub[k]}")
    if "description" in sub:
        parts.append(f"({sub['description']})")
    return " ".join(parts)


def check_config(config: dict, schema: dict,
                 sources: list[tuple[str, dict]] | Callable[[], list[tuple[str, dict]]] | None = None,
                 cache_dir: str | os.PathLike | None = None) -> dict:
    """Fill the schema's defaults into ``config`` and validate it; raise one short error if it is wrong.

    ``sources``: the config files as ``(file name, mapping)`` in the order they
    were merged (or a function returning them, called only to report an
    error), to name the file that set a bad key. Unknown keys get a
    did-you-mean (:func:`difflib.get_close_matches`) and the list of allowed
    keys; a wrong value gets what the key accepts, from the schema. With
    ``cache_dir``, a config found valid is remembered there (:func:`memoised`,
    keyed by the filled config and the schema), so that the next call skips
    the JSON-schema validation.
    Raises :class:`~mctrack.errors.InputError` (file, key path, problem, fix).
    """
    fill_defaults(config, schema)
    if cache_dir is None:
        _validate(config, schema, sources)
    else:
        memoised(cache_dir, "config", [config, schema], lambda: _validate(config, schema, sources), lambda _: [])
    return config


def _validate(config: dict, schema: dict, sources) -> bool:
    """Validate a filled ``config`` against ``schema``; True, or the InputError of :func:`check_config`."""
    import difflib

    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return True
    sources = (sources() if callable(sources) else sources) or []
    e = errors[0]
    path = list(e.absolute_path)
    where = ".".join(map(str, path))
    if e.validator == "additionalProperties":
        allowed = sorted((e.schema.get("properties") or {}).keys())
        extra = [k for k in e.instance if k not in allowed]
        key = extra[0]
        full = ".".join(map(str, path + [key]))
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        fix = (f"did you mean '{close[0]}'? " if close else "") + f"keys allowed here: {', '.join(allowed)}"
        raise InputError(_key_source(path + [key], sources), full, "unknown key", fix)
    if e.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", e.message)
        key = missing[0] if missing else "?"
        full = ".".join(map(str, path + [key]))
        sub = _subschema(schema, path + [key])
        raise InputError(_key_source(path, sources), full, "required key is missing",
                         f"add {full}: {_expected(sub)}")
    sub = _subschema(schema, path)
    value = e.instance if not isinstance(e.instance, (dict, list)) or len(str(e.instance)) < 60 else "..."
    raise InputError(_key_source(path, sources), where or "(top level)", f"{value!r} is not valid ({e.message[:120]})",
                     f"give {_expected(sub) or 'a valid value'}; see {SCHEMA_FILE}")


def config_sources(configfiles: list, default_file: str | os.PathLike | None) -> list[tuple[str, dict]]:
    """``(file name, mapping)`` of the config files Snakemake merged (``--configfile`` ones, else the default)."""
    import yaml

    files = [str(f) for f in configfiles] or ([str(default_file)] if default_file else [])
    out = []
    for f in files:
        try:
            out.append((f, yaml.safe_load(Path(f).read_text()) or {}))
        except (OSError, yaml.YAMLError):
            out.append((f, {}))
    return out


def load_session_cameras(plan: SessionPlan, config: dict | None = None) -> dict:
    """Calibrated :class:`~mctrack.calibration.Camera` per sheet camera of ``plan`` (empty if uncalibrated).

    Checked against the videos' decoded sizes (:func:`mctrack.calibration.checks.session_cameras`;
    ``rescale``, ``unit`` and ``refraction`` from ``config['calibrate']`` or else the plan's ``calibration_settings``):
    raises InputError before any work.
    """
    from .calibration.checks import session_cameras
    from .video import video_info

    if not plan.calibration:
        return {}
    cal_cfg = (config or {}).get("calibrate") or plan.calibration_settings
    entries = {k: c for k, c in plan.cameras.items() if c.calibration or c.board}
    sizes = {k: (i.width, i.height) for k, i in ((k, video_info(c.video)) for k, c in entries.items() if c.video)}
    return session_cameras(plan.calibration, entries, sizes, rescale=bool(cal_cfg.get("rescale", False)),
                           by_name=plan.calibrate, unit=None if plan.calibrate else cal_cfg.get("unit"),
                           refraction=bool(cal_cfg.get("refraction", True)))


def detector_settings(detect: dict) -> dict:
    """Flatten the config's ``detect`` section to the chosen backend's settings (what changes detections).

    ``{"backend": "ultralytics", "threads": 2, "ultralytics": {...}, "background": {...}}`` →
    ``{"backend": "ultralytics", **detect["ultralytics"]}``: ``threads`` and the
    settings of other backends are dropped, so they never rerun detection
    (this is what the detect rules pass as ``params``). Idempotent: a section
    already flattened is returned unchanged.
    """
    backend = detect.get("backend", "background")
    if isinstance(detect.get(backend), dict):
        return {"backend": backend, **detect[backend]}
    return {k: v for k, v in detect.items() if k != "threads" and not isinstance(v, dict)} | {"backend": backend}


#: ``track_2d.det_thresh`` used when the config leaves it null, per ``detect.backend``.
#:
#: - ``background``: 0, every blob is a detection. The foreground test and the
#:   area bounds already decided what a target is; the blob's confidence
#:   ``1 - exp(-contrast / contrast_scale)`` ranks contrast, it is not a
#:   probability. The trackers' 0.6 drops faint targets: the FishPy fish
#:   (about 27 grey levels of contrast) score 0.48-0.69, and 0.6 dropped 56 %
#:   of one camera's detections and half of the session's 3D points.
#: - ``ultralytics``: 0.6, the high-score threshold of the ByteTrack and
#:   BoT-SORT papers for YOLO-family detectors (see
#:   :class:`mctrack.track2d.TrackerConfig`).
#: - ``precomputed``: 0.6 as for a YOLO-family detector (the file's scores come
#:   from an unknown detector; tracking warns when many fall at or below it).
TRACK_DET_THRESH = {"background": 0.0, "ultralytics": 0.6, "precomputed": 0.6}


def tracker_settings(config: dict) -> dict:
    """The config's ``track_2d`` section as the tracker gets it (what changes per-camera tracks).

    ``refine`` is dropped (refinement settings must not rerun tracking) and a
    null or absent ``det_thresh`` becomes the detector backend's
    :data:`TRACK_DET_THRESH` (``detect.backend``, default ``background``).
    Unknown backends keep the tracker's own default (0.6); the detector check
    reports them.
    """
    out = {k: v for k, v in (config.get("track_2d") or {}).items() if k != "refine"}
    if out.get("det_thresh") is None:
        out.pop("det_thresh", None)
        backend = (config.get("detect") or {}).get("backend", "background")
        if backend in TRACK_DET_THRESH:
            out["det_thresh"] = TRACK_DET_THRESH[backend]
    return out


def check_stage_configs(config: dict, cache_dir: str | os.PathLike | None = None) -> None:
    """Validate the detector and tracker settings before any job starts.

    Builds (without loading model weights or reading video) the detector of
    ``config['detect']`` and the tracker of ``config['track_2d']``. Raises
    :class:`~mctrack.errors.InputError` naming the config field as written in
    the config file (e.g. ``detect.ultralytics.model``). With ``cache_dir``,
    settings found valid are remembered there (:func:`memoised`; the model
    file is one of the inputs compared).
    """
    if cache_dir is not None:
        model = detector_settings(config.get("detect") or {}).get("model")
        memoised(cache_dir, "stages", [config.get("detect"), config.get("track_2d")],
                 lambda: check_stage_configs(config), lambda _: [model] if model else [])
        return
    from .detect import make_detector
    from .track2d import RefineConfig, TrackerConfig

    detect = config.get("detect") or {}
    backend = detect.get("backend", "background")
    try:
        det = make_detector(detector_settings(detect))
    except InputError as exc:
        field = exc.field or "detect"
        if field.startswith("detect.") and field != "detect.backend":
            field = f"detect.{backend}.{field.removeprefix('detect.')}"
        raise InputError(exc.file, field, exc.problem, exc.fix) from None
    if backend == "ultralytics":
        check_model_file(det.params["model"], "detect.ultralytics.model")
    TrackerConfig.from_dict(tracker_settings(config))
    RefineConfig.from_dict((config.get("track_2d") or {}).get("refine"))


#: ultralytics model classes whose predictions carry axis-aligned boxes (usable for detection)
BOX_MODELS = (b"DetectionModel", b"SegmentationModel", b"PoseModel", b"WorldModel", b"YOLOEModel")


def check_model_file(model: str | os.PathLike, field: str = "detect.ultralytics.model") -> None:
    """Check, without importing torch or loading weights, that ``model`` is a detection model ultralytics can run.

    - OpenVINO folder (``*_openvino_model/``): needs an ``.xml`` with its
      ``.bin`` and the ``openvino`` package; ``metadata.yaml``'s ``task`` (if
      any) must be ``detect``/``segment``/``pose``.
    - ``.onnx``: needs ``onnxruntime`` (extra ``mctrack[onnx]``) and a protobuf file.
    - ``.pt``: must be a torch zip archive whose pickle names an ultralytics
      detection-capable model class (not a state dict, classifier or OBB model).

    Raises :class:`~mctrack.errors.InputError` naming the file, ``field`` and the fix.
    """
    import importlib.util
    import zipfile

    model = Path(model)
    fix_any = "pass a detection model exported by ultralytics (.pt, .onnx, *_openvino_model/)"
    if model.is_dir():
        xml = sorted(model.glob("*.xml"))
        if not xml:
            raise InputError(model, field, "OpenVINO model folder has no .xml file",
                             "point at the folder written by `yolo export format=openvino` (it holds NAME.xml and "
                             "NAME.bin)")
        if not xml[0].with_suffix(".bin").is_file():
            raise InputError(xml[0], field, f"no weights file {xml[0].with_suffix('.bin').name} beside it",
                             "copy the whole exported folder")
        if importlib.util.find_spec("openvino") is None:
            raise InputError(model, field, "OpenVINO models need the 'openvino' package, which is not installed",
                             "pip install 'mctrack[openvino]'")
        meta = model / "metadata.yaml"
        if meta.is_file():
            import yaml

            task = (yaml.safe_load(meta.read_text()) or {}).get("task")
            if task not in (None, "detect", "segment", "pose"):
                raise InputError(meta, f"{field} (task)", f"is a '{task}' model, not a detector",
                                 "export a detection model (task: detect)")
        return
    suffix = model.suffix.lower()
    if model.stat().st_size == 0:
        raise InputError(model, field, "model file is empty", fix_any)
    if suffix == ".onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            raise InputError(model, field, "ONNX models need the 'onnxruntime' package, which is not installed",
                             "pip install 'mctrack[onnx]'")
        with open(model, "rb") as fh:
            if fh.read(1) != b"\x08":  # ModelProto field 1 (ir_version, varint) comes first
                raise InputError(model, field, "is not an ONNX model (not a protobuf ModelProto)", fix_any)
        return
    if suffix == ".pt":
        if not zipfile.is_zipfile(model):
            raise InputError(model, field, "is not a PyTorch model archive", fix_any)
        with zipfile.ZipFile(model) as z:
            pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
            data = z.read(pkl[0]) if pkl else b""
        if b"ultralytics" not in data:
            raise InputError(model, field, "is a PyTorch file but not an ultralytics model (a state dict?)", fix_any)
        if not any(c in data for c in BOX_MODELS):
            kind = next((c.decode() for c in (b"ClassificationModel", b"OBBModel") if c in data), "unknown model")
            raise InputError(model, field, f"is an ultralytics {kind}, not a detector",
                             "use a detection model (e.g. yolo11n.pt)")


def ground_mode(plan, enabled) -> bool:
    """Whether session ``plan`` runs in ground-plane mode (config ``ground.enabled``: True, False or ``"auto"``).

    ``"auto"``: when at least one camera of the plan names a homography CSV and
    the session is not calibrated (fewer than 2 calibrated cameras). Kept here,
    free of heavy imports, because the Snakefile evaluates it while parsing.
    """
    if isinstance(enabled, bool):
        return enabled
    return any(c.homography for c in plan.cameras.values()) and not plan.calibrated


def has_3d(plan, ground_enabled) -> bool:
    """Whether session ``plan`` can have cross-camera identities or 3D output (cheap; evaluated while parsing).

    True for a calibrated session (≥ 2 calibrated cameras: association and
    triangulation) and for a ground-plane-mode session (:func:`ground_mode`
    with config ``ground.enabled``). Otherwise (one camera, or no calibration)
    every tracklet is its own global id and every 3D table is empty: the
    workflow then runs no associate/triangulate/smooth jobs, and assemble, qc
    and evaluate build that association themselves (:func:`single_view_tables`).
    """
    return bool(plan.calibrated or ground_mode(plan, ground_enabled))


def single_view_tables(tracklet_files: list[str | os.PathLike]):
    """``(tracklets, association)`` of a session without 3D (:func:`has_3d` False), from its refined tracklets.

    ``tracklet_files``: the per-camera TRACKLET2D parquet files (rule
    ``refine_2d``). Returns the TRACKLET2D table sorted by ``(camera_id,
    track_id, frame)`` and the ASSOCIATION table with one global id per
    tracklet: ``global_id`` numbered by decreasing detected rows (ties: sorted
    ``(camera_id, track_id)`` order), ``n_linked_cameras`` 1, ``support`` NaN,
    ``parent_track_id`` = ``track_id``. That is what
    :func:`mctrack.associate.associate_session` returns with no calibrated
    camera (its rule for uncalibrated tracklets; tested equal), without
    importing the association package (scipy: ~0.6 s per job).
    Raises :class:`~mctrack.errors.InputError` when a tracklet has two rows in
    one frame (a duplicated chunk).
    """
    import numpy as np
    import pandas as pd

    from .tables import ASSOCIATION, TRACKLET2D, read_tables

    tr = read_tables([str(f) for f in tracklet_files], TRACKLET2D)
    tr = tr.sort_values(["camera_id", "track_id", "frame"], kind="stable").reset_index(drop=True)
    key = ["camera_id", "track_id"]
    dup = tr.duplicated(key + ["frame"])
    if dup.any():
        r = tr[dup].iloc[0]
        raise InputError(", ".join(map(str, tracklet_files)), "Tracklet2D rows",
                         f"camera {r['camera_id']!r} track {r['track_id']} has two rows in frame {r['frame']}",
                         "pass each tracklet's rows once (no duplicated chunk)")
    n_det = (tr["frame_status"].astype(str) == "detected").groupby([tr[k] for k in key], sort=True).sum()
    gid = np.empty(len(n_det), np.int64)
    gid[np.argsort(-n_det.to_numpy(np.int64), kind="stable")] = np.arange(len(n_det))
    keys = n_det.index.to_frame(index=False)
    association = ASSOCIATION.coerce(pd.DataFrame({
        "camera_id": keys["camera_id"].astype(str), "track_id": keys["track_id"].to_numpy(np.int64),
        "global_id": gid, "n_frames": n_det.to_numpy(np.int64), "n_linked_cameras": 1, "support": np.nan,
        "parent_track_id": keys["track_id"].to_numpy(np.int64)}))
    return tr, association
