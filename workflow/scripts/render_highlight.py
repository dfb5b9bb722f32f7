"""Snakemake adapter: rule render_highlight -> mctrack.render.render_highlight_clip (one global id)."""
from mctrack.log import setup_logging
from mctrack.render import RenderConfig, load_overlays, render_highlight_clip
from mctrack.runtime import exit_now

log = setup_logging(snakemake.log[0], "mctrack.render")
plan, gid = snakemake.params.plan, int(snakemake.wildcards.gid)
cfg = RenderConfig.from_dict(snakemake.params.render)
overlays, points = load_overlays(plan, snakemake.input.tracklets, snakemake.input.association, snakemake.input.points,
                                 snakemake.input.residuals)
cams = {name: (c.video, c.frame_offset) for name, c in plan.cameras.items()}
segs = render_highlight_clip(cams, overlays, gid, points, cfg, plan.fps, plan.n_frames, snakemake.output[0])
log.info("global id %d: %d segment(s) %s, %d session frames", gid, len(segs), segs, sum(b - a for a, b in segs))
exit_now()  # every output is written and closed: skip the interpreter's teardown
