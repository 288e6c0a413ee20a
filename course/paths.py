"""Where the course's folders are.

The package is installed in editable mode from the course repository, so the
repository root is the folder above this file. ``$COURSE_DATA`` moves the data
folder elsewhere (a shared read-only copy on a teaching server, say).
"""

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"
BENCHMARKS = ROOT / "benchmarks"  # what `make bench` and `make bench-grading` write


def data_dir() -> Path:
    """The folder that holds the course data (``$COURSE_DATA`` or ``<repo>/data``)."""
    return Path(os.environ.get("COURSE_DATA") or ROOT / "data")


def lesson_ids() -> list[str]:
    """The lessons, in order: one folder per nbgrader assignment under solutions/."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())


def solution_notebook(lesson: str) -> Path:
    return SOLUTIONS / lesson / f"{lesson}.ipynb"


def student_notebook(lesson: str) -> Path:
    return NOTEBOOKS / lesson / f"{lesson}.ipynb"


def write_benchmark(name: str, result: dict, markdown: str) -> None:
    """benchmarks/<name>.json (the figures) and benchmarks/<name>.md (their report); print the report."""
    BENCHMARKS.mkdir(exist_ok=True)
    (BENCHMARKS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (BENCHMARKS / f"{name}.md").write_text(markdown)
    print("\n" + markdown)
    print(f"wrote benchmarks/{name}.json and benchmarks/{name}.md")


def load_average() -> float | None:
    """The machine's load average over the last minute (what else it was doing), where the system tells it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
