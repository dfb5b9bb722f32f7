rule assemble:
    input:
        detections=detection_files,
        tracklets=associated_tracklets,
        association="results/{session}/associate/association.parquet",
        points="results/{session}/triangulate/points3d.parquet",
        calibration=calibration_input,
        videos=session_videos,
        model=detector_model_input,
    output:
        "results/{session}/{session}.h5",
    log:
        "logs/{session}/assemble.log",
    params:
        plan=plan,
        chunk_frames=config["hdf5"]["chunk_frames"],
    script:
        "../scripts/assemble.py"
