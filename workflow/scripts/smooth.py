"""Snakemake adapter: rule smooth -> mctrack.smooth.smooth_tracks (RTS smoothing + gap filling of 3D tracks)."""
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.smooth import SmoothConfig, smooth_tracks
from mctrack.tables import POINTS3D, TRACK3D, read_table, write_table

log = setup_logging(snakemake.log[0], "mctrack.smooth")
plan = snakemake.params.plan
points = read_table(snakemake.input.points, POINTS3D)
tracks = smooth_tracks(points, plan.fps, SmoothConfig.from_dict(snakemake.params.smooth))
log.info("%d 3D points -> %d track rows (%d filled) for %d global ids", len(points), len(tracks),
         int(tracks["filled"].sum()), tracks["global_id"].nunique())
write_table(tracks, TRACK3D, snakemake.output.tracks)
exit_now()  # every output is written and closed: skip the interpreter's teardown
