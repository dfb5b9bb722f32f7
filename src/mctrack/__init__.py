"""mctrack: multi-camera detection, tracking, association and triangulation.

Stages (one module each): :mod:`mctrack.simulate` (synthetic scene with ground
truth), :mod:`mctrack.detect`, :mod:`mctrack.track2d`, :mod:`mctrack.associate`,
:mod:`mctrack.triangulate`, :mod:`mctrack.session` (HDF5), :mod:`mctrack.qc`,
:mod:`mctrack.evaluate`. The data passed between stages is defined once in
:mod:`mctrack.tables`; camera models live in :mod:`mctrack.calibration`.
"""

__version__ = "0.1.0"
