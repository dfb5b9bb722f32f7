rule smooth:
    input:
        points="results/{session}/triangulate/points3d.parquet",
    output:
        tracks="results/{session}/smooth/tracks3d.parquet",
    log:
        "logs/{session}/smooth.log",
    params:
        plan=plan,
        smooth=config["smooth"],
    script:
        "../scripts/smooth.py"
