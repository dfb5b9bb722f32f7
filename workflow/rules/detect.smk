rule background_model:
    input:
        video=lambda wc: camera_entry(wc).video,
    output:
        "results/{session}/detect/{camera}/background.npz",
    log:
        "logs/{session}/detect/{camera}/background_model.log",
    params:
        detect=detector_settings(config["detect"]),
    script:
        "../scripts/background_model.py"


rule detect:
    input:
        source=detector_input,
        model=background_model_input,
    output:
        "results/{session}/detect/{camera}/{chunk}.parquet",
    log:
        "logs/{session}/detect/{camera}/{chunk}.log",
    threads: config["detect"]["threads"]
    resources:
        gpu=detect_gpus(config),
    params:
        detect=detector_settings(config["detect"]),
        frames=chunk_range,
        frame_offset=lambda wc: camera_entry(wc).frame_offset,
    script:
        "../scripts/detect.py"
