"""Snakemake adapter: rule detect -> mctrack.detect.run_detect (one camera, one chunk)."""
from mctrack.config import detector_settings
from mctrack.detect import run_detect
from mctrack.log import setup_logging
from mctrack.runtime import exit_now, set_threads

set_threads(snakemake.threads)  # library thread pools follow the rule's threads

log = setup_logging(snakemake.log[0], "mctrack.detect")
start, stop = snakemake.params.frames
cfg = detector_settings(snakemake.params.detect)  # settings of the chosen backend only
backend = cfg["backend"]
dets = run_detect(cfg, snakemake.input.source, start, stop, snakemake.wildcards.camera,
                  snakemake.params.frame_offset, snakemake.output[0], model_path=snakemake.input.model or None)
log.info("%s frames [%d, %d): %d detections (%s)", snakemake.wildcards.camera, start, stop, len(dets), backend)
exit_now()  # outputs are written: skip the seconds-long teardown of torch/OpenVINO (critical path)
