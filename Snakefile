# mctrack: multi-camera videos -> detections -> 2D tracklets -> global ids -> 3D tracks -> HDF5 + QC.
# Run `snakemake --cores all` for the embedded synthetic default, or pass --configfile.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


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


rule all:
    input:
        all_outputs(),
    default_target: True
