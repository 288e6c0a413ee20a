"""The course folder, and results merged into it: gradebook.db, autograded/, feedback/.

A ``CourseFolder`` is an nbgrader course (submitted/, autograded/, feedback/, gradebook.db, and
grades/<lesson>/ for the grades CSV, the class report and the record of what was graded). The
default is the repository root, with the course's nbgrader_config.py; any other folder gets an
nbgrader_config.py that loads the course's settings. Only this process writes its gradebook.
"""

import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from course.cells import grade_id, instructor, is_graded
from course.grading.worker import Outcome
from course.lessons import nbgrader
from course.paths import ROOT, SOLUTIONS
from course.settings import COURSE_ID

# Files that nbgrader's exchange adds to a submission: when it was made, and the secret that names its feedback.
SUBMISSION_RECORDS = ("timestamp.txt", "submission_secret.txt")


@dataclass
class Result:
    """A student's standing in one lesson, as the grades CSV shows it."""

    student: str
    status: str = "graded"  # graded, failed (the submission's fault) or not graded (the grader's)
    reason: str = ""  # why it failed, or what stopped early in a graded notebook
    score: float = 0.0
    max_score: float = 0.0
    cell_scores: dict = field(default_factory=dict)


def write_config(root: Path) -> None:
    """An nbgrader_config.py for a course folder: the course's settings, this folder as root."""
    (root / "nbgrader_config.py").write_text(
        "# Written by course.grading: the course's settings, with this folder as the course root.\n"
        "c = get_config()  # noqa: F821 (traitlets provides it)\n"
        f"load_subconfig({str(ROOT / 'nbgrader_config.py')!r})  # noqa: F821 (traitlets provides it)\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.CourseDirectory.source_directory = {str(SOLUTIONS)!r}\n"
        "c.CourseDirectory.release_directory = 'release'\n")


class CourseFolder:
    def __init__(self, root: Path = ROOT):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        if self.root != ROOT:  # the repository's own nbgrader_config.py serves the repository root
            write_config(self.root)

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    def submitted(self, student: str, lesson: str) -> Path:
        return self.root / "submitted" / student / lesson

    def feedback(self, lesson: str, student: str) -> Path:
        return self.root / "feedback" / student / lesson / f"{lesson}.html"

    def release(self, lesson: str) -> Path:
        """Record the lesson's grade cells in the gradebook; its student version goes to release/."""
        nbgrader("generate_assignment", lesson, "--force", "--CourseDirectory.release_directory=release", cwd=self.root)
        return self.root / "release" / lesson / f"{lesson}.ipynb"

    def has(self, lesson: str) -> bool:
        if not self.gradebook.is_file():
            return False
        with Gradebook(self.db_url, course_id=COURSE_ID) as gb:
            try:
                gb.find_assignment(lesson)
            except MissingEntry:
                return False
        return True

    def submit(self, student: str, lesson: str, nb) -> Path:
        """Place a notebook (a NotebookNode) where nbgrader expects the student's submission."""
        path = self.submitted(student, lesson) / f"{lesson}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def add_students(self, students: list[dict]) -> None:
        """Record students (id, and first_name, last_name, email where known) in the gradebook."""
        with Gradebook(self.db_url, course_id=COURSE_ID) as gb:
            for student in students:
                gb.update_or_create_student(student["id"], **{k: v or None for k, v in student.items() if k != "id"})

    def template(self) -> bytes:
        """The gradebook with every lesson's cells and no student: what a grading job starts from."""
        with tempfile.TemporaryDirectory(prefix="template-") as tmp:
            path = Path(tmp) / "gradebook.db"
            shutil.copy(self.gradebook, path)
            with Gradebook(f"sqlite:///{path}", course_id=COURSE_ID) as gb:
                for student in gb.students:
                    gb.remove_student(student.id)
            return path.read_bytes()

    def points(self, lesson: str) -> dict[str, float]:
        """The lesson's graded cells and their points, in notebook order."""
        with Gradebook(self.db_url, course_id=COURSE_ID) as gb:
            cells = gb.find_notebook(lesson, lesson).grade_cells
            order = [grade_id(c) for c in instructor(lesson).cells if is_graded(c)]
            return {c.name: c.max_score for c in sorted(cells, key=lambda c: order.index(c.name))}

    def merge(self, lesson: str, outcome: Outcome) -> str:
        """Write a graded student's scores, graded notebook and feedback; an error message, or ''."""
        student = outcome.student
        with Gradebook(self.db_url, course_id=COURSE_ID) as gb:
            cells = {(g["notebook"], g["name"]): gb.find_graded_cell(g["name"], g["notebook"], lesson)
                     for g in outcome.grades}
            if any((g["auto_score"] or 0) > cells[g["notebook"], g["name"]].max_score for g in outcome.grades):
                return "scores above the cells' points: the grading job's gradebook was tampered with"
            gb.update_or_create_student(student)
            try:
                gb.remove_submission(lesson, student)
            except MissingEntry:
                pass
            with warnings.catch_warnings():  # nbgrader's own add_submission trips SQLAlchemy warnings
                warnings.simplefilter("ignore", SAWarning)
                gb.add_submission(lesson, student, timestamp=outcome.timestamp)
            for g in outcome.grades:
                target = gb.find_grade(g["name"], g["notebook"], lesson, student)
                for key in ("auto_score", "manual_score", "extra_credit", "needs_manual_grade"):
                    setattr(target, key, g[key])
            for c in outcome.comments:
                target = gb.find_comment(c["name"], c["notebook"], lesson, student)
                target.auto_comment, target.manual_comment = c["auto_comment"], c["manual_comment"]
            gb.db.commit()
        for folder, data, suffix in (("autograded", outcome.notebook, "ipynb"), ("feedback", outcome.feedback, "html")):
            dest = self.root / folder / student / lesson
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            (dest / f"{lesson}.{suffix}").write_bytes(data)
            for name in SUBMISSION_RECORDS:  # what nbgrader's release_feedback needs beside the feedback
                if (self.submitted(student, lesson) / name).is_file():
                    shutil.copyfile(self.submitted(student, lesson) / name, dest / name)
        return ""

    def result(self, lesson: str, student: str, reason: str = "") -> Result:
        """A graded student's scores, from the gradebook."""
        with Gradebook(self.db_url, course_id=COURSE_ID) as gb:
            try:
                notebook = gb.find_submission_notebook(lesson, lesson, student)
            except MissingEntry:
                return Result(student, "not graded", "no graded notebook in the gradebook")
            cells = {grade.name: grade.score for grade in notebook.grades}
            return Result(student, "graded", reason, notebook.score, notebook.max_score, cells)
