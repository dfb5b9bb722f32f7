"""Snakemake adapter: rule calibrate -> mctrack.calibration.report.calibrate_session."""
from mctrack.calibration.report import calibrate_session
from mctrack.log import setup_logging
from mctrack.runtime import exit_now

log = setup_logging(snakemake.log[0], "mctrack.calibrate")
plan = snakemake.params.plan
report = calibrate_session({k: c.board for k, c in plan.cameras.items()}, snakemake.params.calibrate,
                           snakemake.output.calibration, snakemake.output.report, snakemake.output.plot,
                           intrinsics=plan.intrinsics,
                           calibration_names={k: c.calibration_name for k, c in plan.cameras.items()},
                           title=f"{plan.session}: calibration from board footage")
log.info("%s calibration written to %s; worst triangulated square error %.3f%%", report["mode"],
         snakemake.output.calibration, 100 * report["square_rel_error_max"])
exit_now()  # every output is written and closed: skip the interpreter's teardown
