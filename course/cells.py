"""The lessons' notebook format, in one place: nbgrader's cells, their markers and grade ids.

AUTHORING.md explains the format to authors; this module is what the package, conftest.py and
the tests read it from:

- a **solution cell** holds the answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
  the student version has ``STUB`` there;
- a **test cell** is graded; its hidden part sits between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``;
- grade ids are ``<lesson>-exN-solution`` and ``<lesson>-exN-tests``, or
  ``<lesson>-exN<letter>-tests`` for one item of a predict exercise scored item by item
  (``GRADE_ID``); the class report orders and names exercises by them.

It also makes the answered notebooks that grading tests and benchmarks submit: the instructor's
answers put into the released student version (``submission``).
"""

import ast
import copy
import re

import nbformat
from nbgrader.utils import is_grade
from nbgrader.utils import is_solution as _nbgrader_is_solution

from course.paths import solution_notebook

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # what nbgrader_config.py's ClearSolutions writes
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
SECRET = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)  # what students never see
MARKERS = re.compile(r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS|BEGIN MARK SCHEME")
GRADE_ID = re.compile(r"(?P<lesson>\d\d-[a-z0-9-]+?)-ex(?P<number>\d+)(?P<item>[a-z]?)-(?P<kind>solution|tests)")
# Cell metadata that changes on every run (nbclient's timings, JupyterLab's view state).
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled")


def grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def is_solution(cell) -> bool:
    return bool(_nbgrader_is_solution(cell))


def is_graded(cell) -> bool:
    """A cell that scores points: a test cell, or an answer graded by hand."""
    return bool(is_grade(cell))


def is_test(cell) -> bool:
    """A graded cell that is not also a solution: the tests of an exercise."""
    return bool(is_grade(cell)) and not _nbgrader_is_solution(cell)


def is_exercise_cell(cell) -> bool:
    """A solution or a test cell: what a student writes or is graded on."""
    return bool(is_grade(cell) or _nbgrader_is_solution(cell))


def instructor(lesson: str):
    """The instructor's notebook of a lesson (solutions/)."""
    return nbformat.read(solution_notebook(lesson), as_version=4)


def regions(lesson: str) -> list[tuple[str, int]]:
    """Every solution region of a lesson, as (grade id of its cell, index within the cell)."""
    return [(grade_id(cell), k) for cell in instructor(lesson).cells if is_solution(cell)
            for k in range(cell.source.count(BEGIN))]


def answer(source: str, stubbed: int | None = None) -> str:
    """The instructor's cell with markers removed; region number ``stubbed`` left as the stub."""
    lines, region, inside = [], -1, False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            region, inside = region + 1, True
            if region == stubbed:
                indent = re.match(r"\s*", line).group()
                lines += [indent + s for s in STUB]
        elif line.strip() == END:
            inside = False
        elif not (inside and region == stubbed):
            lines.append(line)
    return "\n".join(lines)


def submission(release_nb, lesson: str, stub: tuple[str, int] | None = None):
    """The released notebook with every answer filled in, except the region ``stub``."""
    answers = {grade_id(c): c.source for c in instructor(lesson).cells if is_solution(c)}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        if is_solution(cell):
            cell_id = grade_id(cell)
            cell.source = answer(answers[cell_id], stub[1] if stub and stub[0] == cell_id else None)
    return nb


def hidden_lines(cells, min_length: int) -> set[str]:
    """Lines (stripped, at least ``min_length`` long) that only the hidden tests of ``cells`` hold:
    a line that also stands in visible code may show anywhere."""
    public = {line.strip() for c in cells for line in HIDDEN.sub("", c.source).splitlines()}
    return {line.strip() for c in cells if is_graded(c) for block in HIDDEN.findall(c.source)
            for line in block.splitlines() if len(line.strip()) >= min_length} - public


def hidden_test_lines(lesson: str) -> set[str]:
    """A lesson's hidden-test lines that would give a test away if a page showed them (no comments)."""
    return {line for line in hidden_lines(instructor(lesson).cells, 10) if not line.startswith("#")}


def imported_modules(lesson: str) -> frozenset[str]:
    """What the instructor's notebook of a lesson imports, as dotted names (``torch``, ``torch.nn``
    for ``from torch import nn``), read from its code cells; a line IPython would run as a magic is skipped."""
    modules = set()
    for cell in instructor(lesson).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return frozenset(modules)


def clean_metadata(nb) -> None:
    """Keep notebook metadata stable so that diffs show content changes only."""
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata.get("language_info", {}).pop("version", None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
