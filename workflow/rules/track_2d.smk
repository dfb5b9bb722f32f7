rule track_2d:
    input:
        detections="results/{session}/detect/{camera}/{chunk}.parquet",
        state=previous_state,
    output:
        tracklets="results/{session}/track_2d/{camera}/{chunk}.parquet",
        state="results/{session}/track_2d/{camera}/{chunk}.state",
    params:
        track_2d=config["track_2d"],
        frames=chunk_range,
    log:
        "logs/{session}/track_2d/{camera}/{chunk}.log",
    script:
        "../scripts/track_2d.py"
