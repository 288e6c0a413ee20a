"""Grading a class with nbgrader: submissions in; grades, feedback and a class report out.

    python -m course grade LESSON SUBMISSIONS [--course-dir DIR] [--force] [--jobs N] [--timeout S]
    (or: make grade ASSIGNMENT=LESSON SUBMISSIONS=PATH)

SUBMISSIONS is a folder with one folder per student (``<student>/<anything>.ipynb`` or
``<student>/<lesson>/<lesson>.ipynb``), or what an LMS exports: a zip file, or a folder of
files, named ``<student>_<anything>.ipynb`` (collected with nbgrader's zip_collect; the
student id is everything before the first underscore).

A ``GradingCourse`` is an nbgrader course folder (submitted/, autograded/, feedback/,
gradebook.db, and grades/<lesson>/ for the grades CSV, the class report and the record of
what was graded). The default is the repository root, with the course's nbgrader_config.py;
any other folder gets an nbgrader_config.py that loads the course's settings.

Each student is autograded, and their feedback generated, by a separate process in a
scratch course of its own outside the course folder: a gradebook with the lesson's cells
and no other student, the student's files, a HOME of its own. A notebook that kills its
kernel, hangs or writes to files near it or in its home cannot stop or corrupt the other
students, and scratch courses never write to the same database, so students are graded in
parallel. The scores, the autograded notebook and the feedback are then merged into the
course, one student at a time. Student code still runs with the grader's rights: files it
reaches by absolute path are only watched (see ``Guard``).
"""

import sys

if __name__ == "__main__":  # a grading worker (see _worker): nbformat's import through jsonschema
    sys.modules.setdefault("rfc3987_syntax", None)  # builds an IRI grammar that no grading step uses (2 s)

import argparse  # noqa: E402 (the lines above must come first)
import collections
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from course.data import sha256
from course.lessons import nbgrader, tool_env
from course.paths import NOTEBOOKS, ROOT, SOLUTIONS, solution_notebook

COURSE_ID = "pytorch-basics"
# A whole notebook gets this long; cells are limited separately (nbgrader_config.py, --timeout).
STUDENT_TIMEOUT = 15 * 60
# LMS exports name each file <student>_<anything>.ipynb (zip_collect matches the whole path).
LMS_NAMES = r".*/(?P<student_id>[^/_]+)_(?P<file_id>[^/]+)$"
# Files a grading run must leave as they are; student code could reach them by absolute path.
INSTRUCTOR_FILES = [SOLUTIONS, NOTEBOOKS, ROOT / "nbgrader_config.py", ROOT / "course", ROOT / "data" / "iris.csv"]
SKIP = {"__pycache__", ".ipynb_checkpoints"}
EXCEPTION = re.compile(r"^(\w+\.)*\w*(Error|Exception|Entry|Exit)\b: ")  # "nbgrader.api.MissingEntry: ..."


@dataclass
class Result:
    """One student's autograded submission of one lesson."""

    student: str
    score: float = 0.0
    max_score: float = 0.0
    cell_scores: dict = field(default_factory=dict)  # grade id -> score
    error: str = ""  # why grading failed, when it did


def write_config(root: Path, cell_timeout: int | None = None) -> None:
    """An nbgrader_config.py for a course folder: the course's settings, this folder as root."""
    (root / "nbgrader_config.py").write_text(
        "# Written by course.grading: the course's settings, with this folder as the course root.\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(ROOT / 'nbgrader_config.py')!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        f"c.CourseDirectory.source_directory = {str(SOLUTIONS)!r}\n"
        "c.CourseDirectory.release_directory = 'release'\n"
        + (f"c.Execute.timeout = {int(cell_timeout)}\n" if cell_timeout else "")
    )


def db_url(root: Path) -> str:
    return f"sqlite:///{root / 'gradebook.db'}"


