# Planning and input functions. All checks run here, before any job starts (memoised in MCTRACK_CACHE).
from mctrack.config import check_stage_configs, detector_settings, ground_mode, has_3d, plan_sessions
from mctrack.config import tracker_settings as mctrack_tracker_settings

PLANS = plan_sessions(config, cache_dir=MCTRACK_CACHE)
check_stage_configs(config, cache_dir=MCTRACK_CACHE)
SIM = config.get("simulate") or {}


wildcard_constraints:
    session=r"[A-Za-z0-9_.-]+",
    camera=r"[A-Za-z0-9_.-]+",
    chunk=r"\d{4}",


def plan(wildcards):
    return PLANS[wildcards.session]


def camera_entry(wildcards):
    return PLANS[wildcards.session].cameras[wildcards.camera]


def chunk_range(wildcards):
    """(start, stop) session frames of the {chunk} wildcard."""
    return PLANS[wildcards.session].chunks[int(wildcards.chunk)]


def session_cameras(session):
    return list(PLANS[session].cameras)


def tracklet_files(wildcards):
    """Every camera's refined TRACKLET2D table of a session (rule refine_2d, one file per camera)."""
    p = PLANS[wildcards.session]
    return expand(
        "results/{session}/track_2d/{camera}.parquet",
        session=wildcards.session,
        camera=list(p.cameras),
    )


def detection_files(wildcards):
    p = PLANS[wildcards.session]
    return expand(
        "results/{session}/detect/{camera}/{chunk}.parquet",
        session=wildcards.session,
        camera=list(p.cameras),
        chunk=p.chunk_ids(),
    )


def background_model_input(wildcards):
    """The background backend primes once per camera; chunk jobs load that model."""
    if config["detect"]["backend"] == "background":
        return f"results/{wildcards.session}/detect/{wildcards.camera}/background.npz"
    return []


def previous_state(wildcards):
    """Chunk k reads chunk k-1's tracker state; chunk 0 starts fresh."""
    k = int(wildcards.chunk)
    if k == 0:
        return []
    return f"results/{wildcards.session}/track_2d/{wildcards.camera}/{k - 1:04d}.state"


def calibration_input(wildcards):
    cal = PLANS[wildcards.session].calibration
    return [cal] if cal else []


def gt_files(wildcards):
    return [c.gt for c in PLANS[wildcards.session].cameras.values() if c.gt]


def gt3d_input(wildcards):
    if PLANS[wildcards.session].synthetic:
        return f"results/{wildcards.session}/simulate/gt3d.csv"
    return []


QC_PLOTS = [
    "detections_per_frame",
    "tracklet_lengths",
    "coasted_fraction",
    "cameras_per_target",
    "reprojection_error",
    "top_view",
    "identity_timeline",
    "ids_over_time",
]


def all_outputs():
    out = []
    for s, p in PLANS.items():
        out.append(f"results/{s}/{s}.h5")
        out += expand("results/{session}/qc/{plot}.png", session=s, plot=QC_PLOTS)
        if session_has_3d(s):  # no 3D (one camera, no calibration): no associate/triangulate/smooth jobs
            out.append(f"results/{s}/smooth/tracks3d.parquet")  # tri3d: smoothed, gap-filled 3D tracks
        if p.has_gt:
            out.append(f"results/{s}/eval/metrics.json")
        if p.calibrate:
            out.append(f"results/{s}/calibrate/calibration_qc.png")
    return out


# --- assoc ---
def associated_tracklets(wildcards):
    """The session's TRACKLET2D table after association (split tracklets, reprojected rows).

    Every stage that joins tracklets with the association table reads this one:
    the association's (camera_id, track_id) keys refer to it.
    """
    return [f"results/{wildcards.session}/associate/tracklets.parquet"]


# --- track2d ---
def detector_input(wildcards):
    """Input of the detect rule, the camera's det.txt (backend precomputed) or its video."""
    e = camera_entry(wildcards)
    return e.detections if config["detect"]["backend"] == "precomputed" else e.video


def tracker_settings(wildcards):
    """The track_2d section as the tracker gets it: no refine, det_thresh resolved (mctrack.config.tracker_settings)."""
    return mctrack_tracker_settings(config)


def reid_video_input(wildcards):
    """With ReID on, tracking reads the camera's video frames."""
    if config["track_2d"].get("reid"):
        return camera_entry(wildcards).video
    return []


def camera_chunk_tracklets(wildcards):
    """One camera's per-chunk (unrefined) TRACKLET2D tables, in chunk order."""
    return expand(
        "results/{session}/track_2d/{camera}/{chunk}.parquet",
        session=wildcards.session,
        camera=wildcards.camera,
        chunk=PLANS[wildcards.session].chunk_ids(),
    )


def camera_chunk_embeddings(wildcards):
    """One camera's per-chunk appearance embeddings (empty tables without ReID)."""
    return expand(
        "results/{session}/track_2d/{camera}/{chunk}.emb.parquet",
        session=wildcards.session,
        camera=wildcards.camera,
        chunk=PLANS[wildcards.session].chunk_ids(),
    )


