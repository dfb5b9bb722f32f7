rule export_session:
    input:
        "results/{session}/{session}.h5",
    output:
        mot=directory("results/{session}/export/mot"),
        csv="results/{session}/export/{session}_3d.csv",
        parquet="results/{session}/export/{session}_3d.parquet",
        movement="results/{session}/export/{session}_movement.nc",
    log:
        "logs/{session}/export.log",
    params:
        export=config["export"],
    script:
        "../scripts/export.py"


rule export:
    input:
        export_outputs(),
