# mctrack: multi-camera videos -> detections -> 2D tracklets -> global ids -> 3D tracks -> HDF5 + QC.
# Run `snakemake --cores all` for the embedded synthetic default, or pass --configfile.
import os

from snakemake.utils import min_version

from mctrack.config import check_config, config_sources, load_schema

min_version("9.0")

# The default run (no --configfile) is the synthetic scene of config/config.yaml. A --configfile
# starts from the schema's documented defaults only: nothing of the synthetic scene leaks in.
DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")
if not workflow.overwrite_configfiles:

    configfile: DEFAULT_CONFIG


# Checks and plans are memoised in .snakemake/mctrack-probe (keyed by config, code and input files):
# every snakemake call (and every cluster job) parses the workflow.
MCTRACK_CACHE = ".snakemake/mctrack-probe"
check_config(
    config,
    load_schema(os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"), MCTRACK_CACHE),
    lambda: config_sources(workflow.overwrite_configfiles, DEFAULT_CONFIG)
    + [("--config", dict(workflow.config_settings.config))],
    cache_dir=MCTRACK_CACHE,
)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/detect.smk"
include: "workflow/rules/track_2d.smk"
include: "workflow/rules/associate.smk"
include: "workflow/rules/triangulate.smk"
include: "workflow/rules/assemble.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/smooth.smk"
include: "workflow/rules/refine_2d.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/ground.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
