"""Grading with nbgrader, one student at a time and several at once.

A ``GradingCourse`` is an nbgrader course directory (submitted/, autograded/,
feedback/, gradebook.db) that uses the repository's nbgrader_config.py and takes its
assignments from solutions/.

Each student is autograded by a separate nbgrader run in a scratch course of its own
(a copy of the gradebook, the student's files, nothing else), outside the course
folder. A notebook that kills its kernel, hangs or scribbles on files near it
cannot stop or corrupt the other students, and scratch courses never write to the
same database, so students can be graded in parallel. The scores and the autograded
notebook are then merged into the course's gradebook, one student at a time.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from course.lessons import nbgrader
from course.paths import ROOT, SOLUTIONS

COURSE_ID = "pytorch-basics"
# A whole notebook gets this long; cells are limited separately (nbgrader_config.py).
STUDENT_TIMEOUT = 15 * 60


@dataclass
class Result:
    """One student's autograded submission of one lesson."""

    student: str
    score: float = 0.0
    max_score: float = 0.0
    cell_scores: dict = field(default_factory=dict)  # grade id -> score
    error: str = ""  # why grading failed, when it did


def write_config(root: Path) -> None:
    """An nbgrader_config.py for a course folder: the course's settings, this folder as root."""
    (root / "nbgrader_config.py").write_text(
        "# Written by course.grading: the course's settings, with this folder as the course root.\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(ROOT / 'nbgrader_config.py')!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.CourseDirectory.source_directory = {str(SOLUTIONS)!r}\n"
        "c.CourseDirectory.release_directory = 'release'\n"
    )


def db_url(root: Path) -> str:
    return f"sqlite:///{root / 'gradebook.db'}"


class GradingCourse:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        write_config(self.root)
        self._merge_lock = threading.Lock()

    def release(self, lesson: str) -> Path:
        """Generate the lesson's student version and record its grade cells in the gradebook."""
        nbgrader("generate_assignment", lesson, "--force", cwd=self.root)
        return self.root / "release" / lesson / f"{lesson}.ipynb"

    def submit(self, student: str, lesson: str, nb) -> Path:
        """Place a notebook (a NotebookNode) where nbgrader expects the student's submission."""
        path = self.root / "submitted" / student / lesson / f"{lesson}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def autograde(self, lesson: str, student: str, threads: int | None = None) -> Result:
        """Autograde one student in a scratch course, then merge the result into this one."""
        with tempfile.TemporaryDirectory(prefix=f"grading-{student}-") as scratch:
            scratch = Path(scratch)
            write_config(scratch)
            shutil.copy(self.root / "gradebook.db", scratch / "gradebook.db")
            shutil.copytree(self.root / "submitted" / student / lesson, scratch / "submitted" / student / lesson)
            try:
                run = nbgrader("autograde", lesson, "--student", student, "--force",
                               cwd=scratch, check=False, timeout=STUDENT_TIMEOUT, threads=threads)
            except subprocess.TimeoutExpired:
                return Result(student, error=f"grading took longer than {STUDENT_TIMEOUT} s")
            result = read_result(scratch, lesson, student)
            if run.returncode != 0 or result.error:
                result.error = result.error or f"nbgrader autograde exited with {run.returncode}"
                result.error += ": " + _last_lines(run.stdout + run.stderr)
                return result
            with self._merge_lock:
                self._merge(scratch, lesson, student)
        return result

    def grade_all(self, lesson: str, students: list[str], workers: int | None = None) -> dict[str, Result]:
        """Autograde many students, ``workers`` at a time (default: one per CPU core)."""
        workers = workers or os.cpu_count() or 1
        threads = max(1, (os.cpu_count() or 1) // workers)  # no more threads than cores in all
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda student: self.autograde(lesson, student, threads), students)
            return {result.student: result for result in results}

    def _merge(self, scratch: Path, lesson: str, student: str) -> None:
        graded = self.root / "autograded" / student / lesson
        if graded.exists():
            shutil.rmtree(graded)
        shutil.copytree(scratch / "autograded" / student / lesson, graded)
        with Gradebook(db_url(scratch), course_id=COURSE_ID) as src, \
                Gradebook(db_url(self.root), course_id=COURSE_ID) as dst:
            submission = src.find_submission(lesson, student)
            dst.update_or_create_student(student)
            try:
                dst.remove_submission(lesson, student)
            except MissingEntry:
                pass
            with warnings.catch_warnings():  # nbgrader's own add_submission trips SQLAlchemy warnings
                warnings.simplefilter("ignore", SAWarning)
                dst.add_submission(lesson, student, timestamp=submission.timestamp)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    target = dst.find_grade(grade.name, notebook.name, lesson, student)
                    target.auto_score, target.manual_score = grade.auto_score, grade.manual_score
                    target.extra_credit, target.needs_manual_grade = grade.extra_credit, grade.needs_manual_grade
                for comment in notebook.comments:
                    target = dst.find_comment(comment.name, notebook.name, lesson, student)
                    target.auto_comment, target.manual_comment = comment.auto_comment, comment.manual_comment
            dst.db.commit()

    def result(self, lesson: str, student: str) -> Result:
        return read_result(self.root, lesson, student)

    def feedback(self, lesson: str, student: str) -> Path:
        nbgrader("generate_feedback", lesson, "--student", student, "--force", cwd=self.root)
        return self.root / "feedback" / student / lesson / f"{lesson}.html"


def read_result(root: Path, lesson: str, student: str) -> Result:
    with Gradebook(db_url(root), course_id=COURSE_ID) as gb:
        try:
            notebook = gb.find_submission_notebook(lesson, lesson, student)
        except MissingEntry:
            return Result(student, error="no graded notebook in the gradebook")
        cells = {grade.name: grade.score for grade in notebook.grades}
        return Result(student, notebook.score, notebook.max_score, cells)


def _last_lines(text: str, count: int = 5) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-count:])
