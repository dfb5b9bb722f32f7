"""Error types and atomic file writing shared by every stage.

mctrack reports bad input *before* expensive work starts, with a message that
names the file, the field and the fix. Outputs are written to a temporary path
in the destination folder and renamed into place, so an interrupted job never
leaves a half-written file that Snakemake would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator


class InputError(ValueError):
    """Bad user input: a config value, camera sheet row, calibration or video.

    The message always has the form ``<file>: <field>: <problem>. Fix: <fix>``
    so a user can act on it without reading code.
    """

    def __init__(self, file: str | os.PathLike | None, field: str | None, problem: str, fix: str | None = None):
        parts = []
        if file is not None:
            parts.append(str(file))
        if field is not None:
            parts.append(str(field))
        msg = ": ".join(parts + [problem]) if parts else problem
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)
        self.file = None if file is None else str(file)
        self.field = field
        self.problem = problem
        self.fix = fix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same folder (so ``os.replace`` is atomic on
    POSIX) and keeps the destination's suffix (so libraries that dispatch on the
    extension, such as PyAV or pandas, still work). On an exception the
    temporary file is removed and ``path`` is left untouched. Temporary files
    of the same ``path`` left by a killed writer (SIGKILL runs no cleanup) are
    removed when the path is written again, e.g. by the resumed job.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(suffix)}"):
        # left by a writer of this same path that was killed (SIGKILL skips `finally`); one writer per path
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
