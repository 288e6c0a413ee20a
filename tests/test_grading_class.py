"""`python -m course grade` on a simulated class of messy submissions (lesson 01-tensors).

The class (tests/simulate.py: messy_class) is graded once by the command, then again
unchanged, then with a late submission added, then three of its students come back as an
LMS zip graded with --force. Each student's expected outcome comes with the simulation.
"""

import base64
import csv
import hashlib
import json
import re
import socket
import tempfile
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

import simulate
from course import cells, grading
from course.paths import ROOT, student_notebook
from course.settings import INSTRUCTOR_ONLY

LESSON = simulate.MESSY
TIMEOUT = 15  # seconds per cell for this test (the course's is settings.CELL_TIMEOUT): the endless loop is stopped then
MEMORY = 1  # GiB per submission for this test (the course's is 4): the memory hog passes it sooner
# Files the class must leave as they are: what only instructors may read, the student version, the
# configuration and the data (the course folder's gradebook is checked through the grades).
INSTRUCTOR = [*(ROOT / name for name in INSTRUCTOR_ONLY), ROOT / "notebooks" / LESSON, ROOT / "nbgrader_config.py",
              ROOT / "data" / "iris.csv", ROOT / ".jupyter" / "nbgrader_config.py"]
ZIPPED = ("full", "partial")  # sent again as an LMS export, named <student>_<file>.ipynb


