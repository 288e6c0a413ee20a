"""Pinned versions: requirements.txt is the source, environment.yml must agree, .venv must match."""

import re
from importlib.metadata import version

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
