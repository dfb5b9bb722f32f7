"""Snakemake adapter: rule associate -> mctrack.associate.associate_session (all cameras and chunks of a session)."""
from mctrack.associate import AssociationConfig, AssociationResult, associate_session
from mctrack.associate.ground import (GroundConfig, associate_ground, session_ground_maps, track_ground,
                                      use_ground_mode)
from mctrack.config import load_session_cameras
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.tables import ASSOCIATION, PAIR_EVIDENCE, TRACKLET2D, read_tables, write_table

log = setup_logging(snakemake.log[0], "mctrack.associate")
plan = snakemake.params.plan
tracklets = read_tables(snakemake.input.tracklets, TRACKLET2D)
ground = GroundConfig.from_dict(snakemake.params.ground)
if use_ground_mode(plan, ground):  # issue 8: ground-plane association + camera handoff (mctrack.associate.ground)
    maps = session_ground_maps(plan, ground, load_session_cameras(plan) if plan.calibration else {})
    if ground.method == "kalman":  # one Kalman filter per target on the floor; tracklets split by ground track
        res = AssociationResult(*track_ground(tracklets, maps, ground, fps=plan.fps)[:3])
    else:
        association, evidence, _ = associate_ground(tracklets, maps, ground, fps=plan.fps)
        res = AssociationResult(tracklets, association, evidence)
else:
    if plan.calibrated:
        cameras = load_session_cameras(plan)
    else:
        cameras = {}
        log.info("session %s: %d camera(s), calibrated: %s -> cross-camera association skipped; "
                 "each tracklet is its own global id", plan.session, len(plan.cameras), bool(plan.calibration))
    res = associate_session(tracklets, cameras, AssociationConfig.from_dict(snakemake.params.associate))
write_table(res.association, ASSOCIATION, snakemake.output.association)
write_table(res.evidence, PAIR_EVIDENCE, snakemake.output.evidence)
write_table(res.tracklets, TRACKLET2D, snakemake.output.tracklets)
a = res.association
log.info("%d tracklets -> %d global ids (%d seen by >= 2 cameras); %d reprojected rows; "
         "median support %.2f", len(a), a["global_id"].nunique(),
         a.loc[a["n_linked_cameras"] >= 2, "global_id"].nunique(),
         int((res.tracklets["frame_status"] == "reprojected").sum()),
         float(a.drop_duplicates("global_id")["support"].median()) if len(a) else float("nan"))
exit_now()  # every output is written and closed: skip the interpreter's teardown
