"""The grading pipeline on simulated students, in a temporary nbgrader course.

For each lesson: the instructor's answers score full marks, the untouched student
version scores 0, every solution region is guarded (stubbing it alone loses points),
and the feedback HTML shows no hidden test.
"""

import re
from html.parser import HTMLParser

import nbformat
import pytest

import simulate
from course.grading import GradingCourse
from course.paths import lesson_ids

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


@pytest.fixture(scope="module", params=lesson_ids())
def graded(request, tmp_path_factory):
    """Grade one lesson's simulated class once; the tests below read the results."""
    lesson = request.param
    course = GradingCourse(tmp_path_factory.mktemp(f"course-{lesson}"))
    release_nb = nbformat.read(course.release(lesson), as_version=4)
    students = {"solution": simulate.submission(release_nb, lesson), "untouched": release_nb}
    for cell_id, k in simulate.regions(lesson):
        students[f"stub-{cell_id}-{k}"] = simulate.submission(release_nb, lesson, stub=(cell_id, k))
    for student, nb in students.items():
        course.submit(student, lesson, nb)
    return lesson, course, course.grade_all(lesson, list(students))


def test_the_instructors_answers_score_full_marks(graded):
    lesson, _, results = graded
    result = results["solution"]
    assert not result.error, result.error
    assert result.max_score > 0
    failing = {cell: score for cell, score in result.cell_scores.items() if score == 0}
    assert result.score == result.max_score, f"{lesson}: test cells failing on the solution: {failing}"


def test_the_untouched_student_version_scores_zero(graded):
    lesson, _, results = graded
    result = results["untouched"]
    assert not result.error, result.error
    passing = {cell: score for cell, score in result.cell_scores.items() if score > 0}
    assert result.score == 0, f"{lesson}: test cells that pass without an answer: {passing}"


def test_every_solution_region_is_guarded(graded):
    lesson, _, results = graded
    unguarded = [s for s, r in results.items() if s.startswith("stub-") and r.score >= r.max_score]
    stubs = [s for s in results if s.startswith("stub-")]
    assert stubs, f"{lesson} has no solution regions"
    assert not unguarded, f"{lesson}: stubbing these regions loses no points: {unguarded}"


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def _visible_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return " ".join("".join(parser.parts).split())


def test_feedback_shows_visible_tests_but_no_hidden_test(graded):
    lesson, course, _ = graded
    cells = simulate.instructor(lesson).cells
    tests = [c.source for c in cells if simulate.is_test(c)]
    public = {line.strip() for c in cells for line in HIDDEN.sub("", c.source).splitlines()}
    # lines that only a hidden test has (a line that also stands in visible code may show)
    hidden = {line.strip() for t in tests for block in HIDDEN.findall(t) for line in block.splitlines()
              if len(line.strip()) >= 10 and not line.strip().startswith("#")} - public
    visible = [line.strip() for t in tests for line in HIDDEN.sub("", t).splitlines()
               if line.strip().startswith("assert")]
    assert hidden and visible, f"{lesson} needs visible and hidden tests"
    normalised = lambda line: " ".join(line.split())  # noqa: E731
    for student in ("solution", "untouched"):
        text = _visible_text(course.feedback(lesson, student).read_text())
        assert normalised(visible[0]) in text, "the check cannot see test code in the feedback"
        shown = sorted(line for line in hidden if normalised(line) in text)
        assert not shown, f"{lesson}: feedback for {student} shows hidden test lines: {shown[:3]}"
