# Calibration from board footage (sessions whose camera sheet has a `board` column).
rule calibrate:
    input:
        boards=calibrate_board_inputs,
        intrinsics=calibrate_intrinsics_input,
    output:
        calibration="results/{session}/calibration.toml",
        report="results/{session}/calibrate/report.json",
        plot=report(
            "results/{session}/calibrate/calibration_qc.png",
            caption="../report/calibration_qc.rst",
            category="QC",
            subcategory="{session}",
        ),
    log:
        "logs/{session}/calibrate.log",
    params:
        plan=plan,
        calibrate=config["calibrate"],
    script:
        "../scripts/calibrate.py"
