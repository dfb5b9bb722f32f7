"""Snakemake adapter: rule simulate -> mctrack.simulate.run_simulation."""
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.simulate import SimulationConfig, run_simulation
from mctrack.simulate_floor import FloorConfig, run_floor_simulation

log = setup_logging(snakemake.log[0], "mctrack.simulate")
params = {k: v for k, v in snakemake.params.simulate.items() if k != "session"}
cameras = list(snakemake.params.cameras)
scene = params.pop("scene", "tank")
if scene == "floor":  # issue 8: people walking on a floor (mctrack.simulate_floor)
    cfg, run_simulation = FloorConfig.from_dict(params), run_floor_simulation
else:
    params = {k: v for k, v in params.items() if k not in ("floor_size", "target_height")}
    cfg = SimulationConfig.from_dict(params)
log.info("simulating %s scene: %d targets, %d frames, cameras %s", scene, cfg.n_targets, cfg.n_frames, cameras)
run_simulation(cfg, cameras, videos=dict(zip(cameras, snakemake.output.videos)),
               calibration=snakemake.output.calibration, gt3d=snakemake.output.gt3d,
               gt2d=dict(zip(cameras, snakemake.output.gt2d)), workers=snakemake.threads)
exit_now()  # every output is written and closed: skip the interpreter's teardown
