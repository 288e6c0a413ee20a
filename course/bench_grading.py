"""Benchmark of grading (not a test): the course's command against plain nbgrader, side by side.

    python -m course bench-grading [--lessons ID ...] [--per-lesson N] [--class-lesson ID]
                                   [--students N ...] [--nbgrader-up-to N] [--jobs N]
    (or: make bench-grading)

Each class is made of identical submissions: the instructor's answers in the student version
(``course.cells.submission`` makes them). The same class is graded twice, one after the other, each in
a fresh course folder:

- nbgrader: ``nbgrader autograde LESSON`` then ``nbgrader generate_feedback LESSON``, the way
  nbgrader grades a class: one student after another, a new kernel each, no sandbox (each command
  started as the course starts nbgrader's commands, ``course.lessons.NBGRADER``: 1.2 s less each);
- course:   ``python -m course grade``: Dask workers (one per core), every kernel in its
  sandbox, forked from a warm process where the machine allows it (grading/forkserver.py).

Each side is timed twice: its grading (nbgrader's two commands; the course's workers, grading and
merge, its fork server having started while nbgrader recorded the gradebook) and its whole work
from an empty course folder (nbgrader's ``generate_assignment`` too; the whole ``grade`` command).

First every lesson with --per-lesson students (default 10), then --class-lesson (default
01-tensors) with each of --students (default 10, 100, 500; a class already timed is not
timed again). nbgrader
grades the classes of at most --nbgrader-up-to students (default 100: its 500 would take
about 40 min on two cores). Both runs must grade every student to full marks; a run that
does not is reported, never timed as if it had. Results are printed and written to
benchmarks/grading.json and benchmarks/grading.md.
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import nbformat

from course import cells
from course.grading import CourseFolder, grade
from course.grading.forkserver import unavailable as no_forking
from course.grading.sandbox import protections
from course.lessons import nbgrader
from course.paths import lesson_ids, student_notebook, write_benchmark


def make_class(lesson: str, students: int, folder: Path) -> Path:
    answers = cells.submission(nbformat.read(student_notebook(lesson), as_version=4), lesson)
    for k in range(students):
        path = folder / f"student{k:03d}" / f"{lesson}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(answers, path)
    return folder


def with_nbgrader(lesson: str, submissions: Path, root: Path) -> tuple[float, float, int]:
    """Seconds for nbgrader's autograde + generate_feedback of the class, and with generate_assignment too;
    students at full marks."""
    course = CourseFolder(root)
    start = time.monotonic()
    course.release(lesson)
    release = time.monotonic() - start
    students = sorted(p.name for p in submissions.iterdir())
    for student in students:
        course.submit(student, lesson, nbformat.read(submissions / student / f"{lesson}.ipynb", as_version=4))
    start = time.monotonic()
    nbgrader("autograde", lesson, cwd=course.root)
    nbgrader("generate_feedback", lesson, cwd=course.root)
    seconds = time.monotonic() - start
    results = [course.result(lesson, s) for s in students]
    return seconds, release + seconds, sum(r.status == "graded" and r.score == r.max_score > 0 for r in results)


def with_course(lesson: str, submissions: Path, root: Path, jobs: int | None) -> tuple[float, float, int, dict]:
    """Seconds for the grade command's workers, grading, feedback and merge, and for the whole command;
    students at full marks."""
    summary = grade(lesson, submissions, root, jobs=jobs, progress=False)
    full = sum(r.status == "graded" and r.score == r.max_score > 0 for r in summary.results.values())
    seconds = sum(summary.seconds[phase] for phase in ("start workers", "grading", "merge"))
    return seconds, sum(summary.seconds.values()), full, {k: round(v, 1) for k, v in summary.seconds.items()}


def bench(lesson: str, students: int, jobs: int | None, run_nbgrader: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        submissions = make_class(lesson, students, Path(tmp) / "class")
        run = {"lesson": lesson, "students": students, "load_average_before": round(os.getloadavg()[0], 2)}
        if run_nbgrader:
            seconds, whole, full = with_nbgrader(lesson, submissions, Path(tmp) / "nbgrader")
            run["nbgrader"] = {"seconds": round(seconds, 1), "per_submission": round(seconds / students, 2),
                               "whole_seconds": round(whole, 1), "full_marks": full}
        seconds, whole, full, phases = with_course(lesson, submissions, Path(tmp) / "course", jobs)
        run["course"] = {"seconds": round(seconds, 1), "per_submission": round(seconds / students, 2),
                         "whole_seconds": round(whole, 1), "full_marks": full, "phases": phases}
    return run


def row(run: dict) -> list[str]:
    def cells(side: dict | None) -> list[str]:
        if side is None:
            return ["not run", ""]
        missing = run["students"] - side["full_marks"]
        wrong = f" ({missing} NOT full marks)" if missing else ""
        return [f"{side['seconds']:.1f}", f"{side['per_submission']:.2f}{wrong}"]

    nb, course = run.get("nbgrader"), run["course"]
    ratio = f"{nb['per_submission'] / course['per_submission']:.1f}x" if nb else ""
    whole = f"{course['whole_seconds']:.1f}"
    if nb:
        whole = f"{nb['whole_seconds']:.1f} / {whole} = {nb['whole_seconds'] / course['whole_seconds']:.1f}x"
    return [run["lesson"], str(run["students"]), *cells(nb), *cells(course), ratio, whole,
            f"{run['load_average_before']:.2f}"]


HEADER = ["lesson", "students", "nbgrader s", "nbgrader s/submission", "course s", "course s/submission",
          "speed-up", "whole commands, s", "load before"]


def add_arguments(parser: argparse.ArgumentParser, lesson_type) -> None:
    """The `bench-grading` command's options (``lesson_type`` checks a lesson id)."""
    parser.add_argument("--lessons", nargs="*", type=lesson_type, default=None,
                        help="lessons timed one by one (default: all)")
    parser.add_argument("--per-lesson", type=int, default=10, help="students per lesson (default: %(default)s)")
    parser.add_argument("--class-lesson", type=lesson_type, default="01-tensors",
                        help="the lesson timed at each class size")
    parser.add_argument("--students", type=int, nargs="*", default=[10, 100, 500],
                        help="class sizes (default: 10 100 500)")
    parser.add_argument("--nbgrader-up-to", type=int, default=100,
                        help="largest class nbgrader grades too (default: %(default)s)")
    parser.add_argument("--jobs", type=int, help="students the course grades at once (default: one per CPU core)")
    parser.set_defaults(handler=command)


