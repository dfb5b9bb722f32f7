"""The ``mctrack`` command (typer): ``init``, ``run``, ``inspect``, ``export``.

Installed as a console script (``[project.scripts]`` in pyproject.toml) and
runnable as ``python -m mctrack``. Bad input exits with status 2 and the
:class:`~mctrack.errors.InputError` message (file, field, fix), no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Multi-camera tracking: start a project from videos, run the workflow, inspect and export "
                       "session files.")


def _fail(exc: InputError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def init(folder: Path = typer.Argument(..., help="folder with the videos (one session per subfolder)"),
         out: Path = typer.Option(Path("."), "--out", "-o", help="where to write config.yaml and cameras.tsv"),
         pattern: Optional[str] = typer.Option(None, help="regex on the video path relative to FOLDER with named "
                                               "groups camera [and session], e.g. '(?P<session>.+)_(?P<camera>cam\\d)'"),
         detector: str = typer.Option("background", help="background (no weights) or ultralytics"),
         model: Optional[str] = typer.Option(None, help="ultralytics model (.pt, .onnx or OpenVINO folder)"),
         classes: Optional[List[int]] = typer.Option(None, "--class", help="detector class id to keep (repeat)"),
         max_frames: Optional[int] = typer.Option(None, help="process at most this many frames per session"),
         chunk_frames: int = typer.Option(1000, help="frames per detection/tracking job")) -> None:
    """Scan FOLDER for videos and calibration; write a camera sheet and a config that run as they are."""
    from .project import scan_folder, write_project

    try:
        sessions = scan_folder(folder, pattern)
        sheet, cfg = write_project(sessions, out, detector=detector, model=model, classes=classes,
                                   max_frames=max_frames, chunk_frames=chunk_frames)
    except InputError as exc:
        _fail(exc)
    for s in sessions:
        cal = f"calibration {s.calibration}" if s.calibration else "no calibration (2D only)"
        typer.echo(f"session {s.name}: {len(s.videos)} cameras ({', '.join(s.videos)}), {s.n_frames} frames at "
                   f"{s.fps:g} fps, {cal}")
    typer.echo(f"wrote {sheet} and {cfg}\nrun: mctrack run --configfile {cfg}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(ctx: typer.Context) -> None:
    """Run the packaged Snakemake workflow here; every argument is passed to snakemake.

    Without --configfile it runs the synthetic demo; --cores defaults to all.
    """
    from .project import workflow_root

    try:
        root = workflow_root()
    except InputError as exc:
        _fail(exc)
    args = list(ctx.args)
    if not any(a in ("--cores", "-c", "--jobs", "-j", "--profile") or a.startswith(("--cores=", "-c", "--jobs="))
               for a in args):
        args += ["--cores", "all"]
    if "--configfile" not in args and not any(a.startswith("--configfile=") for a in args):
        args += ["--config", f"cameras={root / 'config' / 'cameras.tsv'}"]
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"), *args]
    typer.echo(" ".join(cmd), err=True)
    raise typer.Exit(subprocess.call(cmd))


@app.command()
def inspect(session: Path = typer.Argument(..., help="results/{session}/{session}.h5")) -> None:
    """Print a summary: cameras, frames, global ids, coverage, cameras per target, residual percentiles."""
    from .io.session import read_session
    from .qc import format_summary, session_summary

    try:
        s = read_session(session)
    except InputError as exc:
        _fail(exc)
    typer.echo(format_summary(session_summary(s)))


@app.command()
def export(session: Path = typer.Argument(..., help="results/{session}/{session}.h5"),
           fmt: List[str] = typer.Option(["mot", "csv", "parquet", "movement"], "--format", "-f",
                                         help="mot | csv | parquet | movement (repeat for several)"),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder (default: export/ beside SESSION)"),
           mot_ids: str = typer.Option("track", help="MOT ids: track (per camera) or global"),
           include_coasted: Optional[str] = typer.Option(None, help="MOT rows: none | bridged | all "
                                                         "(default: as the session's evaluate config)")) -> None:
    """Export a session file to MOTChallenge text, 3D CSV / Parquet, or a movement netCDF dataset."""
    from .io.export import export_session
    from .io.session import read_session

    try:
        s = read_session(session)
        paths = export_session(s, out or Path(session).parent / "export", tuple(fmt), mot_ids=mot_ids,
                               include_coasted=include_coasted)
    except InputError as exc:
        _fail(exc)
    for k, p in paths.items():
        typer.echo(f"{k}: {', '.join(str(x) for x in p.values()) if isinstance(p, dict) else p}")


def main() -> None:  # console-script entry point
    app()
