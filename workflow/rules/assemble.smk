rule assemble:
    input:
        tracklets=associated_tracklets,
        association="results/{session}/associate/association.parquet",
        points="results/{session}/triangulate/points3d.parquet",
    output:
        "results/{session}/{session}.h5",
    params:
        plan=plan,
        hdf5=config["hdf5"],
        config=config,
    conda:
        "../../envs/mctrack.yaml"
    log:
        "logs/{session}/assemble.log",
    script:
        "../scripts/assemble.py"
