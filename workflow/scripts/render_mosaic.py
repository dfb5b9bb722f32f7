"""Snakemake adapter: rule render_mosaic_chunk -> mctrack.render.render_mosaic_clip (one chunk, all cameras)."""
from mctrack.log import setup_logging
from mctrack.render import RenderConfig, render_mosaic_clip
from mctrack.runtime import exit_now
from mctrack.tables import POINTS3D, read_table

log = setup_logging(snakemake.log[0], "mctrack.render")
start, stop = snakemake.params.frames
cfg = RenderConfig.from_dict(snakemake.params.render)
n = render_mosaic_clip(list(snakemake.input.clips), cfg.preset.frames(start, stop),
                       read_table(snakemake.input.points, POINTS3D), cfg, snakemake.params.plan.fps,
                       snakemake.output[0])
log.info("mosaic frames [%d, %d): %d frames of %d cameras", start, stop, n, len(snakemake.input.clips))
exit_now()  # every output is written and closed: skip the interpreter's teardown
