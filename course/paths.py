"""Where the course's folders are.

The package is installed in editable mode from the course repository, so the
repository root is the folder above this file. ``$COURSE_DATA`` moves the data
folder elsewhere (a shared read-only copy on a teaching server, say).
"""

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


def checked_lesson(lesson: str) -> str:
    """``lesson`` if it names a lesson under solutions/; else a ValueError that lists the lessons."""
    if lesson not in lesson_ids():
        raise ValueError(f"no lesson {lesson!r} in solutions/ (the lessons: {', '.join(lesson_ids())})")
    return lesson


def solution_notebook(lesson: str) -> Path:
    return SOLUTIONS / lesson / f"{lesson}.ipynb"


def student_notebook(lesson: str) -> Path:
    return NOTEBOOKS / lesson / f"{lesson}.ipynb"