def contents(path: Path) -> bytes | None:
    """A file's bytes, or None when it is not there (student code may have removed it)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


class GradingCourse:
    def __init__(self, root: Path = ROOT, cell_timeout: int | None = None):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        if self.root != ROOT:  # the repository's own nbgrader_config.py serves the repository root
            write_config(self.root)
        self.cell_timeout = cell_timeout
        self.guarded = [self.root / "nbgrader_config.py", *INSTRUCTOR_FILES]
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self.guard: Guard | None = None

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    def release(self, lesson: str) -> Path:
        """Record the lesson's grade cells in the gradebook; its student version goes to release/."""
        nbgrader("generate_assignment", lesson, "--force", "--CourseDirectory.release_directory=release",
                 cwd=self.root)
        return self.root / "release" / lesson / f"{lesson}.ipynb"

    def submit(self, student: str, lesson: str, nb) -> Path:
        """Place a notebook (a NotebookNode) where nbgrader expects the student's submission."""
        path = self.root / "submitted" / student / lesson / f"{lesson}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def collect(self, lesson: str, submissions: Path) -> list[str]:
        """Copy a class's submissions to submitted/<student>/<lesson>/; return the students.

        A student's notebook is renamed <lesson>.ipynb when it is the only one they sent.
        """
        submissions = Path(submissions)
        with tempfile.TemporaryDirectory(prefix="collect-") as tmp:
            if submissions.is_file() or any(p.suffix in (".ipynb", ".zip") for p in submissions.iterdir()):
                submissions = zip_collect(lesson, submissions, Path(tmp))
            students = sorted(p.name for p in submissions.iterdir()
                              if p.is_dir() and not p.name.startswith((".", "__")))
            for student in students:
                folder = submissions / student
                folder = folder / lesson if (folder / lesson).is_dir() else folder
                dest = self.root / "submitted" / student / lesson
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                for path in folder.iterdir():
                    if path.is_file():
                        shutil.copyfile(path, dest / path.name)
                notebooks = list(dest.glob("*.ipynb"))
                if len(notebooks) == 1:
                    notebooks[0].rename(dest / f"{lesson}.ipynb")
        return students

    def submission_checksum(self, lesson: str, student: str) -> str:
        """A checksum of everything the student submitted for the lesson."""
        digest = hashlib.sha256()
        for path in sorted((self.root / "submitted" / student / lesson).glob("*")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def autograde(self, lesson: str, student: str) -> Result:
        return self.grade_all(lesson, [student], workers=1)[student]

    def grade_all(self, lesson: str, students: list[str], workers: int | None = None) -> dict[str, Result]:
        """Autograde many students, ``workers`` at a time (default: one per CPU core)."""
        workers = workers or os.cpu_count() or 1
        threads = max(1, (os.cpu_count() or 1) // workers)  # no more threads than cores in all
        self.guard = Guard(self.guarded, self.gradebook)
        with tempfile.TemporaryDirectory(prefix="grading-") as run:
            template = Path(run) / "gradebook.db"
            self._student_free_gradebook(template)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = pool.map(lambda student: self._grade(lesson, student, template, threads), students)
                results = {result.student: result for result in results}
        with self._lock:
            self.guard.check(self._in_flight)
        return results

    def _student_free_gradebook(self, path: Path) -> None:
        """A copy of the gradebook with the lessons' cells and no student (for scratch courses)."""
        shutil.copy(self.gradebook, path)
        with Gradebook(f"sqlite:///{path}", course_id=COURSE_ID) as gb:
            for student in gb.students:
                gb.remove_student(student.id)

    def _grade(self, lesson: str, student: str, template: Path, threads: int) -> Result:
        problem = check_submission(self.root / "submitted" / student / lesson, lesson)
        if problem:
            return Result(student, error=problem)
        with tempfile.TemporaryDirectory(prefix=f"grading-{student}-", ignore_cleanup_errors=True) as scratch:
            scratch = Path(scratch)
            write_config(scratch, self.cell_timeout)
            shutil.copy(template, scratch / "gradebook.db")
            shutil.copytree(self.root / "submitted" / student / lesson, scratch / "submitted" / student / lesson)
            with self._lock:
                self._in_flight.add(student)
            config = contents(scratch / "nbgrader_config.py")
            error = run_isolated([sys.executable, "-m", "course.grading", "worker", lesson, student],
                                 scratch, threads, STUDENT_TIMEOUT)
            if error and contents(scratch / "nbgrader_config.py") != config:
                error = f"the notebook wrote to its grading folder (nbgrader_config.py), {error}"
            try:
                result = Result(student, error=error) if error else read_result(scratch, lesson, student)
            except Exception as problem:  # noqa: BLE001 (student code can leave any mess in its scratch)
                result = Result(student, error=f"cannot read the scratch gradebook: {problem}"[:300])
            with self._lock:
                self.guard.check(self._in_flight)
                self._in_flight.discard(student)
                if not result.error:
                    try:
                        result.error = self._merge(scratch, lesson, student)
                    except Exception as problem:  # noqa: BLE001
                        result.error = f"cannot merge the results: {problem}"[:300]
                    if not result.error:
                        self.guard.accept_gradebook()
        return result

    def _merge(self, scratch: Path, lesson: str, student: str) -> str:
        """Merge a scratch course's results into this course; an error message, or ''."""
        with Gradebook(db_url(scratch), course_id=COURSE_ID) as src, \
                Gradebook(db_url(self.root), course_id=COURSE_ID) as dst:
            submission = src.find_submission(lesson, student)
            grades = [(notebook, grade, dst.find_graded_cell(grade.name, notebook.name, lesson))
                      for notebook in submission.notebooks for grade in notebook.grades]
            if any((grade.auto_score or 0) > cell.max_score for _, grade, cell in grades):
                return "scores above the cells' points: the scratch gradebook was tampered with"
            dst.update_or_create_student(student)
            try:
                dst.remove_submission(lesson, student)
            except MissingEntry:
                pass
            with warnings.catch_warnings():  # nbgrader's own add_submission trips SQLAlchemy warnings
                warnings.simplefilter("ignore", SAWarning)
                dst.add_submission(lesson, student, timestamp=submission.timestamp)
            for notebook, grade, _ in grades:
                target = dst.find_grade(grade.name, notebook.name, lesson, student)
                target.auto_score, target.manual_score = grade.auto_score, grade.manual_score
                target.extra_credit, target.needs_manual_grade = grade.extra_credit, grade.needs_manual_grade
            for notebook in submission.notebooks:
                for comment in notebook.comments:
                    target = dst.find_comment(comment.name, notebook.name, lesson, student)
                    target.auto_comment, target.manual_comment = comment.auto_comment, comment.manual_comment
            dst.db.commit()
        for step in ("autograded", "feedback"):
            dest = self.root / step / student / lesson
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(scratch / step / student / lesson, dest, symlinks=True)
        return ""

    def result(self, lesson: str, student: str) -> Result:
        return read_result(self.root, lesson, student)

    def feedback(self, lesson: str, student: str) -> Path:
        """The student's feedback page (generated when they were graded)."""
        return self.root / "feedback" / student / lesson / f"{lesson}.html"


class Guard:
    """Watches what student code must not change while a class is graded.

    nbgrader runs student code with the grader's rights, so a notebook can reach any file by
    its absolute path. The guard takes a checksum of the instructor's files before grading
    and compares after each student: a change is reported with the students being graded at
    the time (it cannot be undone safely: restore from git). The gradebook, which only the
    grader writes, is restored from the copy the grader made after its last write.
    """

    def __init__(self, paths: list[Path], gradebook: Path):
        self.paths, self.gradebook = paths, gradebook
        self.files = self._checksums()
        self.accept_gradebook()
        self.events: list[str] = []  # what changed, and while whom was graded
        self.changed: list[Path] = []

    def _checksums(self) -> dict[Path, str]:
        files = [q for p in self.paths for q in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else [])]
        data = {f: contents(f) for f in files if f.is_file() and not SKIP & set(f.parts)}
        return {f: hashlib.sha256(d).hexdigest() for f, d in data.items() if d is not None}

    def accept_gradebook(self) -> None:
        """Remember the gradebook as the grader left it."""
        self.gradebook_bytes = contents(self.gradebook)

    def check(self, suspects: set[str]) -> None:
        """Restore a changed gradebook; record changed instructor files. Call under the grading lock."""
        who = ", ".join(sorted(suspects)) or "nobody"
        now = contents(self.gradebook)
        if now != self.gradebook_bytes and self.gradebook_bytes is not None:
            for extra in ("-journal", "-wal", "-shm"):
                Path(f"{self.gradebook}{extra}").unlink(missing_ok=True)
            self.gradebook.write_bytes(self.gradebook_bytes)
            self.events.append(f"{self.gradebook} was changed while grading {who}: restored")
        files = self._checksums()
        for path in sorted(set(files) | set(self.files)):
            if files.get(path) != self.files.get(path):
                state = "removed" if path not in files else "created" if path not in self.files else "changed"
                self.events.append(f"{path} was {state} while grading {who}")
                self.changed.append(path)
        self.files = files


def check_submission(folder: Path, lesson: str) -> str:
    """Why a submission folder cannot be graded, or ''."""
    notebooks = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    if f"{lesson}.ipynb" not in notebooks:
        if not notebooks:
            return "no notebook submitted"
        return f"several notebooks and none is {lesson}.ipynb: {', '.join(notebooks)}"
    try:
        nbformat.read(folder / f"{lesson}.ipynb", as_version=4)
    except Exception as error:  # noqa: BLE001 (any reason a file is not a notebook)
        return f"{lesson}.ipynb is not a valid notebook: {str(error).splitlines()[0][:200]}"
    return ""


def run_isolated(command: list[str], scratch: Path, threads: int, timeout: float) -> str:
    """Run a command in a scratch folder that is also its HOME; an error message, or ''.

    The command and what it starts (the kernel, anything student code starts) run in a
    process group of their own, which is killed when the command ends or times out.
    """
    home = scratch / "home"
    env = tool_env()
    env.update({name: str(home / sub) for name, sub in [
        ("HOME", "."), ("TMPDIR", "tmp"), ("IPYTHONDIR", ".ipython"), ("JUPYTER_CONFIG_DIR", ".jupyter"),
        ("JUPYTER_DATA_DIR", ".local/share/jupyter"), ("MPLCONFIGDIR", ".config/matplotlib"),
        ("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share")]})
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", start_new_session=True)
    tail = collections.deque(maxlen=400)  # the log's last lines: a kernel's own output can be endless
    reader = threading.Thread(target=tail.extend, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        timed_out = process.wait(timeout=timeout) is None
    except subprocess.TimeoutExpired:
        timed_out = True
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    reader.join(timeout=10)
    if timed_out:
        return f"grading took longer than {timeout:.0f} s"
    return "" if process.returncode == 0 else _reason("".join(tail))


def _reason(log: str) -> str:
    """The reason an nbgrader run failed, from its log: the first exception, or the last lines."""
    if "DeadKernelError" in log or "Kernel died" in log:
        return "the kernel died while running the notebook (os._exit, a crash or out of memory)"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if EXCEPTION.match(line) and "NbGraderException" not in line]
    return "nbgrader failed: " + (errors[0] if errors else " | ".join(lines[-3:]))[:300]


def read_result(root: Path, lesson: str, student: str) -> Result:
    with Gradebook(db_url(root), course_id=COURSE_ID) as gb:
        try:
            notebook = gb.find_submission_notebook(lesson, lesson, student)
        except MissingEntry:
            return Result(student, error="no graded notebook in the gradebook")
        cells = {grade.name: grade.score for grade in notebook.grades}
        return Result(student, notebook.score, notebook.max_score, cells)


def zip_collect(lesson: str, export: Path, scratch: Path) -> Path:
    """Collect an LMS export (a zip, or a folder of <student>_<anything>.ipynb) with nbgrader zip_collect.

    Returns the folder of per-student folders it made (<student>/<lesson>/...).
    """
    write_config(scratch)
    archive = scratch / "downloaded" / lesson / "archive"
    archive.mkdir(parents=True)
    for path in [export] if export.is_file() else sorted(export.iterdir()):
        if path.is_file():
            shutil.copyfile(path, archive / path.name)
    nbgrader("zip_collect", lesson, "--force", f"--FileNameCollectorPlugin.named_regexp={LMS_NAMES}", cwd=scratch)
    (scratch / "submitted").mkdir(exist_ok=True)
    return scratch / "submitted"


@dataclass
class Summary:
    lesson: str
    course: GradingCourse
    results: dict[str, Result]  # every student in this run's submissions, graded now or before
    graded: list[str]  # the students graded in this run
    seconds: float  # the whole command
    grading_seconds: float  # autograding and feedback only
    csv: Path
    report: Path

    @property
    def failed(self) -> dict[str, str]:
        return {s: r.error for s, r in self.results.items() if r.error}

    def text(self) -> str:
        skipped = len(self.results) - len(self.graded)
        per = f" ({self.grading_seconds / len(self.graded):.1f} s per submission)" if self.graded else ""
        lines = [f"{self.lesson}: {len(self.results)} students: {len(self.results) - len(self.failed)} graded, "
                 f"{len(self.failed)} failed. This run graded {len(self.graded)} submissions and skipped "
                 f"{skipped} unchanged since their last grading: {self.seconds:.0f} s{per}."]
        lines += [f"  failed  {student}: {why}" for student, why in sorted(self.failed.items())]
        lines += [f"  WARNING {event}" for event in self.course.guard.events] if self.course.guard else []
        if self.course.guard and self.course.guard.changed:
            lines.append("  Instructor files changed during grading: check them (git status, git diff) "
                         "and regrade the students named above with --force.")
        root = self.course.root
        lines += [f"grades:   {self.csv.relative_to(root)}", f"report:   {self.report.relative_to(root)}",
                  f"feedback: feedback/<student>/{self.lesson}/{self.lesson}.html (in {root})"]
        return "\n".join(lines)


def grade(lesson: str, submissions: Path, course_dir: Path = ROOT, force: bool = False,
          jobs: int | None = None, cell_timeout: int | None = None) -> Summary:
    """Collect, autograde, write feedback, grades CSV and class report: the `grade` command."""
    from course.report import class_report, grades_table

    start = time.monotonic()
    course = GradingCourse(course_dir, cell_timeout=cell_timeout)
    out = course.root / "grades" / lesson
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "submissions.json"  # per student: what was graded, against which lesson version
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    source = sha256(solution_notebook(lesson))
    if record.get("source") != source or not _has_assignment(course, lesson):
        course.release(lesson)
        record["source"] = source
    students = course.collect(lesson, submissions)
    done = record.setdefault("students", {})
    now = {s: {"checksum": course.submission_checksum(lesson, s), "source": source} for s in students}
    todo = [s for s in students if force or {k: done.get(s, {}).get(k) for k in now[s]} != now[s]
            or (not done[s]["error"] and course.result(lesson, s).error)]
    started = time.monotonic()
    results = course.grade_all(lesson, todo, workers=jobs)
    grading_seconds = time.monotonic() - started
    for student, result in results.items():
        done[student] = {**now[student], "error": result.error}
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    everyone = {s: Result(s, error=e["error"]) if e["error"] else course.result(lesson, s)
                for s, e in sorted(done.items())}
    points = _points(course, lesson)
    table = grades_table(everyone, points)
    csv = out / "grades.csv"
    table.to_csv(csv, index=False)
    report = class_report(table, lesson, points, out)
    summary = Summary(lesson, course, {s: everyone[s] for s in students}, todo, time.monotonic() - start,
                      grading_seconds, csv, report)
    (out / "summary.txt").write_text(summary.text() + "\n")
    return summary


def _has_assignment(course: GradingCourse, lesson: str) -> bool:
    if not course.gradebook.is_file():
        return False
    with Gradebook(db_url(course.root), course_id=COURSE_ID) as gb:
        try:
            gb.find_assignment(lesson)
        except MissingEntry:
            return False
    return True


def _points(course: GradingCourse, lesson: str) -> dict[str, float]:
    """The lesson's graded cells and their points, in notebook order."""
    with Gradebook(db_url(course.root), course_id=COURSE_ID) as gb:
        cells = gb.find_notebook(lesson, lesson).grade_cells
        order = [c.metadata["nbgrader"]["grade_id"] for c in nbformat.read(solution_notebook(lesson), 4).cells
                 if c.metadata.get("nbgrader", {}).get("grade")]
        return {c.name: c.max_score for c in sorted(cells, key=lambda c: order.index(c.name))}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m course grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("lesson", help="the lesson (nbgrader assignment), e.g. 01-tensors")
    parser.add_argument("submissions", type=Path, help="a folder of per-student folders, or an LMS zip or folder")
    parser.add_argument("--course-dir", type=Path, default=ROOT,
                        help="the nbgrader course folder for gradebook, feedback and grades (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="regrade every student, changed or not")
    parser.add_argument("--jobs", type=int, help="students graded at once (default: one per CPU core)")
    parser.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py's)")
    args = parser.parse_args(argv)
    if not args.submissions.exists():
        parser.error(f"{args.submissions} does not exist")
    summary = grade(args.lesson, args.submissions, args.course_dir, args.force, args.jobs, args.timeout)
    print(summary.text())
    return 1 if summary.course.guard and summary.course.guard.changed else 0


def _worker(lesson: str, student: str) -> int:
    """Autograde one student and generate their feedback, in the current folder (a scratch course)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.apps.baseapp import NbGrader

    app = NbGrader()
    app.load_config_file()
    api = NbGraderAPI(config=app.config)
    for step in (api.autograde, api.generate_feedback):
        outcome = step(lesson, student)
        if not outcome["success"]:
            print(outcome.get("log", ""), outcome.get("error", ""), sep="\n")
            return 1
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    sys.exit(_worker(*sys.argv[2:4]))
