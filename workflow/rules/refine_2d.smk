rule refine_2d:
    input:
        chunks=camera_chunk_tracklets,
        embeddings=camera_chunk_embeddings,
    output:
        "results/{session}/track_2d/{camera}.parquet",
    log:
        "logs/{session}/track_2d/{camera}/refine.log",
    params:
        refine=config["track_2d"].get("refine") or {},
        fps=lambda wc: PLANS[wc.session].fps,
        multi_view=lambda wc: PLANS[wc.session].calibrated,
    script:
        "../scripts/refine_2d.py"
