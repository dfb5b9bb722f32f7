"""File formats: the session HDF5 (:mod:`mctrack.io.session`), exports (:mod:`mctrack.io.export`)
and MOTChallenge text files (:mod:`mctrack.io.mot`)."""
