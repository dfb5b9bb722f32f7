"""Rendered videos: colours, layout, presets, remux concatenation, highlight marker, workflow outputs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, shared_path

from mctrack.errors import InputError
from mctrack.render import (
    MARKER_BGR,
    H264Writer,
    RenderConfig,
    choose_grid,
    concat_videos,
    decode_bgr,
    draw_overlay,
    find_marker,
    gid_color,
    prepare_overlay,
    probe,
    visible_segments,
)
from mctrack.render.overlay import dashed_segments
from mctrack.tables import ASSOCIATION, TRACKLET2D, read_table


def opencv_count(path: Path) -> tuple[int, int]:
    """(header frame count, frames actually decoded) by OpenCV."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return header, n


def assert_browser_video(path: Path, n_frames: int) -> None:
    """H.264, yuv420p, ``n_frames`` frames decoded by PyAV and by OpenCV (header and decode)."""
    facts = probe(path)
    assert (facts.codec, facts.pix_fmt) == ("h264", "yuv420p"), facts
    assert facts.n_frames == n_frames, (path, facts)
    assert opencv_count(path) == (n_frames, n_frames), path
    assert facts.width % 2 == 0 and facts.height % 2 == 0


# ----------------------------------------------------------------------------------------------- unit


def test_gid_colors_stable_distinct_and_never_the_marker():
    cols = np.array([gid_color(g) for g in range(60)], np.uint8)
    assert (cols == np.array([gid_color(g) for g in range(60)])).all()  # a pure function of the id
    d = np.abs(np.diff(cols.astype(int), axis=0)).sum(1)
    assert d.min() > 60  # consecutive ids clearly different
    img = np.repeat(cols[None], 5, axis=0)  # a 5x60 image of every colour
    assert len(find_marker(np.repeat(img, 5, axis=1))) == 0  # no id colour passes as the marker
    marker = np.zeros((20, 20, 3), np.uint8)
    cv2.circle(marker, (10, 10), 5, MARKER_BGR, -1)
    np.testing.assert_allclose(find_marker(marker), [[10, 10]], atol=0.5)


def test_choose_grid_by_count_and_aspect():
    assert choose_grid(1, 4 / 3) == (1, 1)
    assert choose_grid(2, 4 / 3) == (1, 2)  # side by side fills 16:9 better than stacked
    assert choose_grid(4, 4 / 3) == (2, 2)
    assert choose_grid(5, 4 / 3) == (2, 3)  # 4 cameras + top view
    assert choose_grid(4, 1088 / 1920) == (1, 4)  # portrait phones: one row
    assert choose_grid(3, 16 / 9) == (2, 2)
    with pytest.raises(ValueError):
        choose_grid(0, 1.0)


def test_preset_frames_chunks_add_up_and_config_errors():
    cfg = RenderConfig.from_dict({"preset": "preview"})
    p = cfg.preset
    whole = p.frames(0, 301)
    chunked = np.concatenate([p.frames(a, min(a + 77, 301)) for a in range(0, 301, 77)])
    assert (whole == chunked).all() and len(whole) == p.n_output_frames(301) == 151
    assert p.output_size(1088, 1920) == (362, 640) and p.output_size(320, 240) == (320, 240)
    final = RenderConfig.from_dict({"preset": "final"}).preset
    assert final.output_size(1088, 1920) == (1088, 1920) and final.n_output_frames(301) == 301
    assert RenderConfig.from_dict({"presets": {"preview": {"frame_step": 3}}}).preset.frame_step == 3
    for bad, field in [({"preset": "fast"}, "render.preset"),
                       ({"presets": {"preview": {"size": 3}}}, "render.presets.preview.size"),
                       ({"presets": {"final": {"x264_preset": "quick"}}}, "render.presets.final.x264_preset")]:
        with pytest.raises(InputError) as e:
            RenderConfig.from_dict(bad)
        assert e.value.field == field


