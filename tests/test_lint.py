"""Pyflakes-class mistakes (undefined names, unused imports) are bugs: ruff's F rules on all code."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_undefined_names_or_unused_imports():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F", "--no-cache",
                             "crm_ingest", "bench", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
