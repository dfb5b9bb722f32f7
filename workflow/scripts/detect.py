"""Snakemake adapter: rule detect -> mctrack.detect.run_detect (one camera, one chunk)."""
from mctrack.detect import detector_config, run_detect
from mctrack.log import setup_logging

log = setup_logging(snakemake.log[0], "mctrack.detect")
start, stop = snakemake.params.frames
cfg = detector_config(snakemake.params.detect)
dets = run_detect(cfg, snakemake.input.video, start, stop, snakemake.wildcards.camera,
                  snakemake.params.frame_offset, snakemake.output[0])
log.info("%s frames [%d, %d): %d detections (%s)", snakemake.wildcards.camera, start, stop, len(dets), cfg["backend"])
