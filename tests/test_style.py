"""The workflow's Snakemake files are snakefmt-clean (CI runs the README's test command, so the check lives here)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import REPO


def test_snakefmt_check():
    exe = shutil.which("snakefmt")
    if exe is None:
        pytest.fail("snakefmt is not installed (it is in the test extra: pip install -e '.[test]')")
    files = [str(REPO / "Snakefile"), *sorted(str(p) for p in (REPO / "workflow" / "rules").glob("*.smk"))]
    proc = subprocess.run([exe, "--check", "--config", str(REPO / "pyproject.toml"), *files],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"run `snakefmt Snakefile workflow/rules/` to fix:\n{proc.stderr[-3000:]}"


def test_lint_has_nothing_but_the_deliberate_absence_of_conda_envs():
    """Jobs run in the environment snakemake runs in (README, *Cluster*), so rules carry no `conda:`;
    every other Snakemake lint must be absent."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    found, where = [], None
    for line in out.splitlines():
        if line.startswith("Lints for "):
            where = line.removeprefix("Lints for ").rstrip(":")
        elif line.startswith("    * ") and not line.startswith("    * Specify a conda environment"):
            found.append(f"{where}: {line.strip()}")
    assert found == [], out[-3000:]
    assert "Lints for" in out or "Congratulations" in out, out[-3000:]  # the linter did run
