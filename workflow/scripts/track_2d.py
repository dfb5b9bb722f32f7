"""Snakemake adapter: rule track_2d -> mctrack.track2d.track_chunk (chunk k continues chunk k-1's state)."""
from mctrack.log import setup_logging
from mctrack.runtime import deferred_import, exit_now, set_threads
from mctrack.tables import DETECTION, read_table
from mctrack.track2d import TrackerConfig, track_chunk

set_threads(snakemake.threads)  # library thread pools follow the rule's threads

log = setup_logging(snakemake.log[0], "mctrack.track_2d")
start, stop = snakemake.params.frames
cfg = TrackerConfig.from_dict(snakemake.params.track_2d, fps=snakemake.params.fps)
state_in = snakemake.input.state if isinstance(snakemake.input.state, str) else None
video = snakemake.input.video if isinstance(snakemake.input.video, str) else None
dets = read_table(snakemake.input.detections, DETECTION)
with deferred_import("torch"):  # boxmot imports torch, its box trackers never use it: ~2 s per job saved
    rows = track_chunk(cfg, dets, start, stop, snakemake.wildcards.camera, state_in, snakemake.output.state,
                       snakemake.output.tracklets, video=video, frame_offset=snakemake.params.frame_offset,
                       embeddings_out=snakemake.output.embeddings)
log.info("%s frames [%d, %d): %d tracklet rows, %d tracks (state from %s; %s)", snakemake.wildcards.camera, start,
         stop, len(rows), rows["track_id"].nunique(), state_in or "fresh tracker",
         f"ReID {cfg.reid}" if cfg.reid else "no ReID")
exit_now()  # every output is written and closed: skip the interpreter's teardown
