"""The student versions in notebooks/: in sync with solutions/, without leaks, well formed."""

import ast
import json
import re

import nbformat
import pytest

import simulate
from course.lessons import release
from course.paths import NOTEBOOKS, lesson_ids, solution_notebook, student_notebook

LESSONS = lesson_ids()
MARKERS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS|BEGIN MARK SCHEME")
SECRET = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
# The graded exercises each lesson must have at least (the syllabus asks for 5 to 10).
MIN_EXERCISES = {"00-setup": 2}


def test_there_are_lessons_and_each_has_a_student_version():
    assert LESSONS, "no lessons found under solutions/"
    released = sorted(p.name for p in NOTEBOOKS.iterdir() if p.is_dir())
    assert released == LESSONS, "notebooks/ must hold exactly one student version per lesson: run `make release`"


@pytest.mark.parametrize("lesson", LESSONS)
def test_student_version_is_what_release_generates(lesson, tmp_path):
    fresh = json.loads(release(lesson, tmp_path).read_text())
    committed = json.loads(student_notebook(lesson).read_text())
    assert fresh == committed, f"notebooks/{lesson} is out of date: run `make release` and commit it"


@pytest.mark.parametrize("lesson", LESSONS)
def test_student_version_leaks_no_solution_hidden_test_or_output(lesson):
    student = nbformat.read(student_notebook(lesson), as_version=4)
    text = "\n".join(cell.source for cell in student.cells)
    assert not MARKERS.search(text), "nbgrader markers in the student version"
    for cell in student.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"stored output in {lesson}: {cell.source[:60]!r}"
    source = nbformat.read(solution_notebook(lesson), as_version=4)
    public = "\n".join(SECRET.sub("", cell.source) for cell in source.cells)
    secret_lines = {line.strip() for cell in source.cells for _, block in SECRET.findall(cell.source)
                    for line in block.splitlines()}
    public_lines = {line.strip() for line in public.splitlines()}
    student_lines = {line.strip() for line in text.splitlines()}
    leaked = sorted(line for line in secret_lines - public_lines if len(line) > 8 and line in student_lines)
    assert not leaked, f"solution or hidden-test lines in notebooks/{lesson}: {leaked[:5]}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_has_the_course_skeleton(lesson):
    nb = simulate.instructor(lesson)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("Teaching:", "Exercises:", "Questions", "Objectives", "Key points"):
        assert heading.lower() in markdown.lower(), f"{lesson} lacks '{heading}' (see SYLLABUS.md)"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("lesson", LESSONS)
def test_graded_exercises_are_well_formed(lesson):
    nb = simulate.instructor(lesson)
    tests = [c for c in nb.cells if simulate.is_test(c)]
    assert len(tests) >= MIN_EXERCISES.get(lesson, 5), f"{lesson} has {len(tests)} graded exercises"
    ids = [simulate.grade_id(c) for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"duplicate grade ids in {lesson}"
    for cell in tests:
        name = simulate.grade_id(cell)
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] and meta["points"] > 0, f"{name}: test cells are locked and worth points"
        visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
        assert "assert" in visible and "assert" in hidden, f"{name}: visible asserts first, then hidden tests"
        last = ast.parse(cell.source).body[-1]
        # A test cell's last value is read by nbgrader as partial credit: end with statements.
        assert not isinstance(last, ast.Expr), f"{name} ends with an expression; end it with an assert"
