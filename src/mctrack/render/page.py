"""A self-contained HTML page playing one MP4 (for the Snakemake report).

Snakemake's report shows images, PDFs and HTML inline but offers other files
(MP4 included) only as downloads; wrapping the video in a page with an HTML5
``<video>`` element whose source is a ``data:video/mp4;base64`` URI makes it
play inside the report (H.264 yuv420p MP4 plays in every current browser).
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from ..errors import InputError, atomic_path


def video_page(video: str | os.PathLike, output: str | os.PathLike, title: str, note: str = "") -> int:
    """Write ``output`` (HTML) embedding ``video`` (MP4) as a playable, looping, muted video; return its size in bytes.

    Raises :class:`~mctrack.errors.InputError` when ``video`` is missing.
    """
    video = Path(video)
    if not video.exists():
        raise InputError(video, None, "video not found", "run the rule that renders it")
    b64 = base64.b64encode(video.read_bytes()).decode("ascii")
    doc = (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n"
        "<body style=\"margin:0;background:#111;color:#ddd;font:13px sans-serif\">\n"
        "<video controls autoplay muted loop playsinline style=\"display:block;width:100%;height:auto\" "
        "src=\"data:video/mp4;base64,{b}\"></video>\n<p style=\"margin:6px\">{t}. {n}</p>\n</body></html>\n"
    ).format(t=html.escape(title), n=html.escape(note), b=b64)
    with atomic_path(output) as tmp:
        Path(tmp).write_text(doc)
    return len(doc)
