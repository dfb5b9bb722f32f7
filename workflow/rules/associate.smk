rule associate:
    input:
        tracklets=tracklet_files,
        calibration=calibration_input,
    output:
        association="results/{session}/associate/association.parquet",
        evidence="results/{session}/associate/pair_evidence.parquet",
        tracklets="results/{session}/associate/tracklets.parquet",
    params:
        plan=plan,
        associate=config["associate"],
    log:
        "logs/{session}/associate.log",
    script:
        "../scripts/associate.py"
