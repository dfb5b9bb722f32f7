"""Snakemake adapter: rule qc -> mctrack.qc (plots and proxy-metric table, inputs streamed file by file)."""
from mctrack.log import setup_logging
from mctrack.qc import collect_qc_data, make_qc_plots
from mctrack.runtime import exit_now
from mctrack.tables import ASSOCIATION, read_table

log = setup_logging(snakemake.log[0], "mctrack.qc")
plan = snakemake.params.plan
qc = collect_qc_data(list(snakemake.input.detections), list(snakemake.input.tracklets),
                     read_table(snakemake.input.association, ASSOCIATION), snakemake.input.points,
                     snakemake.input.residuals, plan.n_frames, list(plan.cameras))
make_qc_plots(qc, dict(snakemake.output.items()), title=plan.session)
log.info("QC plots and summary written for %s", plan.session)
exit_now()  # every output is written and closed: skip the interpreter's teardown
