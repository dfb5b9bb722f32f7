"""Planning is memoised between snakemake calls (issue 11: `snakemake -n` fast) and never goes stale.

The Snakefile passes ``cache_dir`` to :func:`check_config`, :func:`plan_sessions` and
:func:`check_stage_configs`; a second call with the same config and unchanged inputs must not
recompute, and any change to an input file, the config or the model must be seen again.
"""
from __future__ import annotations

import os

import pytest
from conftest import REPO
from test_inputs import h264, sheet

import mctrack.config as config_mod
from mctrack.config import check_config, check_stage_configs, load_schema, plan_sessions
from mctrack.errors import InputError

SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _config(tmp_path, rows, **extra) -> dict:
    cfg = {"cameras": str(sheet(tmp_path, rows)), "chunk_frames": 20, **extra}
    return check_config(cfg, SCHEMA, cache_dir=tmp_path / "cache")


def _no_recompute(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("recomputed although nothing changed")
    monkeypatch.setattr(config_mod, "_plan_sessions", fail)
    monkeypatch.setattr(config_mod, "_validate", fail)


def test_second_plan_is_read_from_the_cache(tmp_path, monkeypatch):
    video = h264(tmp_path / "a.mp4", 40)
    cfg = _config(tmp_path, [{"session": "s", "camera": "a", "video": video}])
    first = plan_sessions(cfg, cache_dir=tmp_path / "cache")
    _no_recompute(monkeypatch)
    again = check_config({"cameras": cfg["cameras"], "chunk_frames": 20}, SCHEMA, cache_dir=tmp_path / "cache")
    assert again == cfg and again["track_2d"]["n_init"] == 3  # defaults filled on a cache hit too
    assert plan_sessions(again, cache_dir=tmp_path / "cache") == first
    assert first["s"].n_frames == 40 and first["s"].chunks == [(0, 20), (20, 40)]


def test_a_changed_video_gt_or_config_is_planned_again(tmp_path):
    video = h264(tmp_path / "a.mp4", 40)
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,10,5,5,1,1,1\n")
    rows = [{"session": "s", "camera": "a", "video": video, "gt": gt}]
    cfg = _config(tmp_path, rows)
    assert plan_sessions(cfg, cache_dir=tmp_path / "cache")["s"].n_frames == 40
    h264(tmp_path / "b.mp4", 30)
    os.replace(tmp_path / "b.mp4", video)  # same path, new content
    assert plan_sessions(cfg, cache_dir=tmp_path / "cache")["s"].n_frames == 30
    gt.write_text("1,1,10,10,5,5,1,1,1\n35,1,10,10,5,5,1,1,1\n")  # now beyond the 30-frame video
    with pytest.raises(InputError, match=r"gt.txt.*frame 35.*beyond the end"):
        plan_sessions(cfg, cache_dir=tmp_path / "cache")
    gt.write_text("1,1,10,10,5,5,1,1,1\n")
    assert plan_sessions({**cfg, "chunk_frames": 10}, cache_dir=tmp_path / "cache")["s"].chunks[-1] == (20, 30)
    video.unlink()
    with pytest.raises(InputError, match="not found"):
        plan_sessions(cfg, cache_dir=tmp_path / "cache")


def test_bad_config_is_never_cached(tmp_path):
    for _ in range(2):
        with pytest.raises(InputError, match="track_2d.n_init"):
            check_config({"cameras": "c.tsv", "track_2d": {"n_init": 0}}, SCHEMA, cache_dir=tmp_path / "cache")


def test_replaced_model_is_checked_again(tmp_path):
    model = tmp_path / "m_openvino_model"
    model.mkdir()
    (model / "m.xml").write_text("<net/>")
    (model / "m.bin").write_bytes(b"0")
    cfg = check_config({"cameras": "c.tsv", "detect": {"backend": "ultralytics", "ultralytics": {"model": str(model)}}},
                       SCHEMA)
    check_stage_configs(cfg, cache_dir=tmp_path / "cache")
    check_stage_configs(cfg, cache_dir=tmp_path / "cache")
    (model / "m.bin").unlink()
    with pytest.raises(InputError, match="no weights file m.bin"):
        check_stage_configs(cfg, cache_dir=tmp_path / "cache")


def test_unreadable_cache_is_recomputed(tmp_path):
    video = h264(tmp_path / "a.mp4", 40)
    cfg = _config(tmp_path, [{"session": "s", "camera": "a", "video": video}])
    plan_sessions(cfg, cache_dir=tmp_path / "cache")
    for f in (tmp_path / "cache").glob("plan-*.pkl"):
        f.write_bytes(b"garbage")
    assert plan_sessions(cfg, cache_dir=tmp_path / "cache")["s"].n_frames == 40


def test_schema_is_memoised_and_reread_when_edited(tmp_path):
    import time

    path = tmp_path / "schema.yaml"
    path.write_text((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    first = load_schema(path, tmp_path / "cache")
    assert first == SCHEMA and list((tmp_path / "cache").glob("schema-*.pkl"))
    assert load_schema(path, tmp_path / "cache") == SCHEMA  # from the pickle
    time.sleep(0.01)
    path.write_text(path.read_text().replace("default: 1024", "default: 2048", 1))
    assert load_schema(path, tmp_path / "cache") != SCHEMA  # the edit is seen
