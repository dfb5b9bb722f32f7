"""Snakemake adapter: rule evaluate -> mctrack.evaluate.evaluate_session (metrics.json + metrics.tsv)."""
from mctrack.evaluate import evaluate_session, write_metrics
from mctrack.log import setup_logging
from mctrack.tables import ASSOCIATION, DETECTION, POINTS3D, TRACK3D, TRACKLET2D, read_table, read_tables

log = setup_logging(snakemake.log[0], "mctrack.evaluate")
plan = snakemake.params.plan
gt2d = {name: c.gt for name, c in plan.cameras.items() if c.gt}
metrics = evaluate_session(read_tables(snakemake.input.tracklets, TRACKLET2D), gt2d,
                           read_table(snakemake.input.association, ASSOCIATION),
                           read_table(snakemake.input.points, POINTS3D),
                           snakemake.input.gt3d or None, snakemake.params.evaluate,
                           detections=read_tables(snakemake.input.detections, DETECTION),
                           tracks3d=read_table(snakemake.input.tracks3d, TRACK3D))
write_metrics(metrics, snakemake.output.metrics, snakemake.output.table)
log.info("metrics: %s", metrics["summary"])