def test_dashed_outline_covers_half_the_perimeter():
    segs = dashed_segments(np.array([10, 20, 110, 70], np.float32), dash=5.0)
    lengths = np.hypot(*(segs[:, 1] - segs[:, 0]).T)
    assert abs(lengths.sum() - 150) <= 10  # half of the 300 px perimeter
    assert segs[..., 0].min() == 10 and segs[..., 0].max() == 110 and segs[..., 1].min() == 20


def test_visible_segments_merge_and_clip():
    assert visible_segments(np.array([5, 6, 7, 30, 31]), 3, 33) == [(2, 11), (27, 33)]
    assert visible_segments(np.array([5, 12]), 3, 100) == [(2, 16)]  # 9 and 9 touch
    assert visible_segments(np.array([], np.int64), 3, 100) == []


def _grey_clip(path: Path, levels: list[int], size=(64, 48), fps=10.0) -> None:
    with H264Writer(path, fps, *size, crf=10, x264_preset="medium") as wr:  # medium: B-frames, negative dts
        for v in levels:
            wr.write(np.full((size[1], size[0], 3), v, np.uint8))


def test_concat_remuxes_same_settings_and_reencodes_otherwise(tmp_path):
    want = 30 + 8 * np.arange(21)  # one grey level per frame, 8 apart
    clips = []
    for i, part in enumerate(np.split(want, [7, 17])):
        clips.append(tmp_path / f"c{i}.mp4")
        _grey_clip(clips[-1], list(part))
    with H264Writer(tmp_path / "empty.mp4", 10.0, 64, 48):  # a chunk without kept frames
        pass
    clips.insert(1, tmp_path / "empty.mp4")
    out = tmp_path / "all.mp4"
    assert concat_videos(clips, out) == "remux"
    assert_browser_video(out, 21)
    got = np.array([f.mean() for f in decode_bgr(out)])
    assert np.abs(got - want).max() < 4  # same frames, same order (x264 + limited-range YUV shift levels ~3)
    _grey_clip(tmp_path / "odd.mp4", [100] * 3, size=(32, 24))
    assert concat_videos([clips[0], tmp_path / "odd.mp4"], tmp_path / "mixed.mp4") == "reencode"
    assert_browser_video(tmp_path / "mixed.mp4", 10)
    with pytest.raises(InputError):
        concat_videos([tmp_path / "missing.mp4"], tmp_path / "x.mp4")


def test_overlay_draws_ids_styles_and_highlight_dims_others():
    t = TRACKLET2D.coerce(pd.DataFrame({
        "camera_id": "c", "track_id": [1, 2], "frame": [0, 0], "x1": [10, 100], "y1": [10, 10], "x2": [50, 140],
        "y2": [50, 50], "cx": [30, 120], "cy": [30, 30], "frame_status": ["detected", "coasted"],
        "det_index": [0, -1], "confidence": [0.9, np.nan]}))
    a = ASSOCIATION.coerce(pd.DataFrame({"camera_id": "c", "track_id": [1, 2], "global_id": [4, 7],
                                         "n_frames": 1, "n_linked_cameras": 1}))
    ov = prepare_overlay("c", t, a)
    plain = draw_overlay(np.full((120, 160, 3), 200, np.uint8), 0, ov, trail_length=1)

    def near(px, color):  # anti-aliased 1 px lines blend with the background a little
        return np.abs(px.astype(int) - color).max(-1) < 40

    assert near(plain[15:46, 10], gid_color(4)).all()  # solid left edge of the detected box
    assert 0.3 < near(plain[50, 100:141], gid_color(7)).mean() < 0.7  # dashed bottom edge of the coasted box
    assert not near(plain[50, 100:141], gid_color(4)).any()  # colours differ by global id
    hl = draw_overlay(np.full((120, 160, 3), 200, np.uint8), 0, ov, trail_length=1, highlight={4})
    assert hl[100, 150].max() <= 82  # background dimmed to 40 %
    assert (hl[45, 20] == 200).all()  # inside the highlighted box: untouched
    np.testing.assert_allclose(find_marker(hl), [[30, 30]], atol=1)


