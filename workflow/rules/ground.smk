# --- ground --- (issue 8: ground-plane mode, camera handoff)


rule handoffs:
    input:
        tracklets=associated_tracklets,
        association="results/{session}/associate/association.parquet",
        points="results/{session}/triangulate/points3d.parquet",
    output:
        handoffs="results/{session}/ground/handoffs.parquet",
        plot=report(
            "results/{session}/qc/handoffs.png",
            caption="../report/handoffs.rst",
            category="QC",
            subcategory="{session}",
        ),
    log:
        "logs/{session}/handoffs.log",
    params:
        plan=plan,
        ground=config["ground"],
    script:
        "../scripts/handoffs.py"
