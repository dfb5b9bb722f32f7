"""Snakemake adapter: rule associate -> mctrack.associate (all cameras and chunks of a session).

``method: frames`` with >= 2 calibrated cameras runs block by block (mctrack.associate.blocks: one chunk of
frames of every camera in memory at a time; same outputs as associate_session, refined rows written block by
block); other settings associate the whole session at once.
"""
import tempfile
from pathlib import Path

from mctrack.associate import AssociationConfig, AssociationResult, associate_session
from mctrack.associate.blocks import BlockAssociation, frame_blocks, write_blocks
from mctrack.associate.ground import GroundConfig, associate_ground, session_ground_maps, track_ground, use_ground_mode
from mctrack.config import load_session_cameras
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.tables import ASSOCIATION, PAIR_EVIDENCE, TRACKLET2D, read_tables, write_table

log = setup_logging(snakemake.log[0], "mctrack.associate")
plan = snakemake.params.plan
ground = GroundConfig.from_dict(snakemake.params.ground)
cfg = AssociationConfig.from_dict(snakemake.params.associate)
ground_mode = use_ground_mode(plan, ground)
cameras = load_session_cameras(plan) if plan.calibrated and not ground_mode else {}
if not ground_mode and cfg.method == "frames" and len(set(cameras) & set(plan.cameras)) >= 2:
    # block by block: one chunk of frames of every camera at a time (memory bounded by a chunk)
    block = max(b - a for a, b in plan.chunks) if plan.chunks else 1000
    n_rep = [0]

    def counted(blocks):
        for df in blocks:
            n_rep[0] += int((df["frame_status"] == "reprojected").sum())
            yield df

    out = Path(snakemake.output.tracklets)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".associate-") as tmp:
        with BlockAssociation(frame_blocks(snakemake.input.tracklets, block, tmp), cameras, cfg, tmpdir=tmp) as ba:
            write_table(ba.association, ASSOCIATION, snakemake.output.association)
            write_table(ba.evidence, PAIR_EVIDENCE, snakemake.output.evidence)
            write_blocks(counted(ba.tracklets()), TRACKLET2D, snakemake.output.tracklets)
            a = ba.association
    n_reprojected = n_rep[0]
else:
    tracklets = read_tables(snakemake.input.tracklets, TRACKLET2D)
    if ground_mode:  # issue 8: ground-plane association + camera handoff (mctrack.associate.ground)
        maps = session_ground_maps(plan, ground, load_session_cameras(plan) if plan.calibration else {})
        if ground.method == "kalman":  # one Kalman filter per target on the floor; tracklets split by ground track
            res = AssociationResult(*track_ground(tracklets, maps, ground, fps=plan.fps)[:3])
        else:
            association, evidence, _ = associate_ground(tracklets, maps, ground, fps=plan.fps)
            res = AssociationResult(tracklets, association, evidence)
    else:
        if not plan.calibrated:
            log.info("session %s: %d camera(s), calibrated: %s -> cross-camera association skipped; "
                     "each tracklet is its own global id", plan.session, len(plan.cameras), bool(plan.calibration))
        res = associate_session(tracklets, cameras, cfg)
    write_table(res.association, ASSOCIATION, snakemake.output.association)
    write_table(res.evidence, PAIR_EVIDENCE, snakemake.output.evidence)
    write_table(res.tracklets, TRACKLET2D, snakemake.output.tracklets)
    a = res.association
    n_reprojected = int((res.tracklets["frame_status"] == "reprojected").sum())
log.info("%d tracklets -> %d global ids (%d seen by >= 2 cameras); %d reprojected rows; "
         "median support %.2f", len(a), a["global_id"].nunique(),
         a.loc[a["n_linked_cameras"] >= 2, "global_id"].nunique(), n_reprojected,
         float(a.drop_duplicates("global_id")["support"].median()) if len(a) else float("nan"))
exit_now()  # every output is written and closed: skip the interpreter's teardown
