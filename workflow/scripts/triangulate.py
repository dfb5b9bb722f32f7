"""Snakemake adapter: rule triangulate -> mctrack.triangulate.triangulate."""
from mctrack.associate.ground import GroundConfig, ground_points, session_ground_maps, use_ground_mode, weak_rows
from mctrack.config import load_session_cameras
from mctrack.ground import ground_positions, ground_std
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.tables import ASSOCIATION, POINTS3D, RESIDUALS, TRACKLET2D, read_table, read_tables, write_table
from mctrack.triangulate import TriangulationConfig, triangulate

log = setup_logging(snakemake.log[0], "mctrack.triangulate")
plan = snakemake.params.plan
ground = GroundConfig.from_dict(snakemake.params.ground)
if use_ground_mode(plan, ground):  # issue 8: ground positions (z = 0) from the foot points
    tracklets = read_tables(snakemake.input.tracklets, TRACKLET2D)
    association = read_table(snakemake.input.association, ASSOCIATION)
    maps = session_ground_maps(plan, ground, load_session_cameras(plan) if plan.calibration else {})
    gxy = ground_positions(tracklets, maps, ground.foot_point, ground.foot_offset)
    points = ground_points(tracklets, association, gxy, ground_std(tracklets, maps, ground.foot_point),
                           weak_rows(tracklets, maps, ground))
    residuals = RESIDUALS.empty()
    log.info("%d ground-plane points (z = 0) of %d global ids; median cameras %s", len(points),
             points["global_id"].nunique(), points["n_cameras"].median())
elif plan.calibrated:
    tracklets = read_tables(snakemake.input.tracklets, TRACKLET2D)
    association = read_table(snakemake.input.association, ASSOCIATION)
    points, residuals = triangulate(tracklets, association, load_session_cameras(plan),
                                    TriangulationConfig.from_dict(snakemake.params.triangulate))
    log.info("%d 3D points (%d rejected: behind a camera or above the reprojection threshold); median "
             "reprojection error %.2f px; median cameras %s; %d use a border-cut box", len(points),
             points.attrs.get("n_rejected", 0), points["reprojection_error"].median(), points["n_cameras"].median(),
             int((points["n_cut"] > 0).sum()))
else:
    points, residuals = POINTS3D.empty(), RESIDUALS.empty()
    log.info("session %s: fewer than 2 calibrated cameras -> triangulation skipped (empty tables)", plan.session)
write_table(points, POINTS3D, snakemake.output.points)
write_table(residuals, RESIDUALS, snakemake.output.residuals)
exit_now()  # every output is written and closed: skip the interpreter's teardown
