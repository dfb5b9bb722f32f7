"""Snakemake adapter: rule render_overlay -> mctrack.render.render_camera_clip (one camera, one chunk)."""
from mctrack.log import setup_logging
from mctrack.render import RenderConfig, load_overlays, render_camera_clip
from mctrack.runtime import exit_now

log = setup_logging(snakemake.log[0], "mctrack.render")
plan, cam = snakemake.params.plan, snakemake.wildcards.camera
start, stop = snakemake.params.frames
cfg = RenderConfig.from_dict(snakemake.params.render)
overlays, _ = load_overlays(plan, snakemake.input.tracklets, snakemake.input.association, snakemake.input.points,
                            snakemake.input.residuals, cameras=[cam], frame_range=(start, stop), margin=cfg.trail_length)
entry = plan.cameras[cam]
n = render_camera_clip(entry.video, entry.frame_offset, start, stop, overlays[cam], cfg, plan.fps, snakemake.output[0])
log.info("%s frames [%d, %d): %d frames rendered (%s preset)", cam, start, stop, n, cfg.preset.name)
exit_now()  # every output is written and closed: skip the interpreter's teardown
