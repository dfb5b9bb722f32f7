"""Snakemake adapter: rule simulate -> mctrack.simulate.run_simulation."""
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.simulate import SimulationConfig, run_simulation

log = setup_logging(snakemake.log[0], "mctrack.simulate")
params = {k: v for k, v in snakemake.params.simulate.items() if k != "session"}
cameras = list(snakemake.params.cameras)
cfg = SimulationConfig.from_dict(params)
log.info("simulating %d targets, %d frames, cameras %s", cfg.n_targets, cfg.n_frames, cameras)
run_simulation(cfg, cameras, videos=dict(zip(cameras, snakemake.output.videos)),
               calibration=snakemake.output.calibration, gt3d=snakemake.output.gt3d,
               gt2d=dict(zip(cameras, snakemake.output.gt2d)), workers=snakemake.threads)
exit_now()  # every output is written and closed: skip the interpreter's teardown
