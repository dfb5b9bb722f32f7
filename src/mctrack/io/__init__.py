"""File formats in and out of mctrack (session file, exports, MOTChallenge text files: :mod:`mctrack.io.mot`)."""
