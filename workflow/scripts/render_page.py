"""Snakemake adapter: rule render_report_page -> mctrack.render.page.video_page (mosaic playable in the report)."""
from mctrack.log import setup_logging
from mctrack.render import RenderConfig, probe
from mctrack.render.page import video_page
from mctrack.runtime import exit_now

log = setup_logging(snakemake.log[0], "mctrack.render")
preset = RenderConfig.from_dict(snakemake.params.render).preset
facts = probe(snakemake.input[0], count_frames=False)
size = video_page(snakemake.input[0], snakemake.output[0], f"{snakemake.wildcards.session}: all cameras",
                  f"preset {preset.name}, {facts.width}x{facts.height} px, {facts.fps:g} frames/s")
log.info("report page %s: %.1f MB", snakemake.output[0], size / 1e6)
exit_now()  # every output is written and closed: skip the interpreter's teardown
