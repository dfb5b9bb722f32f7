"""End-to-end: global ids do not change at chunk borders (slow; runs in CI)."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
from test_workflow import snakemake, synthetic_config

from mctrack.tables import ASSOCIATION, TRACKLET2D, read_table

pytestmark = pytest.mark.slow


def test_hundred_frame_chunks_give_the_same_global_ids(tmp_path):
    """200 synthetic frames in 100-frame chunks vs one chunk: identical association and refined tracklets."""
    target = ["results/synthetic/associate/association.parquet", "results/synthetic/associate/tracklets.parquet"]
    chunked, whole = tmp_path / "chunked", tmp_path / "whole"
    chunked.mkdir()
    snakemake(chunked, *target, "--configfile", str(synthetic_config(chunked, 200, 100)))
    shutil.copytree(chunked / "results/synthetic/simulate", whole / "results/synthetic/simulate")
    snakemake(whole, *target, "--configfile", str(synthetic_config(whole, 200, 200)))
    key = ["camera_id", "track_id"]
    a = read_table(chunked / target[0], ASSOCIATION).sort_values(key).reset_index(drop=True)
    b = read_table(whole / target[0], ASSOCIATION).sort_values(key).reset_index(drop=True)
    assert a["global_id"].nunique() >= 6  # the scene's 6 fish are there
    pd.testing.assert_frame_equal(a, b)
    # the refined rows are written chunk by chunk (mctrack.associate.blocks): compare them in one order
    rows = ["camera_id", "track_id", "frame"]
    ta = read_table(chunked / target[1], TRACKLET2D).sort_values(rows).reset_index(drop=True)
    tb = read_table(whole / target[1], TRACKLET2D).sort_values(rows).reset_index(drop=True)
    pd.testing.assert_frame_equal(ta, tb)
