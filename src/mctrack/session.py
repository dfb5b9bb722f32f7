"""Moved to :mod:`mctrack.io.session`; this import path keeps working."""
from .io.session import *  # noqa: F401,F403
from .io.session import CAMERA_FIELDS, TRACKING_FIELDS, Session, read_session, tracking_block, tracks_3d, write_session  # noqa: F401
