"""Snakemake adapter: rule export_session -> mctrack.io.export (MOTChallenge, 3D CSV/Parquet, movement netCDF)."""
from mctrack.io.export import export_mot, export_movement, export_tracks_3d
from mctrack.io.session import read_session
from mctrack.log import setup_logging
from mctrack.runtime import exit_now

log = setup_logging(snakemake.log[0], "mctrack.export")
cfg = snakemake.params.export
s = read_session(snakemake.input[0])
mot = export_mot(s, snakemake.output.mot, ids=cfg["mot_ids"], include_coasted=cfg.get("include_coasted"))
export_tracks_3d(s, snakemake.output.csv, "csv")
export_tracks_3d(s, snakemake.output.parquet, "parquet")
export_movement(s, snakemake.output.movement)
log.info("exported %s: MOT (%s ids) for %d cameras, 3D CSV/Parquet, movement netCDF", s.session, cfg["mot_ids"],
         len(mot))
exit_now()  # every output is written and closed: skip the interpreter's teardown