# ----------------------------------------------------------------------------------------------- workflow


def snakemake(workdir: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--cores", "2", "--quiet", "rules"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({' '.join(args)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


SYN_FRAMES, SYN_CHUNK, PADDING = 40, 20, 3


def tracked_with_gid(wd: Path) -> pd.DataFrame:
    tr = read_table(wd / "results/synthetic/associate/tracklets.parquet", TRACKLET2D)  # the keys association uses
    assoc = read_table(wd / "results/synthetic/associate/association.parquet", ASSOCIATION)
    return tr.merge(assoc[["camera_id", "track_id", "global_id"]], on=["camera_id", "track_id"])


@pytest.fixture(scope="module")
def synthetic_render(tmp_path_factory):
    """Synthetic default shortened to 40 frames (2 chunks of 20, 320x240 px), rendered with the
    preview preset and one highlighted global id, plus the report. The id is picked after
    association: among ids with a box in >= 20 (camera, preview frame) cells, the one seen over the
    shortest frame span, so the test also covers frames and cameras where it is absent."""
    wd = tmp_path_factory.mktemp("render_synthetic")
    rows = ["session\tcamera\tvideo\tcalibration"] + [
        f"synthetic\t{c}\tresults/synthetic/simulate/{c}.mp4\tresults/synthetic/simulate/calibration.toml"
        for c in ("cam1", "cam2", "cam3", "cam4")]
    (wd / "cameras.tsv").write_text("\n".join(rows) + "\n")
    cfg = {"cameras": str(wd / "cameras.tsv"), "chunk_frames": SYN_CHUNK,
           "simulate": {"session": "synthetic", "n_frames": SYN_FRAMES, "width": 320, "height": 240}}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(wd, "results/synthetic/associate/association.parquet", "--configfile", str(wd / "config.yaml"))
    t = tracked_with_gid(wd)
    t = t[t["frame"] % 2 == 0]
    stats = t.groupby("global_id").agg(cells=("frame", "size"), span=("frame", lambda f: f.max() - f.min()))
    gid = int(stats[stats["cells"] >= 20].sort_values(["span", "cells"], ascending=[True, False]).index[0])
    cfg["render"] = {"highlight": [gid], "clip_padding": PADDING}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(wd, "render", "--configfile", str(wd / "config.yaml"))
    snakemake(wd, "render", "--configfile", str(wd / "config.yaml"), "--report", "report.html")
    return wd, gid


@pytest.mark.slow
def test_synthetic_overlays_and_mosaic_are_browser_h264(synthetic_render):
    wd, _ = synthetic_render
    out = wd / "results/synthetic/render"
    n = RenderConfig.from_dict({}).preset.n_output_frames(SYN_FRAMES)  # preview: every 2nd frame
    assert n == 20
    for cam in ("cam1", "cam2", "cam3", "cam4"):
        assert_browser_video(out / f"{cam}.mp4", n)
        assert (probe(out / f"{cam}.mp4").width, probe(out / f"{cam}.mp4").height) == (320, 240)
        assert "(remux)" in (wd / f"logs/synthetic/render/{cam}.join.log").read_text()
    assert_browser_video(out / "mosaic.mp4", n)
    m = probe(out / "mosaic.mp4")
    assert m.width > 2 * 200 and abs(m.fps - 15.0) < 1e-6  # 2x3 tiles of 4 cameras and the top view; 30 fps / 2


@pytest.mark.slow
def test_highlight_marker_stays_on_target(synthetic_render):
    """Read the magenta marker back from the camera videos: it must lie on the highlighted id's box
    in >= 95 % of the frames where that id has a box, and be absent where it has none."""
    wd, gid = synthetic_render
    t = tracked_with_gid(wd)
    step = RenderConfig.from_dict({}).preset.frame_step
    hits = visible = false_marks = 0
    for cam in ("cam1", "cam2", "cam3", "cam4"):
        mine = t[(t["camera_id"] == cam) & (t["global_id"] == gid)]
        for k, img in enumerate(decode_bgr(wd / f"results/synthetic/render/{cam}.mp4")):
            f = k * step
            marks = find_marker(img)
            boxes = mine[mine["frame"] == f][["x1", "y1", "x2", "y2"]].to_numpy()  # preview keeps 320x240
            if len(boxes) == 0:
                false_marks += len(marks) > 0
                continue
            visible += 1
            b = boxes[:, None, :]
            inside = ((marks[None, :, 0] >= b[..., 0] - 1) & (marks[None, :, 0] <= b[..., 2] + 1)
                      & (marks[None, :, 1] >= b[..., 1] - 1) & (marks[None, :, 1] <= b[..., 3] + 1))
            hits += bool(inside.any())
    print(f"highlight G{gid}: marker on box in {hits}/{visible} visible frames; marks in {false_marks} of "
          f"{4 * 20 - visible} frames without its box")
    assert visible >= 20  # the id is seen in enough frames for the ratio to mean something
    assert hits >= 0.95 * visible and false_marks == 0
    clip = wd / f"results/synthetic/render/highlight/{gid}.mp4"
    vis = np.unique(t.loc[t["global_id"] == gid, "frame"])
    segs = visible_segments(vis, PADDING, SYN_FRAMES)
    want = sum(len(RenderConfig.from_dict({}).preset.frames(a, b)) for a, b in segs)
    assert_browser_video(clip, want)


@pytest.mark.slow
def test_report_embeds_playable_mosaic(synthetic_render, tmp_path):
    """The report's Render entry is an HTML page whose <video> carries the preview mosaic itself."""
    import base64
    import re

    wd, _ = synthetic_render
    html = (wd / "report.html").read_text(errors="ignore")
    pages = re.findall(r'"data_uri": "data:text/html;charset=utf8;filename=mosaic.html;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pages) == 1
    page = base64.b64decode(pages[0]).decode()
    video = re.search(r'<video controls[^>]* src="data:video/mp4;base64,([A-Za-z0-9+/=]+)"', page)
    assert video, page[:300]
    (tmp_path / "embedded.mp4").write_bytes(base64.b64decode(video.group(1)))
    assert (tmp_path / "embedded.mp4").read_bytes() == (wd / "results/synthetic/render/mosaic.mp4").read_bytes()
    assert_browser_video(tmp_path / "embedded.mp4", RenderConfig.from_dict({}).preset.n_output_frames(SYN_FRAMES))


@pytest.mark.slow
def test_pose2sim_overlays_and_mosaic_are_browser_h264(tmp_path):
    """Real footage: 4 portrait 1088x1920 cameras at 60 fps, first 20 frames, YOLO detections."""
    model = shared_path("models", "yolov8n_int8_openvino_model")
    sheet = pd.read_csv(REPO / "config/pose2sim_cameras.tsv", sep="\t", dtype=str, keep_default_na=False)
    for col in ("video", "calibration"):
        sheet[col] = [str(shared_path(*Path(v).parts[2:])) for v in sheet[col]]
    sheet.to_csv(tmp_path / "cameras.tsv", sep="\t", index=False)
    cfg = yaml.safe_load((REPO / "config/pose2sim.yaml").read_text())
    cfg.update(cameras=str(tmp_path / "cameras.tsv"), max_frames=20, chunk_frames=20)  # one YOLO job per camera
    cfg["detect"]["ultralytics"]["model"] = str(model)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "render", "--configfile", str(tmp_path / "config.yaml"))
    out = tmp_path / "results/pose2sim/render"
    for cam in ("cam01", "cam02", "cam03", "cam04"):
        assert_browser_video(out / f"{cam}.mp4", 10)  # preview: ceil(20 / 2)
        assert (probe(out / f"{cam}.mp4").width, probe(out / f"{cam}.mp4").height) == (362, 640)
    assert_browser_video(out / "mosaic.mp4", 10)
