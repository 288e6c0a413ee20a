"""The grading pipeline on simulated students, in a temporary nbgrader course.

For each lesson: the instructor's answers score full marks, the untouched student
version scores 0, every solution region is guarded (stubbing it alone loses points),
and the feedback HTML shows no hidden test. No score is read before checking that every
student was graded: a grading error is printed, never read as a score.
"""

import nbformat
import pytest

import simulate
from course import cells
from course.grading import CourseFolder, grade_students
from course.paths import lesson_ids


def assert_all_graded(outcomes: dict) -> None:
    """Every student was graded (a grading error is not a score of 0 out of 0)."""
    errors = {s: f"{o.status}: {o.reason}" for s, o in outcomes.items() if o.status != "graded" or o.reason}
    assert not errors, f"grading errors: {errors}"


@pytest.fixture(scope="module", params=lesson_ids())
def graded(request, tmp_path_factory, engine):
    """Grade one lesson's simulated class once; the tests below read the results."""
    lesson = request.param
    course = CourseFolder(tmp_path_factory.mktemp(f"course-{lesson}"))
    release_nb = nbformat.read(course.release(lesson), as_version=4)
    students = {"solution": cells.submission(release_nb, lesson), "untouched": release_nb}
    for cell_id, k in cells.regions(lesson):
        students[f"stub-{cell_id}-{k}"] = cells.submission(release_nb, lesson, stub=(cell_id, k))
    for student, nb in students.items():
        course.submit(student, lesson, nb)
    outcomes = grade_students(course, lesson, list(students), engine).outcomes
    assert_all_graded(outcomes)
    return lesson, course, outcomes


def test_the_instructors_answers_score_full_marks(graded):
    lesson, _, results = graded
    result = results["solution"]
    assert result.max_score > 0
    failing = {cell: score for cell, score in result.cell_scores.items() if score == 0}
    assert result.score == result.max_score, f"{lesson}: test cells failing on the solution: {failing}"


def test_the_untouched_student_version_scores_zero(graded):
    lesson, _, results = graded
    result = results["untouched"]
    passing = {cell: score for cell, score in result.cell_scores.items() if score > 0}
    assert result.score == 0 < result.max_score, f"{lesson}: test cells that pass without an answer: {passing}"


def test_every_solution_region_is_guarded(graded):
    lesson, _, results = graded
    stubs = {s: r for s, r in results.items() if s.startswith("stub-")}
    assert stubs, f"{lesson} has no solution regions"
    assert all(r.max_score > 0 for r in stubs.values())
    unguarded = {s: f"{r.score}/{r.max_score}" for s, r in stubs.items() if r.score >= r.max_score}
    assert not unguarded, f"{lesson}: stubbing these regions loses no points: {unguarded}"


def test_feedback_shows_visible_tests_but_no_hidden_test(graded):
    lesson, course, _ = graded
    tests = [c.source for c in cells.instructor(lesson).cells if cells.is_test(c)]
    visible = [line.strip() for t in tests for line in cells.HIDDEN.sub("", t).splitlines()
               if line.strip().startswith("assert")]
    assert cells.hidden_test_lines(lesson) and visible, f"{lesson} needs visible and hidden tests"
    for student in ("solution", "untouched"):
        page = course.feedback(lesson, student).read_text()
        assert " ".join(visible[0].split()) in simulate.visible_text(page), \
            "the check cannot see test code in the feedback"
        shown = simulate.shown_hidden_lines(page, lesson)
        assert not shown, f"{lesson}: feedback for {student} shows hidden test lines: {shown[:3]}"


def test_feedback_highlights_a_cell_as_nbconvert_does_and_once_per_worker(monkeypatch):
    from nbconvert.filters import highlight

    from course.grading.worker import HighlightedOnce

    cells = [("x = torch.ones(3)  # a tensor", None), ("%%bash\necho hi", {"magics_language": "bash"}),
             ("def f():\n    return 1", {"tags": ["x"]})]
    plain, once = highlight.Highlight2HTML(pygments_lexer="ipython3"), HighlightedOnce(pygments_lexer="ipython3")
    expected = [plain(source, metadata=metadata) for source, metadata in cells]
    new = plain("y = 2  # not highlighted before")
    assert [once(source, metadata=metadata) for source, metadata in cells] == expected
    assert expected[0] != expected[1] != expected[2]
    calls = []
    real = highlight._pygments_highlight
    monkeypatch.setattr(highlight, "_pygments_highlight", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert [once(source, metadata=metadata) for source, metadata in cells] == expected
    assert not calls, "a cell highlighted before was highlighted again"
    assert once("y = 2  # not highlighted before") == new and len(calls) == 1
