"""Snakemake adapter: rule assemble -> mctrack.io.session.assemble_session (one HDF5 per session)."""
import pandas as pd

from mctrack.calibration.refraction import shared_interface
from mctrack.config import load_session_cameras, single_view_tables
from mctrack.io.session import assemble_session, collect_provenance
from mctrack.log import setup_logging
from mctrack.runtime import exit_now
from mctrack.tables import ASSOCIATION, TRACK3D, read_table

log = setup_logging(snakemake.log[0], "mctrack.assemble")
plan = snakemake.params.plan
rig = load_session_cameras(plan) if plan.calibration else {}
interface = shared_interface(rig)  # per-camera interfaces stay in each camera's /rig meta
interface = interface.to_dict() if interface is not None else None
detect = snakemake.config.get("detect") or {}
prov = collect_provenance({c: (e.video, e.frame_offset) for c, e in plan.cameras.items()},
                          model=snakemake.input.model[0] if snakemake.input.model else None,
                          detector_backend=detect.get("backend", ""))
if snakemake.input.association:
    tracklets, association = list(snakemake.input.tracklets), read_table(snakemake.input.association, ASSOCIATION)
    points, tracks3d = snakemake.input.points, snakemake.input.tracks3d
else:  # no 3D (one camera / no calibration): the association is one global id per tracklet, no 3D rows
    tracklets, association = single_view_tables(snakemake.input.tracklets)
    points, tracks3d = None, TRACK3D.empty()
# issue 8: handoff events go into /handoffs in ground-plane mode
handoffs = pd.read_parquet(snakemake.input.handoffs) if snakemake.input.get("handoffs") else None
assemble_session(snakemake.output[0], plan.n_frames, list(plan.cameras), tracklets, association,
                 points, detections=list(snakemake.input.detections), session=plan.session,
                 fps=plan.fps, config=dict(snakemake.config), chunk_frames=snakemake.params.chunk_frames, rig=rig,
                 rig_attrs={"unit": "m", "calibration_file": plan.calibration, "interface": interface,
                            "names": {c: cam.name for c, cam in rig.items()}},
                 provenance=prov, tracks3d=tracks3d, handoffs=handoffs)
log.info("wrote %s: %d frames x %d global ids, cameras %s", snakemake.output[0], plan.n_frames,
         association["global_id"].nunique(), list(plan.cameras))
exit_now()  # every output is written and closed: skip the interpreter's teardown
