"""Snakemake adapter: rule handoffs -> mctrack.associate.ground (handoff events table + QC plot)."""
from mctrack.associate.ground import GroundConfig, plot_handoffs, session_ground_maps, session_handoffs
from mctrack.config import load_session_cameras
from mctrack.log import setup_logging
from mctrack.tables import ASSOCIATION, POINTS3D, TRACKLET2D, read_table, read_tables

log = setup_logging(snakemake.log[0], "mctrack.ground")
plan = snakemake.params.plan
tracklets = read_tables(snakemake.input.tracklets, TRACKLET2D)
association = read_table(snakemake.input.association, ASSOCIATION)
ground = GroundConfig.from_dict(snakemake.params.ground)
maps = session_ground_maps(plan, ground, load_session_cameras(plan) if plan.calibration else {})
events = session_handoffs(tracklets, association, ground, maps, read_table(snakemake.input.points, POINTS3D))
events.to_parquet(snakemake.output.handoffs, index=False)
plot_handoffs(events, association, tracklets, snakemake.output.plot, title=plan.session)
log.info("%d handoff events (median gap %s frames)", len(events),
         events["gap_frames"].median() if len(events) else "-")
