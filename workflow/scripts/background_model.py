"""Snakemake adapter: rule background_model -> BackgroundDetector.save_model (once per camera)."""
from mctrack.config import detector_settings
from mctrack.detect import make_detector
from mctrack.log import setup_logging
from mctrack.runtime import exit_now, set_threads

set_threads(snakemake.threads)  # library thread pools follow the rule's threads

log = setup_logging(snakemake.log[0], "mctrack.detect")
detector = make_detector(detector_settings(snakemake.params.detect))
detector.save_model(snakemake.input.video, snakemake.output[0])
log.info("%s: background model primed on %d frames", snakemake.wildcards.camera, detector.params["n_prime"])
exit_now()  # every output is written and closed: skip the interpreter's teardown