def checksums(paths: list[Path]) -> dict[str, str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def grade(submissions: Path, course_dir: Path, engine, *options: str) -> SimpleNamespace:
    """Run the grade command; its summary, the grades CSV and the autograded files' times."""
    summary = grading.grade(LESSON, submissions, course_dir, cell_timeout=TIMEOUT, memory_gib=MEMORY, engine=engine,
                            progress=False, force="--force" in options)
    table = course_dir / "grades" / LESSON / "grades.csv"
    graded = course_dir / "autograded"
    return SimpleNamespace(summary=summary.text(), csv=table.read_text(), run=summary.run,
                           rows={row["student"]: row for row in csv.DictReader(table.open())},
                           times={p.parent.parent.name: p.stat().st_mtime_ns
                                  for p in graded.glob(f"*/{LESSON}/*.ipynb")})


def planted(marker: str, course_dir: Path) -> list[str]:
    """Files and processes with the attackers' marker that outlived grading."""
    places = {Path("/tmp"), Path.home(), ROOT, Path(tempfile.gettempdir()), course_dir}
    files = sorted(str(f) for place in places for f in place.glob(f"*{marker}*"))
    processes = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command or any(c in command for c in simulate.ESCAPEE_COMMANDS):
            processes.append(f"{cmdline.parent.name}: {command.strip()}")
    return files + processes


@pytest.fixture(scope="module")
def runs(tmp_path_factory, engine, sandboxed):
    base = tmp_path_factory.mktemp("class")
    course_dir, submissions = base / "course", base / "submissions"
    marker = f"planted-{uuid.uuid4().hex[:8]}"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        students = simulate.messy_class(nbformat.read(student_notebook(LESSON), as_version=4), course_dir,
                                        listener.getsockname()[1], marker)
        simulate.write_class(submissions, students)
        before = checksums(INSTRUCTOR)
        first = grade(submissions, course_dir, engine)
        try:
            listener.accept()
            called = True
        except BlockingIOError:
            called = False
    leftovers = planted(marker, course_dir)
    again = grade(submissions, course_dir, engine)
    late = {"late": (f"{LESSON}.ipynb", students["full"][1], simulate.TOTAL)}
    simulate.write_class(submissions, late)
    with_late = grade(submissions, course_dir, engine)
    export = base / "lms-export.zip"
    with zipfile.ZipFile(export, "w") as archive:
        for student in ZIPPED:
            path = next((submissions / student).rglob("*.ipynb"))
            archive.write(path, f"{student}_{path.name}")
    forced = grade(export, course_dir, engine, "--force")
    return SimpleNamespace(students=students, course_dir=course_dir, first=first, again=again, late=with_late,
                           forced=forced, changed=before != checksums(INSTRUCTOR), called=called,
                           leftovers=leftovers)


def test_each_student_gets_the_expected_grade_or_is_reported_failed_with_the_reason(runs):
    wrong = {}
    for student, (_, _, expected) in runs.students.items():
        row = runs.first.rows[student]
        got = f"got {row['status']} {row['total']} {row['reason']!r}"
        if isinstance(expected, str):
            if row["status"] != "failed" or expected not in row["reason"]:
                wrong[student] = f"expected a failure ({expected}), {got}"
            continue
        score, stopped = expected if isinstance(expected, tuple) else (expected, "")
        if row["status"] != "graded":
            wrong[student] = f"expected {score}/{simulate.TOTAL:g}, {got}"
            continue
        scores = [float(row[cell]) for cell in list(row)[3:-2]]
        if float(row["total"]) != score or sum(scores) != score:
            wrong[student] = f"expected {score}/{simulate.TOTAL:g}, {got}"
        elif stopped not in row["reason"] or bool(stopped) != bool(row["reason"]):
            wrong[student] = f"expected the reason {stopped!r}, {got}"
        assert float(row["max_score"]) == simulate.TOTAL
    assert not wrong, wrong


def test_the_grades_csv_has_a_row_per_student_and_a_column_per_graded_cell(runs):
    header = runs.first.csv.splitlines()[0].split(",")
    cells = simulate.graded_cells()
    assert header == ["student", "status", "reason", *cells, "total", "max_score"]
    assert sorted(runs.first.rows) == sorted(runs.students)


def test_feedback_for_every_graded_student_shows_no_hidden_test(runs):
    visible = "assert b.shape == (4, 3, 32, 32)"  # a visible test line of make_batch's exercise
    for student, row in runs.first.rows.items():
        if row["status"] == "graded":
            page = runs.course_dir / "feedback" / student / LESSON / f"{LESSON}.html"
            assert page.stat().st_size < 2_000_000, f"{student}: feedback of {page.stat().st_size} bytes"
            html = page.read_text()
            assert visible in simulate.visible_text(html), f"{student}: the check cannot see test code"
            shown = simulate.shown_hidden_lines(html, LESSON)
            assert not shown, f"feedback for {student} shows hidden test lines: {shown[:3]}"


def test_the_class_report_names_the_most_failed_exercise_and_the_failed_students(runs):
    out = runs.course_dir / "grades" / LESSON
    report = (out / "report.md").read_text()
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    graded = [row for row in runs.first.rows.values() if row["status"] == "graded"]
    zeros = {name: sum(float(row[f"{LESSON}-{name}-tests"]) == 0 for row in graded) for name in simulate.CELLS}
    most = min(zeros, key=lambda n: (-zeros[n], n))
    table = report.split("## Exercises")[1].splitlines()
    first_row = next(line for line in table if re.match(r"\| ex\d", line))
    assert first_row.startswith(f"| {most} |"), first_row
    for student, row in runs.first.rows.items():
        assert (f"| {student} |" in report) == (row["status"] == "failed"), student


def test_no_attack_reached_the_grader(runs):
    assert not runs.changed, "the class changed files in solutions/, notebooks/, data/ or the course config"
    assert not runs.called, "a student's notebook connected to a listener on 127.0.0.1"
    assert not runs.leftovers, f"planted files or processes that outlived grading: {runs.leftovers}"
    snoop = nbformat.read(runs.course_dir / "autograded" / "snoop" / LESSON / f"{LESSON}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in snoop.cells if c.cell_type == "code" for o in c.outputs)
    assert "sqlite" not in printed.lower() and "BEGIN HIDDEN TESTS" not in printed, printed[:2000]
    spy = nbformat.read(runs.course_dir / "autograded" / "eavesdropper" / LESSON / f"{LESSON}.ipynb", as_version=4)
    printed = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                         for c in spy.cells if c.cell_type == "code" for o in c.outputs)
    assert "output withheld: it quoted a hidden test" in printed, "the eavesdropper printed no test cell's source"
    decoded = []
    for token in re.findall(r"[A-Za-z0-9+/]{40,}={0,2}", printed):  # the leak's base64, decoded again
        try:
            decoded.append(base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "replace"))
        except ValueError:
            pass
    spellings = {"as it is": printed, "as JSON": printed, "spaced out": "".join(printed.split()),
                 "reversed": printed[::-1], "in base64": "\n".join(decoded)}
    quoted = {how: line for line in cells.hidden_test_lines(LESSON) for how, text in spellings.items()
              if (json.dumps(line)[1:-1] if how == "as JSON" else
                  "".join(line.split()) if how == "spaced out" else line) in text}
    assert not quoted, f"the eavesdropper's graded notebook quotes hidden tests: {quoted}"
    page = (runs.course_dir / "feedback" / "eavesdropper" / LESSON / f"{LESSON}.html").read_text()
    assert not simulate.shown_hidden_lines(page, LESSON), "the eavesdropper's feedback quotes hidden tests"
    bomb = nbformat.read(runs.course_dir / "autograded" / "fork-bomb" / LESSON / f"{LESSON}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in bomb.cells if c.cell_type == "code" for o in c.outputs)
    assert "fork refused after" in printed, printed[-500:]
    assert int(printed.split("fork refused after")[1].split()[0]) < 1024


def test_the_summary_names_the_sandbox_and_the_time_per_phase(runs):
    assert "sandbox: on: separate user, private filesystem, no network, memory limit, process limit, " \
           "nothing survives" in runs.first.summary, runs.first.summary
    assert "OFF" not in runs.first.summary
    for phase in ("collect", "gradebook", "grading", "merge", "report", "autograde", "feedback"):
        assert f"{phase} " in runs.first.summary.split("time:")[1], runs.first.summary


def test_grading_the_same_class_again_grades_nobody_and_changes_nothing(runs):
    assert "This run graded 0 submissions" in runs.again.summary, runs.again.summary
    assert runs.again.csv == runs.first.csv
    assert runs.again.times == runs.first.times


def test_a_late_submission_is_the_only_one_graded(runs):
    assert "This run graded 1 submissions" in runs.late.summary, runs.late.summary
    rows = dict(runs.late.rows)
    assert float(rows.pop("late")["total"]) == simulate.TOTAL
    assert rows == runs.first.rows
    assert {s: t for s, t in runs.late.times.items() if s != "late"} == runs.first.times


def test_a_forced_regrade_of_an_lms_zip_gives_the_same_grades(runs):
    assert f"{len(ZIPPED)} students" in runs.forced.summary
    assert f"This run graded {len(ZIPPED)} submissions" in runs.forced.summary
    assert runs.forced.csv == runs.late.csv
    regraded = {s for s, t in runs.forced.times.items() if t != runs.late.times[s]}
    assert regraded == set(ZIPPED)
