"""Snakemake adapter: rules render_join_* -> mctrack.render.concat_videos (chunk clips -> one file)."""
from mctrack.log import setup_logging
from mctrack.render import RenderConfig, concat_videos
from mctrack.runtime import exit_now

log = setup_logging(snakemake.log[0], "mctrack.render")
preset = RenderConfig.from_dict(snakemake.params.render).preset
how = concat_videos(list(snakemake.input), snakemake.output[0], preset.crf, preset.x264_preset)
log.info("%d clips joined into %s (%s)", len(snakemake.input), snakemake.output[0], how)
exit_now()  # every output is written and closed: skip the interpreter's teardown
