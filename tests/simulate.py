"""Simulated student submissions, made from the real lessons.

A submission starts from the student version that nbgrader releases and fills its
solution cells from the instructor's notebook, the way a student who found the
intended answers would.
"""

import copy
import re

import nbformat

from course.paths import solution_notebook

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")


def grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def is_solution(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def instructor(lesson: str):
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
