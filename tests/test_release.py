"""The student versions in notebooks/: in sync with solutions/, without leaks, well formed."""

import ast
import json
import re

import nbformat
import pytest

from course import cells
from course.lessons import (
    MAX_MINUTES_BEFORE_PRACTICE,
    estimated_minutes,
    reading_before_each_exercise,
    release,
    stated_minutes,
)
from course.paths import NOTEBOOKS, ROOT, lesson_ids, solution_notebook, student_notebook

LESSONS = lesson_ids()


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
    assert not cells.MARKERS.search(text), "nbgrader markers in the student version"
    for cell in student.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"stored output in {lesson}: {cell.source[:60]!r}"
    source = nbformat.read(solution_notebook(lesson), as_version=4)
    public = "\n".join(cells.SECRET.sub("", cell.source) for cell in source.cells)
    secret_lines = {line.strip() for cell in source.cells for _, block in cells.SECRET.findall(cell.source)
                    for line in block.splitlines()}
    public_lines = {line.strip() for line in public.splitlines()}
    student_lines = {line.strip() for line in text.splitlines()}
    leaked = sorted(line for line in secret_lines - public_lines if len(line) > 8 and line in student_lines)
    assert not leaked, f"solution or hidden-test lines in notebooks/{lesson}: {leaked[:5]}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_has_the_course_skeleton(lesson):
    nb = cells.instructor(lesson)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("Teaching:", "Exercises:", "Questions", "Objectives", "Key points"):
        assert heading.lower() in markdown.lower(), \
            f"{lesson} lacks '{heading}' (see AUTHORING.md, A lesson's skeleton)"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("lesson", LESSONS)
def test_graded_exercises_are_well_formed(lesson):
    nb = cells.instructor(lesson)
    tests = [c for c in nb.cells if cells.is_test(c)]
    solutions = [c for c in nb.cells if cells.is_solution(c)]
    assert 5 <= len(solutions) <= 10, f"{lesson} has {len(solutions)} graded exercises; the syllabus asks for 5 to 10"
    ids = [cells.grade_id(c) for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"duplicate grade ids in {lesson}"
    for cell in tests:
        name = cells.grade_id(cell)
        meta = cell.metadata["nbgrader"]
        assert meta["locked"] and meta["points"] > 0, f"{name}: test cells are locked and worth points"
        visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
        assert "assert" in visible and "assert" in hidden, f"{name}: visible asserts first, then hidden tests"
        last = ast.parse(cell.source).body[-1]
        # A test cell's last value is read by nbgrader as partial credit: end with statements.
        assert not isinstance(last, ast.Expr), f"{name} ends with an expression; end it with an assert"


@pytest.mark.parametrize("lesson", LESSONS)
def test_grade_ids_name_the_lesson_and_number_the_exercises_in_order(lesson):
    nb = cells.instructor(lesson)
    numbers = []
    for cell in (c for c in nb.cells if "nbgrader" in c.metadata):
        name = cells.grade_id(cell)
        match = cells.GRADE_ID.fullmatch(name)
        assert match and match["lesson"] == lesson, f"{name!r} is not of the form {lesson}-exN-solution|tests"
        assert (match["kind"] == "solution") == cells.is_solution(cell), f"{name}: the kind does not match the cell"
        assert not (match["item"] and match["kind"] == "solution"), f"{name}: items are test cells"
        if match["kind"] == "solution":
            numbers.append(int(match["number"]))
        else:
            assert numbers and int(match["number"]) == numbers[-1], \
                f"{name} does not follow its exercise's solution cell"
    assert numbers == list(range(1, len(numbers) + 1)), f"{lesson}: exercises numbered {numbers}, not 1, 2, 3, ..."


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_headers_times_follow_the_rule(lesson):
    """The header's minutes are course.lessons.estimated_minutes (the rule is written there)."""
    nb = cells.instructor(lesson)
    assert stated_minutes(nb) == estimated_minutes(nb), (
        f"{lesson}: the header says (teaching, exercises) = {stated_minutes(nb)} min, the rule gives "
        f"{estimated_minutes(nb)}: write the rule's figures into the first cell")


@pytest.mark.parametrize("lesson", LESSONS)
def test_practice_comes_within_minutes_of_reading(lesson):
    reading = reading_before_each_exercise(cells.instructor(lesson))
    late = [(f"cell {index}", round(minutes, 1)) for index, minutes in reading if minutes > MAX_MINUTES_BEFORE_PRACTICE]
    assert not late, (f"{lesson}: exercises after more than {MAX_MINUTES_BEFORE_PRACTICE} min of reading "
                      f"(cell, minutes): {late}; put an exercise right after the section that teaches its skill")


def test_the_readme_lists_every_lesson_with_its_headers_times():
    rows = re.findall(r"^\| \d\d \| \[.*?\]\(notebooks/([^/]+)/.*\| (\d+) min \| (\d+) min \|$",
                      (ROOT / "README.md").read_text(), re.M)
    listed = {lesson: (int(teaching), int(exercises)) for lesson, teaching, exercises in rows}
    headers = {lesson: stated_minutes(cells.instructor(lesson)) for lesson in LESSONS}
    assert listed == headers, "README's lesson table differs from the lessons' headers (teaching, exercises minutes)"