# --- calib ---
def calibrate_board_inputs(wildcards):
    """Every camera's board footage (image files or video) of a session with a `board` column."""
    from mctrack.calibration.board import board_files

    out = []
    for c in PLANS[wildcards.session].cameras.values():
        files = board_files(c.board)
        out += files if files is not None else [c.board]
    return out


def calibrate_intrinsics_input(wildcards):
    """The sheet's calibration file of a board session (intrinsics kept), or nothing (full calibration)."""
    cal = PLANS[wildcards.session].intrinsics
    return [cal] if cal else []


# --- sessionio ---
def session_videos(wildcards):
    """Every camera's video (the session file records their size and frame count)."""
    return [c.video for c in PLANS[wildcards.session].cameras.values() if c.video]


def detector_model_input(wildcards):
    """The detector's model file or folder (its SHA-256 goes into the session file), if any."""
    detect = config.get("detect") or {}
    model = (detect.get(detect.get("backend", "")) or {}).get("model")
    return [model] if model and os.path.exists(model) else []


def export_outputs():
    """Every session's exports (target rule `export`)."""
    out = []
    for s in PLANS:
        out += [
            f"results/{s}/export/mot",
            f"results/{s}/export/{s}_3d.csv",
            f"results/{s}/export/{s}_3d.parquet",
            f"results/{s}/export/{s}_movement.nc",
        ]
    return out


# --- render ---
def render_chunk_clips(wildcards):
    """Every camera's overlay clip of one {chunk} (mosaic input), in camera-sheet order."""
    return expand(
        "results/{session}/render/chunks/{camera}/{chunk}.mp4",
        session=wildcards.session,
        camera=session_cameras(wildcards.session),
        chunk=wildcards.chunk,
    )


def render_camera_chunks(wildcards):
    """One camera's overlay clips, chunk order (joined into render/{camera}.mp4)."""
    return expand(
        "results/{session}/render/chunks/{camera}/{chunk}.mp4",
        session=wildcards.session,
        camera=wildcards.camera,
        chunk=PLANS[wildcards.session].chunk_ids(),
    )


def render_mosaic_chunks(wildcards):
    return expand(
        "results/{session}/render/mosaic_chunks/{chunk}.mp4",
        session=wildcards.session,
        chunk=PLANS[wildcards.session].chunk_ids(),
    )


def render_outputs():
    """Target `render`: per-camera overlays, the mosaic and highlight clips of every session."""
    from mctrack.errors import InputError

    out = []
    for s, p in PLANS.items():
        if "mosaic" in p.cameras:
            raise InputError(
                config["cameras"],
                f"session '{s}' camera 'mosaic'",
                "name reserved for the mosaic video",
                "rename the camera",
            )
        out += expand("results/{session}/render/{camera}.mp4", session=s, camera=list(p.cameras))
        out += [f"results/{s}/render/mosaic.mp4", f"results/{s}/render/mosaic.html"]
        out += expand("results/{session}/render/highlight/{gid}.mp4", session=s, gid=config["render"]["highlight"])
    return out


# --- prod ---
def detect_gpus(config):
    """1 when detection runs on a CUDA GPU (ultralytics backend, device 0 / cuda / cuda:N), else 0."""
    d = config["detect"]
    if d.get("backend") != "ultralytics":
        return 0
    device = str((d.get("ultralytics") or {}).get("device", "cpu")).lower()
    return int(device.startswith("cuda") or device.split(",")[0].isdigit())


# --- ground ---
def homography_files(wildcards):
    """The point-pair CSVs (camera sheet column 'homography') of the session's cameras (ground-plane mode)."""
    return [c.homography for c in PLANS[wildcards.session].cameras.values() if c.homography]


def handoffs_input(wildcards):
    """The session's handoff table in ground-plane mode (rule handoffs), else nothing."""
    if ground_mode(PLANS[wildcards.session], config["ground"].get("enabled", "auto")):
        return f"results/{wildcards.session}/ground/handoffs.parquet"
    return []


# --- prod --- (issue 11: sessions without 3D skip associate/triangulate/smooth)
def session_has_3d(session):
    """True for a calibrated or ground-plane session (mctrack.config.has_3d); False: one global id per
    tracklet and empty 3D tables, built by assemble/qc/evaluate themselves (no associate/triangulate/smooth)."""
    return has_3d(PLANS[session], config["ground"].get("enabled", "auto"))


def session_tracklets(wildcards):
    """The tracklets joined with the association: associate's output, or the refined tracklets (no 3D)."""
    return associated_tracklets(wildcards) if session_has_3d(wildcards.session) else tracklet_files(wildcards)


def if_3d(path):
    """Input function: ``path`` (with ``{session}``) for a session with 3D, nothing otherwise."""
    return lambda wildcards: path.format(session=wildcards.session) if session_has_3d(wildcards.session) else []
