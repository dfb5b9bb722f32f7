rule assemble:
    input:
        tracklets=tracklet_files,
        association="results/{session}/associate/association.parquet",
        points="results/{session}/triangulate/points3d.parquet",
    output:
        "results/{session}/{session}.h5",
    params:
        plan=plan,
        hdf5=config["hdf5"],
    log:
        "logs/{session}/assemble.log",
    script:
        "../scripts/assemble.py"
