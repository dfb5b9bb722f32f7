# Planning and input functions. All checks run here, before any job starts.
import pandas as pd

from mctrack.config import check_stage_configs, plan_sessions, read_camera_sheet

validate(read_camera_sheet(config["cameras"]), "../schemas/cameras.schema.yaml")
PLANS = plan_sessions(config)
check_stage_configs(config)
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
]


def all_outputs():
    out = []
    for s, p in PLANS.items():
        out.append(f"results/{s}/{s}.h5")
        out += expand("results/{session}/qc/{plot}.png", session=s, plot=QC_PLOTS)
        if p.has_gt:
            out.append(f"results/{s}/eval/metrics.json")
    return out


# --- track2d ---
def detector_input(wildcards):
    """Input of the detect rule, the camera's det.txt (backend precomputed) or its video."""
    e = camera_entry(wildcards)
    return e.detections if config["detect"]["backend"] == "precomputed" else e.video


def tracker_settings(wildcards):
    """The track_2d section without refine (refinement settings must not rerun tracking)."""
    return {k: v for k, v in config["track_2d"].items() if k != "refine"}


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