def command(*, lessons: list[str] | None, per_lesson: int, class_lesson: str, students: list[int],
            nbgrader_up_to: int, jobs: int | None) -> int:
    """`python -m course bench-grading`: 1 when a class did not get full marks."""
    plan = [(lesson, per_lesson) for lesson in (lesson_ids() if lessons is None else lessons)]
    plan += [(class_lesson, n) for n in students if (class_lesson, n) not in plan]
    print(" | ".join(HEADER), flush=True)
    runs = []
    for lesson, size in plan:
        runs.append(bench(lesson, size, jobs, size <= nbgrader_up_to))
        print(" | ".join(row(runs[-1])), flush=True)
    off = [name for name, why in protections().items() if why]
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d"), "protections off": off, "kernels forked": not no_forking()}
    write(machine, runs)
    full = all(r["course"]["full_marks"] == r["students"]
               and r.get("nbgrader", {}).get("full_marks", r["students"]) == r["students"] for r in runs)
    return 0 if full else 1


def write(machine: dict, runs: list[dict]) -> None:
    """benchmarks/grading.json and a markdown table of it, benchmarks/grading.md."""
    lines = ["# Grading benchmark (`python -m course bench-grading`)", "",
             f"{machine['date']}, {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}. "
             f"Sandbox protections off: {', '.join(machine['protections off']) or 'none'}; kernels forked from a "
             f"warm process: {'yes' if machine['kernels forked'] else 'no'}.", "",
             "Each class is identical submissions (the instructor's answers in the student version), graded in "
             "one run twice, each time in a fresh course folder: *nbgrader* is `nbgrader autograde` then "
             "`nbgrader generate_feedback` (one student after another, no sandbox; each command started as the course "
             "starts nbgrader's, `course.lessons.NBGRADER`); *course* is `python -m course "
             "grade` (one Dask worker per core, each kernel sandboxed), from starting its workers to the last "
             "student's grades and feedback merged into the course folder (its fork server starts earlier, while "
             "nbgrader records the lesson's gradebook). *Seconds per submission*: wall time "
             "divided by the students. *Speed-up*: nbgrader's seconds per submission over the course's. "
             "*Whole commands*: nbgrader's `generate_assignment`, `autograde` and `generate_feedback` against the "
             "whole `grade` command (collecting, the gradebook, grading, the grades CSV and the class report). "
             "*Load before*: the machine's load average before the class, i.e. what else it was doing.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in runs]
    write_benchmark("grading", {"machine": machine, "runs": runs}, "\n".join(lines) + "\n")
