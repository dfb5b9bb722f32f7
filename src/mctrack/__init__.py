"""mctrack: multi-camera detection, tracking, association and triangulation.

Stages (one module each): :mod:`mctrack.simulate` (synthetic scene with ground
truth), :mod:`mctrack.detect`, :mod:`mctrack.track2d`, :mod:`mctrack.associate`,
:mod:`mctrack.triangulate`, :mod:`mctrack.io` (session HDF5, exports), :mod:`mctrack.qc`,
:mod:`mctrack.evaluate`. The data passed between stages is defined once in
:mod:`mctrack.tables`; camera models live in :mod:`mctrack.calibration`.

``mctrack.read_session(path)`` opens a session file (see :mod:`mctrack.io.session`).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "read_session"]


def __getattr__(name):  # lazy: `import mctrack` stays cheap (no h5py/pandas import)
    if name == "read_session":
        from .io.session import read_session

        return read_session
    raise AttributeError(f"module 'mctrack' has no attribute {name!r}")
