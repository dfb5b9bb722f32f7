rule smooth:
    input:
        points="results/{session}/triangulate/points3d.parquet",
    output:
        tracks="results/{session}/smooth/tracks3d.parquet",
    params:
        plan=plan,
        smooth=config["smooth"],
    conda:
        "../../envs/mctrack.yaml"
    log:
        "logs/{session}/smooth.log",
    script:
        "../scripts/smooth.py"
