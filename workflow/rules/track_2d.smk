rule track_2d:
    input:
        detections="results/{session}/detect/{camera}/{chunk}.parquet",
        state=previous_state,
        video=reid_video_input,
    output:
        tracklets="results/{session}/track_2d/{camera}/{chunk}.parquet",
        state="results/{session}/track_2d/{camera}/{chunk}.state",
        embeddings="results/{session}/track_2d/{camera}/{chunk}.emb.parquet",
    log:
        "logs/{session}/track_2d/{camera}/{chunk}.log",
    params:
        track_2d=tracker_settings,
        fps=lambda wc: PLANS[wc.session].fps,
        frames=chunk_range,
        frame_offset=lambda wc: camera_entry(wc).frame_offset,
    script:
        "../scripts/track_2d.py"
