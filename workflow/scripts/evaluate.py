"""Snakemake adapter: rule evaluate -> mctrack.evaluate.evaluate_session (metrics.json + metrics.tsv)."""
from mctrack.associate.ground import GroundConfig, session_ground_maps, session_handoff_metrics, use_ground_mode
from mctrack.config import load_session_cameras, single_view_tables
from mctrack.evaluate import evaluate_session, write_metrics
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, TRACK3D, TRACKLET2D, read_table, read_tables

log = setup_logging(snakemake.log[0], "mctrack.evaluate")
plan = snakemake.params.plan
gt2d = {name: c.gt for name, c in plan.cameras.items() if c.gt}
cfg = dict(snakemake.params.evaluate)
if cfg.get("gt_ids_shared") is None:  # auto: only the simulator's ids are shared across cameras
    cfg["gt_ids_shared"] = plan.synthetic
if snakemake.input.association:
    tracklets = read_tables(snakemake.input.tracklets, TRACKLET2D)
    association = read_table(snakemake.input.association, ASSOCIATION)
    points, tracks3d = read_table(snakemake.input.points, POINTS3D), read_table(snakemake.input.tracks3d, TRACK3D)
else:  # no 3D (one camera / no calibration): one global id per tracklet, no 3D rows
    tracklets, association = single_view_tables(snakemake.input.tracklets)
    points, tracks3d = POINTS3D.empty(), TRACK3D.empty()
metrics = evaluate_session(tracklets, gt2d, association, points, snakemake.input.gt3d or None, cfg,
                           detections=read_tables(snakemake.input.detections, DETECTION), tracks3d=tracks3d,
                           frame_offsets={name: c.frame_offset for name, c in plan.cameras.items()},
                           n_frames=plan.n_frames,
                           raw_tracklets=read_tables(snakemake.input.raw_tracklets, TRACKLET2D))
ground = GroundConfig.from_dict(snakemake.params.ground)
if use_ground_mode(plan, ground) and cfg["gt_ids_shared"] and snakemake.input.gt3d:  # issue 8: handoffs vs GT
    metrics["handoffs"] = session_handoff_metrics(read_tables(snakemake.input.tracklets, TRACKLET2D),
                                                  read_table(snakemake.input.association, ASSOCIATION),
                                                  read_table(snakemake.input.points, POINTS3D), gt2d,
                                                  snakemake.input.gt3d, ground, float(cfg["match_distance_3d"]),
                                                  maps=session_ground_maps(plan, ground, load_session_cameras(plan)
                                                                           if plan.calibration else {}))
write_metrics(metrics, snakemake.output.metrics, snakemake.output.table)
log.info("metrics: %s", metrics["summary"])
exit_now()  # every output is written and closed: skip the interpreter's teardown
