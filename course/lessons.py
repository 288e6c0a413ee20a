"""Instructor tooling for the lessons: store outputs, generate student versions.

    python -m course execute [LESSON ...]   # run solutions in a fresh kernel, store outputs
    python -m course release [LESSON ...]   # regenerate notebooks/ from solutions/

Without lesson ids, every lesson under solutions/ is processed.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course.cells import clean_metadata, is_exercise_cell, is_graded, is_solution
from course.paths import NOTEBOOKS, ROOT, solution_notebook


def tool_env() -> dict:
    """Environment for nbgrader and jupyter subprocesses.

    The environment's bin/ goes first on PATH (nbgrader runs `alembic` by name), and
    Jupyter reads its user config from the project's .jupyter/, not from ~/.jupyter.
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_CONFIG_DIR"] = str(ROOT / ".jupyter")
    return env


# The `nbgrader` command, as its own script runs it, but after `import course` (course/__init__.py: a slow
# import it spares, 1.2 s of CPU per command); -P: a `course` folder where it runs cannot stand in for the package.
NBGRADER = [sys.executable, "-P", "-c",
            "import sys, course; from nbgrader.apps.nbgraderapp import main; sys.exit(main())"]


def nbgrader(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run an nbgrader command with the course's configuration (nbgrader_config.py in ``cwd``)."""
    result = subprocess.run([*NBGRADER, *args], cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (in {cwd}):\n{result.stdout}\n{result.stderr}")
    return result


def execute(lesson: str, timeout: int = 600) -> float:
    """Run one solution notebook top to bottom in a fresh kernel and store its outputs."""
    path = solution_notebook(lesson)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    seconds = sum(
        _parse(c.metadata["execution"]["shell.execute_reply"])
        - _parse(c.metadata["execution"]["iopub.execute_input"])
        for c in nb.cells if c.cell_type == "code" and "execution" in c.metadata
    )
    clean_metadata(nb)
    nbformat.write(nb, path)
    return seconds


def _parse(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def release(lesson: str, release_dir: Path = NOTEBOOKS) -> Path:
    """Generate the student version of one lesson into ``release_dir/<lesson>/``."""
    nbgrader("generate_assignment", lesson, "--force", "--no-db",
             f"--CourseDirectory.release_directory={release_dir}")
    out = Path(release_dir) / lesson / f"{lesson}.ipynb"
    nb = nbformat.read(out, as_version=4)
    clean_metadata(nb)
    nbformat.write(nb, out)
    return out


# How long a lesson takes, the rule every lesson header follows (tests/test_release.py checks it):
# reading runs at 120 words a minute, each ungraded code cell takes half a minute to read, run
# and look at, and a graded exercise takes two minutes per point. Headers round to 5 minutes.
WORDS_PER_MINUTE = 120
MINUTES_PER_CODE_CELL = 0.5
MINUTES_PER_POINT = 2
# Practice beside teaching: at most this much reading before the first exercise and between two.
MAX_MINUTES_BEFORE_PRACTICE = 12
HEADER_TIMES = re.compile(r"\*\*Teaching:\*\* (\d+) min · \*\*Exercises:\*\* (\d+) min")


def reading_minutes(cell) -> float:
    """Minutes a learner spends on a cell that is not part of a graded exercise."""
    if is_exercise_cell(cell):
        return 0.0
    if cell.cell_type == "markdown":
        return len(cell.source.split()) / WORDS_PER_MINUTE
    return MINUTES_PER_CODE_CELL if cell.cell_type == "code" else 0.0


def _round5(minutes: float) -> int:
    return max(5, 5 * round(minutes / 5))


def estimated_minutes(nb) -> tuple[int, int]:
    """(teaching, exercises) minutes of a lesson by the rule above, rounded to 5."""
    teaching = sum(reading_minutes(c) for c in nb.cells)
    points = sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells if is_graded(c))
    return _round5(teaching), _round5(points * MINUTES_PER_POINT)


def stated_minutes(nb) -> tuple[int, int] | None:
    """(teaching, exercises) minutes as the lesson's header states them."""
    match = HEADER_TIMES.search(nb.cells[0].source) if nb.cells else None
    return (int(match[1]), int(match[2])) if match else None


def reading_before_each_exercise(nb) -> list[tuple[int, float]]:
    """(cell index of the exercise's first cell, minutes of reading since the previous exercise)."""
    gaps, minutes, previous = [], 0.0, None
    for index, cell in enumerate(nb.cells):
        if not is_exercise_cell(cell):
            minutes += reading_minutes(cell)
            continue
        starts_exercise = is_solution(cell) and not (previous is not None and is_solution(previous))
        if starts_exercise:
            gaps.append((index, minutes))
        minutes, previous = 0.0, cell
    return gaps
