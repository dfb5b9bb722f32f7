"""Snakemake adapter: rule refine_2d -> mctrack.track2d.refine_camera (all chunks of one camera)."""
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.track2d import RefineConfig, refine_camera

log = setup_logging(snakemake.log[0], "mctrack.refine_2d")
cfg = RefineConfig.from_dict(snakemake.params.refine).resolve(snakemake.params.multi_view)
out = refine_camera(list(snakemake.input.chunks), snakemake.output[0], snakemake.params.fps, cfg,
                    list(snakemake.input.embeddings), camera_id=snakemake.wildcards.camera)
counts = out["frame_status"].value_counts().to_dict()
log.info("%s: %d refined rows, %d tracks (%s; refinement %s)", snakemake.wildcards.camera, len(out),
         out["track_id"].nunique(), counts, "on" if cfg.enabled else "off (calibrated multi-camera session: association bridges gaps)" if snakemake.params.multi_view else "off")
exit_now()  # every output is written and closed: skip the interpreter's teardown
