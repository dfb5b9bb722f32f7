"""Snakemake adapter: rule assemble -> mctrack.session.write_session (one HDF5 per session)."""
from mctrack.log import setup_logging
from mctrack.session import write_session
from mctrack.tables import ASSOCIATION, POINTS3D, TRACKLET2D, read_table, read_tables

log = setup_logging(snakemake.log[0], "mctrack.assemble")
plan = snakemake.params.plan
association = read_table(snakemake.input.association, ASSOCIATION)
write_session(snakemake.output[0], plan.n_frames, list(plan.cameras), read_tables(snakemake.input.tracklets, TRACKLET2D),
              association, read_table(snakemake.input.points, POINTS3D), session=plan.session, fps=plan.fps,
              config=snakemake.config, chunk_frames=snakemake.params.hdf5["chunk_frames"])
log.info("wrote %s: %d frames x %d global ids, cameras %s", snakemake.output[0], plan.n_frames,
         association["global_id"].nunique(), list(plan.cameras))
