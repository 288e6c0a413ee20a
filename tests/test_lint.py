"""The Python files pass ruff with the settings in pyproject.toml (the lessons are checked by running them)."""

import subprocess
import sys
from pathlib import Path

from course.paths import ROOT


def test_the_python_files_pass_ruff():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--no-cache", ".", ".jupyter"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, \
        f"ruff found problems (fix them, or `ruff check --fix`):\n{result.stdout}{result.stderr}"
