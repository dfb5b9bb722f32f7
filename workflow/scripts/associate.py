"""Snakemake adapter: rule associate -> mctrack.associate.associate (all cameras of a session)."""
from mctrack.associate import AssociationConfig, associate
from mctrack.config import load_session_cameras
from mctrack.log import setup_logging
from mctrack.tables import ASSOCIATION, PAIR_EVIDENCE, TRACKLET2D, read_tables, write_table

log = setup_logging(snakemake.log[0], "mctrack.associate")
plan = snakemake.params.plan
tracklets = read_tables(snakemake.input.tracklets, TRACKLET2D)
if plan.calibrated:
    cameras = load_session_cameras(plan)
else:
    cameras = {}
    log.info("session %s: %d camera(s), calibrated: %s -> cross-camera association skipped; "
             "each tracklet is its own global id", plan.session, len(plan.cameras), bool(plan.calibration))
association, evidence = associate(tracklets, cameras, AssociationConfig.from_dict(snakemake.params.associate))
write_table(association, ASSOCIATION, snakemake.output.association)
write_table(evidence, PAIR_EVIDENCE, snakemake.output.evidence)
log.info("%d tracklets -> %d global ids (%d seen by >= 2 cameras)", len(association),
         association["global_id"].nunique(),
         association.loc[association["n_linked_cameras"] >= 2, "global_id"].nunique())
