"""The SLURM profile submits what it promises: fake sbatch/squeue/sacct/scancel/... on PATH record the calls.

No job runs: the fake ``sacct`` reports every submitted job as FAILED, so Snakemake retries once
(``retries`` in the profile; attempt 2 must ask for more memory and time) and then stops. The test reads
the recorded ``sbatch`` command lines: GPU only for GPU detection, ``--cpus-per-*`` from the rule's
threads, memory/runtime per rule and attempt, the track_2d chunks of one camera as one grouped job.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_inputs import h264, sheet

pytestmark = pytest.mark.skipif(shutil.which("sbatch") is not None, reason="a real SLURM is on PATH")

FAKE = textwrap.dedent('''\
    #!{python}
    """Fake SLURM command: logs argv + stdin to $FAKE_SLURM_LOG and answers like SLURM would."""
    import json, os, sys
    name = os.path.basename(sys.argv[0])
    log = os.environ["FAKE_SLURM_LOG"]
    stdin = sys.stdin.read() if name == "sbatch" and not sys.stdin.isatty() else ""
    calls = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    with open(log, "a") as fh:
        fh.write(json.dumps({{"cmd": name, "argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
    ids = [1000 + k for k in range(sum(c["cmd"] == "sbatch" for c in calls))]
    if name == "sbatch":
        print(1000 + len(ids))
    elif name == "sacct" and any("JobIdRaw" in a for a in sys.argv):
        print("\\n".join(f"{{i}}|FAILED" for i in ids))
    elif name in ("sacctmgr", "sshare", "sacct"):
        print("CHANGE_ME_account")
    elif name == "scontrol":
        print("MinJobAge = 300 sec")
    elif name == "sinfo":
        print("CHANGE_ME_partition")
''')
COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare", "srun")


def run_profile(tmp_path: Path, detect: dict, targets: list[str], precreate: list[str]) -> list[str]:
    """Run the slurm profile on a 2-camera, 2-chunk session; return the recorded sbatch calls (argv + script)."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    wd = tmp_path / "wd"
    wd.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fake_slurm").write_text(FAKE.format(python=sys.executable))
    (bin_dir / "fake_slurm").chmod(0o755)
    for c in COMMANDS:
        (bin_dir / c).symlink_to(bin_dir / "fake_slurm")
    for cam in ("cam1", "cam2"):
        h264(wd / f"{cam}.mp4", 40)
    sheet(wd, [{"session": "s", "camera": c, "video": f"{c}.mp4"} for c in ("cam1", "cam2")])
    (wd / "config.yaml").write_text(yaml.safe_dump({"cameras": "cams.tsv", "chunk_frames": 20, "detect": detect}))
    for p in precreate:  # finished upstream outputs, so that the targets' jobs are ready to submit
        (wd / p).parent.mkdir(parents=True, exist_ok=True)
        (wd / p).write_bytes(b"")
    log = tmp_path / "slurm.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM_LOG": str(log)}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"), "--directory", str(wd),
         "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(wd / "config.yaml"),
         "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1", "--latency-wait", "1", "--retries", "1"],
        capture_output=True, text=True, env=env, timeout=300)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    sbatch = [" ".join(c["argv"]) + "\n" + c["stdin"] for c in calls if c["cmd"] == "sbatch"]
    assert sbatch, proc.stdout[-3000:] + proc.stderr[-3000:]
    return sbatch


def _one(calls: list[str], pattern: str) -> list[str]:
    found = [c for c in calls if re.search(pattern, c)]
    assert found, f"no sbatch call matches {pattern!r}:\n" + "\n---\n".join(calls)
    return found


def _opt(call: str, flag: str) -> str | None:
    m = re.search(rf"(?:^|\s){re.escape(flag)}[= ](\S+)", call)
    return m.group(1) if m else None


@pytest.mark.slow
def test_gpu_detection_job_and_grouped_tracking_job(tmp_path):
    model = tmp_path / "wd_model_openvino_model"
    model.mkdir()
    (model / "m.xml").write_text("<net/>")
    (model / "m.bin").write_bytes(b"0")
    detect = {"backend": "ultralytics", "threads": 3, "ultralytics": {"model": str(model), "device": "cuda:0"}}
    calls = run_profile(tmp_path, detect,
                        ["results/s/detect/cam2/0000.parquet", "results/s/track_2d/cam1/0001.parquet"],
                        ["results/s/detect/cam1/0000.parquet", "results/s/detect/cam1/0001.parquet"])
    det = _one(calls, r"--rule-?name[ =]?['\"]?detect\b|rule detect\b|--target-jobs[^\n]*'?detect:")
    for attempt, call in enumerate(det[:2], start=1):
        assert _opt(call, "--gpus") == "1", call  # GPU requested because device is cuda
        assert _opt(call, "--cpus-per-task") == "3", call  # the rule's threads (detect.threads)
        assert _opt(call, "--mem") == str(6000 * attempt) and _opt(call, "-t") == str(120 * attempt), call
        assert _opt(call, "-A") == "CHANGE_ME_account" and _opt(call, "-p") == "CHANGE_ME_partition", call
    assert len(det) == 2, "one retry with attempt 2"
    grouped = _one(calls, r"--target-jobs[^\n]*track_2d:[^\n]*track_2d:")  # both chunks of cam1 in one job
    for call in grouped:
        assert _opt(call, "--gpus") is None and "--gres" not in call, call
        assert _opt(call, "--cpus-per-task") == "1" and _opt(call, "--mem") in ("2000", "4000"), call
        assert "chunk=0000" in call and "chunk=0001" in call, call


@pytest.mark.slow
def test_cpu_detection_never_asks_for_a_gpu(tmp_path):
    calls = run_profile(tmp_path, {"backend": "background", "threads": 2},
                        ["results/s/detect/cam1/0000.parquet", "results/s/detect/cam1/0001.parquet"], [])
    bg = _one(calls, r"background_model")
    assert _opt(bg[0], "--cpus-per-task") == "1" and _opt(bg[0], "--mem") == "4000", bg[0]
    for call in calls:
        assert _opt(call, "--gpus") is None and "gpu" not in (_opt(call, "-p") or ""), call
