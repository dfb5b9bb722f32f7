rule associate:
    input:
        tracklets=tracklet_files,
        calibration=calibration_input,
        homographies=homography_files,
    output:
        association="results/{session}/associate/association.parquet",
        evidence="results/{session}/associate/pair_evidence.parquet",
        tracklets="results/{session}/associate/tracklets.parquet",
    log:
        "logs/{session}/associate.log",
    params:
        plan=plan,
        associate=config["associate"],
        ground=config["ground"],
    script:
        "../scripts/associate.py"
