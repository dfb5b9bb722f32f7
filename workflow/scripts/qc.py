"""Snakemake adapter: rule qc -> mctrack.qc.make_qc_plots."""
from mctrack.log import setup_logging
from mctrack.qc import make_qc_plots
from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, RESIDUALS, TRACKLET2D, read_table, read_tables

log = setup_logging(snakemake.log[0], "mctrack.qc")
plan = snakemake.params.plan
make_qc_plots(read_tables(snakemake.input.detections, DETECTION), read_tables(snakemake.input.tracklets, TRACKLET2D),
              read_table(snakemake.input.association, ASSOCIATION), read_table(snakemake.input.points, POINTS3D),
              read_table(snakemake.input.residuals, RESIDUALS), plan.n_frames, list(plan.cameras),
              dict(snakemake.output.items()), title=plan.session)
log.info("QC plots written for %s", plan.session)
