"""Pinned versions: requirements.txt is the source, environment.yml must agree, .venv must match."""

import os
import re
import shutil
import subprocess
from importlib.metadata import version

import pytest
import yaml

from course.paths import ROOT

# pip names whose conda-forge package has another name
CONDA_NAMES = {"torch": "pytorch"}


def pip_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"requirements.txt: '{line}' must pin an exact version with =="
            pins[name.strip().lower()] = pinned.strip()
    return pins


def conda_pins() -> dict[str, str]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert spec["channels"] == ["conda-forge"]
    pins = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):  # the `pip:` list: packages conda-forge lacks, pinned pip-style
            for line in dep["pip"]:
                name, _, pinned = line.partition("==")
                pins[name.strip().lower()] = pinned.strip()
        elif dep != "pip" and not dep.startswith("python="):
            name, _, pinned = dep.partition("=")
            pins[name.strip().lower()] = pinned.strip()
    return pins


def test_environment_yml_has_the_same_pins_as_requirements_txt():
    expected = {CONDA_NAMES.get(name, name): pinned for name, pinned in pip_pins().items()}
    assert conda_pins() == expected


def test_the_installed_packages_are_the_pinned_ones():
    wrong = {name: (pinned, version(name)) for name, pinned in pip_pins().items()
             if re.sub(r"\+.*", "", version(name)) != pinned}
    assert not wrong, f"installed versions differ from requirements.txt (pinned, installed): {wrong}; run `make setup`"


def a_gpu_is_here() -> bool:
    smi = shutil.which("nvidia-smi")
    return bool(smi and subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.strip())


@pytest.mark.skipif(a_gpu_is_here(), reason="this machine has a GPU: make gpu-check would run the whole check")
def test_the_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    report = tmp_path / "report"
    result = subprocess.run([str(ROOT / "scripts" / "gpu-check")], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "GPU_CHECK_REPORT": str(report)})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "no NVIDIA GPU here" in result.stderr and "make test" in result.stderr
    assert not report.exists() and result.stdout == "", "nothing is set up or run without a GPU"
