"""Benchmark of grading (not a test): seconds per submission, per lesson and per class size.

    python -m course bench-grading [--lessons ID ...] [--per-lesson N] [--class-lesson ID] [--students N ...]
    (or: make bench-grading)

Each run is the `grade` command on a fresh course folder with a class of identical
submissions, the instructor's answers in the student version (tests/simulate.py makes them),
all cores at work. First every lesson with --per-lesson students (default 2: one round on two
cores), then --class-lesson (default 01-tensors) at each --students size (default 10 and 100),
to show how the cost grows with the class. Results are printed and written to
benchmarks/grading.json and benchmarks/grading.md. The 100-student run takes minutes.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course.grading import grade
from course.paths import BENCHMARKS, ROOT, lesson_ids, student_notebook

sys.path.insert(0, str(ROOT / "tests"))  # tests/simulate.py makes the submissions
import simulate  # noqa: E402


def bench(lesson: str, students: int, jobs: int | None = None) -> dict:
    """Grade ``students`` copies of the instructor's answers to ``lesson`` in a fresh course folder."""
    answers = simulate.submission(nbformat.read(student_notebook(lesson), as_version=4), lesson)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        for k in range(students):
            path = Path(tmp) / "class" / f"student{k:03d}" / f"{lesson}.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(answers, path)
        start = time.monotonic()
        summary = grade(lesson, Path(tmp) / "class", Path(tmp) / "course", jobs=jobs)
        seconds = time.monotonic() - start
    grading = summary.run.seconds["grading"]
    scores = {r.score for r in summary.results.values() if r.status == "graded"}
    return {"lesson": lesson, "students": students, "jobs": jobs or os.cpu_count(), "seconds": round(seconds, 1),
            "grading_seconds": round(grading, 1), "seconds_per_submission": round(grading / students, 2),
            "failed": students - summary.counts()["graded"], "scores": sorted(scores),
            "phases": {k: round(v, 1) for k, v in summary.seconds.items()}}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m course bench-grading", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="*", default=None, help="lessons timed one by one (default: all)")
    parser.add_argument("--per-lesson", type=int, default=2, help="students per lesson (default: %(default)s)")
    parser.add_argument("--class-lesson", default="01-tensors", help="the lesson timed at each class size")
    parser.add_argument("--students", type=int, nargs="*", default=[10, 100], help="class sizes (default: 10 100)")
    parser.add_argument("--jobs", type=int, help="students graded at once (default: one per CPU core)")
    args = parser.parse_args(argv)
    runs = []
    plan = [(lesson, args.per_lesson) for lesson in (lesson_ids() if args.lessons is None else args.lessons)]
    plan += [(args.class_lesson, n) for n in args.students]
    print(f"{'lesson':<20} {'students':>8} {'seconds':>8} {'s/submission':>12} {'failed':>6}  load before")
    for lesson, students in plan:
        load = os.getloadavg()[0]
        run = bench(lesson, students, args.jobs) | {"load_average_before": round(load, 2)}
        runs.append(run)
        print(f"{lesson:<20} {students:>8} {run['seconds']:>8.1f} {run['seconds_per_submission']:>12.2f} "
              f"{run['failed']:>6}  {load:.2f}", flush=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d")}
    write(machine, runs)
    print(f"written: {(BENCHMARKS / 'grading.md').relative_to(ROOT)}, {(BENCHMARKS / 'grading.json').relative_to(ROOT)}")
    return 0


def write(machine: dict, runs: list[dict]) -> None:
    """benchmarks/grading.json and a markdown table of it, benchmarks/grading.md."""
    BENCHMARKS.mkdir(exist_ok=True)
    (BENCHMARKS / "grading.json").write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")
    lines = ["# Grading benchmark (`python -m course bench-grading`)", "",
             f"{machine['date']}, {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}.", "",
             "Each run is the `grade` command on a fresh course folder with identical submissions (the "
             "instructor's answers in the student version), one student per core at a time. *Seconds*: the "
             "whole command (gradebook release, grading, feedback, grades CSV, class report). *Seconds per "
             "submission*: the grading and feedback of all students, wall time, divided by their number. "
             "*Load before*: the machine's load average before the run, i.e. what else it was doing.", "",
             "| lesson | students | seconds | seconds per submission | failed | load before |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['lesson']} | {r['students']} | {r['seconds']:.1f} | {r['seconds_per_submission']:.2f} | "
              f"{r['failed']} | {r['load_average_before']:.2f} |" for r in runs]
    (BENCHMARKS / "grading.md").write_text("\n".join(lines) + "\n")
