"""Snakemake adapter: rule qc -> mctrack.qc (plots and proxy-metric table, inputs streamed file by file)."""
from mctrack.config import single_view_tables
from mctrack.log import setup_logging
from mctrack.qc import collect_qc_data, make_qc_plots
from mctrack.runtime import exit_now
from mctrack.tables import ASSOCIATION, read_table

log = setup_logging(snakemake.log[0], "mctrack.qc")
plan = snakemake.params.plan
if snakemake.input.association:
    tracklets, association = list(snakemake.input.tracklets), read_table(snakemake.input.association, ASSOCIATION)
else:  # no 3D (one camera / no calibration): one global id per tracklet, no 3D rows
    tracklets, association = single_view_tables(snakemake.input.tracklets)
qc = collect_qc_data(list(snakemake.input.detections), tracklets, association, snakemake.input.points or None,
                     snakemake.input.residuals or None, plan.n_frames, list(plan.cameras))
make_qc_plots(qc, dict(snakemake.output.items()), title=plan.session)
log.info("QC plots and summary written for %s", plan.session)
exit_now()  # every output is written and closed: skip the interpreter's teardown
