rule background_model:
    input:
        video=lambda wc: camera_entry(wc).video,
    output:
        "results/{session}/detect/{camera}/background.npz",
    params:
        detect=config["detect"],
    conda:
        "../../envs/mctrack.yaml"
    log:
        "logs/{session}/detect/{camera}/background_model.log",
    script:
        "../scripts/background_model.py"


rule detect:
    input:
        source=detector_input,
        model=background_model_input,
    output:
        "results/{session}/detect/{camera}/{chunk}.parquet",
    params:
        detect=config["detect"],
        frames=chunk_range,
        frame_offset=lambda wc: camera_entry(wc).frame_offset,
    threads: config["detect"]["threads"]
    resources:
        gpu=1 if config["detect"]["backend"] == "ultralytics" else 0,
    conda:
        "../../envs/mctrack.yaml"
    log:
        "logs/{session}/detect/{camera}/{chunk}.log",
    script:
        "../scripts/detect.py"
