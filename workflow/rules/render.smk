# Rendered videos (opt-in: `snakemake --cores N render`). Per-camera overlays are rendered
# as camera x chunk jobs and joined by remuxing (no re-encoding); the mosaic tiles the
# cameras' chunk clips chunk by chunk and is joined the same way.


ruleorder: render_join_mosaic > render_join_camera


rule render:
    input:
        render_outputs(),


rule render_overlay:
    input:
        video=lambda wc: camera_entry(wc).video,
        tracklets=associated_tracklets,
        association="results/{session}/associate/association.parquet",
        points="results/{session}/triangulate/points3d.parquet",
        residuals="results/{session}/triangulate/residuals.parquet",
        calibration=calibration_input,
    output:
        "results/{session}/render/chunks/{camera}/{chunk}.mp4",
    log:
        "logs/{session}/render/{camera}/{chunk}.log",
    params:
        plan=plan,
        frames=chunk_range,
        render=config["render"],
    script:
        "../scripts/render_overlay.py"


rule render_mosaic_chunk:
    input:
        clips=render_chunk_clips,
        points="results/{session}/triangulate/points3d.parquet",
    output:
        "results/{session}/render/mosaic_chunks/{chunk}.mp4",
    log:
        "logs/{session}/render/mosaic/{chunk}.log",
    params:
        plan=plan,
        frames=chunk_range,
        render=config["render"],
    script:
        "../scripts/render_mosaic.py"


rule render_join_camera:
    input:
        render_camera_chunks,
    output:
        "results/{session}/render/{camera}.mp4",
    log:
        "logs/{session}/render/{camera}.join.log",
    params:
        render=config["render"],
    script:
        "../scripts/render_join.py"


rule render_join_mosaic:
    input:
        render_mosaic_chunks,
    output:
        "results/{session}/render/mosaic.mp4",
    log:
        "logs/{session}/render/mosaic.join.log",
    params:
        render=config["render"],
    script:
        "../scripts/render_join.py"


rule render_report_page:
    input:
        "results/{session}/render/mosaic.mp4",
    output:
        report(
            "results/{session}/render/mosaic.html",
            caption="../report/render_mosaic.rst",
            category="Render",
            subcategory="{session}",
        ),
    log:
        "logs/{session}/render/mosaic.page.log",
    params:
        render=config["render"],
    script:
        "../scripts/render_page.py"


rule render_highlight:
    input:
        videos=session_videos,
        tracklets=associated_tracklets,
        association="results/{session}/associate/association.parquet",
        points="results/{session}/triangulate/points3d.parquet",
        residuals="results/{session}/triangulate/residuals.parquet",
        calibration=calibration_input,
    output:
        "results/{session}/render/highlight/{gid}.mp4",
    log:
        "logs/{session}/render/highlight/{gid}.log",
    wildcard_constraints:
        gid=r"\d+",
    params:
        plan=plan,
        render=config["render"],
    script:
        "../scripts/render_highlight.py"
