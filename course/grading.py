"""Grading with nbgrader in a course folder of its own.

A ``GradingCourse`` is an nbgrader course directory (submitted/, autograded/,
feedback/, gradebook.db) that uses the repository's nbgrader_config.py and takes
its assignments from solutions/. Each student is autograded by a separate nbgrader
run, so a notebook that kills its kernel or hangs cannot stop the others.
"""

from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from course.lessons import nbgrader
from course.paths import ROOT, SOLUTIONS

COURSE_ID = "pytorch-basics"


@dataclass
class Result:
    """One student's autograded submission of one lesson."""

    student: str
    score: float
    max_score: float
    cell_scores: dict  # grade_id -> score
    error: str = ""  # why grading failed, when it did


class GradingCourse:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "nbgrader_config.py").write_text(
            "# Written by course.grading: the course's settings, with this folder as the course root.\n"
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(ROOT / 'nbgrader_config.py')!r})  # noqa: F821\n"
            f"c.CourseDirectory.root = {str(self.root)!r}\n"
            f"c.CourseDirectory.source_directory = {str(SOLUTIONS)!r}\n"
            "c.CourseDirectory.release_directory = 'release'\n"
        )

    def nbgrader(self, *args: str, check: bool = True):
        return nbgrader(*args, cwd=self.root, check=check)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def release(self, lesson: str) -> Path:
        """Generate the lesson's student version and record its grade cells in the gradebook."""
        self.nbgrader("generate_assignment", lesson, "--force")
        return self.root / "release" / lesson / f"{lesson}.ipynb"

    def submit(self, student: str, lesson: str, nb) -> Path:
        """Place a notebook (a NotebookNode) where nbgrader expects the student's submission."""
        path = self.root / "submitted" / student / lesson / f"{lesson}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def autograde(self, lesson: str, student: str) -> Result:
        run = self.nbgrader("autograde", lesson, "--student", student, "--force", check=False)
        result = self.result(lesson, student)
        if run.returncode != 0 and not result.error:
            result.error = f"nbgrader autograde exited with {run.returncode}: {run.stderr[-2000:]}"
        return result

    def result(self, lesson: str, student: str) -> Result:
        with Gradebook(self.db_url, course_id=COURSE_ID) as gb:
            try:
                notebook = gb.find_submission_notebook(lesson, lesson, student)
            except MissingEntry:
                return Result(student, 0.0, 0.0, {}, error="no graded notebook in the gradebook")
            cells = {grade.name: grade.score for grade in notebook.grades}
            return Result(student, notebook.score, notebook.max_score, cells)

    def feedback(self, lesson: str, student: str) -> Path:
        self.nbgrader("generate_feedback", lesson, "--student", student, "--force")
        return self.root / "feedback" / student / lesson / f"{lesson}.html"
