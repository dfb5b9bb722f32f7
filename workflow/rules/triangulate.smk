rule triangulate:
    input:
        tracklets=associated_tracklets,
        association="results/{session}/associate/association.parquet",
        calibration=calibration_input,
        homographies=homography_files,
    output:
        points="results/{session}/triangulate/points3d.parquet",
        residuals="results/{session}/triangulate/residuals.parquet",
    log:
        "logs/{session}/triangulate.log",
    params:
        plan=plan,
        triangulate=config["triangulate"],
        ground=config["ground"],
    script:
        "../scripts/triangulate.py"
