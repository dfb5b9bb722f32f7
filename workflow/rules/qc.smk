rule qc:
    input:
        detections=detection_files,
        tracklets=session_tracklets,
        association=if_3d("results/{session}/associate/association.parquet"),
        points=if_3d("results/{session}/triangulate/points3d.parquet"),
        residuals=if_3d("results/{session}/triangulate/residuals.parquet"),
    output:
        **{
            plot: report(
                f"results/{{session}}/qc/{plot}.png",
                caption=f"../report/{plot}.rst",
                category="QC",
                subcategory="{session}",
            )
            for plot in QC_PLOTS
        },
        summary=report(
            "results/{session}/qc/summary.tsv",
            caption="../report/qc_summary.rst",
            category="QC",
            subcategory="{session}",
        ),
    log:
        "logs/{session}/qc.log",
    params:
        plan=plan,
    script:
        "../scripts/qc.py"
