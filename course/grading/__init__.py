"""Grading a class: submissions in; grades, feedback and a class report out.

    python -m course grade LESSON SUBMISSIONS [--course-dir DIR] [--force] [--jobs N]
                           [--scheduler ADDRESS] [--timeout S] [--memory GIB]
    (or: make grade ASSIGNMENT=LESSON SUBMISSIONS=PATH)

The data flows through one file per step:

    collect.py   the class's files -> submitted/<student>/<lesson>/, each checked
    worker.py    a Job per student (submission + the lesson's gradebook, as bytes) -> an Outcome
                 (scores, graded notebook, feedback page), made by nbgrader in a scratch course,
    sandbox.py     with the student's kernel in a sandbox: its own user, files, network, limits
    forkserver.py  the kernel forked from a warm process with the lesson's imports done, where it can
    engine.py    where the jobs run: a Dask LocalCluster, or an existing cluster (--scheduler)
    merge.py     Outcomes -> the course's gradebook.db, autograded/, feedback/ (this process only)
    report.py    grades CSV, class report; Summary (below) is what the command prints
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course.cells import imported_modules
from course.data import sha256
from course.grading.collect import check_submission, checksum, collect, submission_files
from course.grading.merge import CourseFolder, Result, write_config
from course.grading.sandbox import Limits, describe_protections
from course.grading.worker import Job, Outcome
from course.paths import ROOT, solution_notebook

__all__ = ["CourseFolder", "Result", "Limits", "grade", "grade_students", "add_arguments", "command"]


def lesson_limits(lesson: str, memory_gib: float | None = None) -> Limits:
    """The sandbox's limits for a lesson: its notebook's ``grading.limits`` metadata, else the defaults."""
    meta = nbformat.read(solution_notebook(lesson), as_version=4).metadata.get("grading", {}).get("limits", {})
    limits = Limits(**meta)
    return Limits(**{**limits.__dict__, "memory_gib": memory_gib}) if memory_gib else limits


@dataclass
class Run:
    """What grading some students produced: their Outcomes and where the time went."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds, in this process
    at_once: int = 0  # jobs that ran at the same time

    @property
    def job_seconds(self) -> dict[str, float]:
        """Time spent inside the jobs, per phase, added up over all students."""
        total: dict[str, float] = {}
        for outcome in self.outcomes.values():
            for phase, seconds in outcome.seconds.items():
                total[phase] = total.get(phase, 0.0) + seconds
        return total

    @property
    def protections_off(self) -> dict[str, str]:
        """Each protection -> why it was off on some worker ('' when it was on everywhere)."""
        off: dict[str, str] = {}
        for outcome in self.outcomes.values():
            for name, why in outcome.protections_off.items():
                off[name] = off.get(name) or why
        return off


def grade_students(course: CourseFolder, lesson: str, students: list[str], engine=None, *,
                   scheduler: str | None = None, workers: int | None = None, cell_timeout: int | None = None,
                   limits: Limits | None = None, progress: bool = False, fork_server=None) -> Run:
    """Grade students whose submissions are in the course's submitted/ folder; merge the results.

    Without ``engine``, a local cluster for these jobs (or ``scheduler``'s), with ``fork_server`` if one was
    started already (engine.local_fork_server)."""
    from course.grading.engine import Engine

    run = Run()
    jobs, template = [], course.template()
    source = {p.name: p.read_bytes() for p in solution_notebook(lesson).parent.iterdir()
              if p.is_file() and p.suffix != ".ipynb"}
    limits = limits or lesson_limits(lesson)
    modules = imported_modules(lesson)
    for student in students:
        problem = check_submission(course.submitted(student, lesson), lesson)
        if problem:
            run.outcomes[student] = Outcome(student, status="failed", reason=problem)
        else:
            jobs.append(Job(lesson, student, submission_files(course.submitted(student, lesson)), template, source,
                            cell_timeout, limits, modules=modules))
    if not jobs:
        return run
    start = time.monotonic()
    own = engine is None
    engine = Engine(scheduler, workers, modules, fork_server) if own else engine
    if own:
        engine.__enter__()
    try:
        run.seconds["start workers"] = time.monotonic() - start
        run.at_once = engine.size
        threads = max(1, (os.cpu_count() or 1) // run.at_once) if engine.cluster else 1
        jobs = [Job(**{**job.__dict__, "threads": threads}) for job in jobs]
        start, merging = time.monotonic(), 0.0
        for outcome in engine.run(jobs, progress=progress):
            merged = time.monotonic()
            if outcome.status == "graded":
                error = course.merge(lesson, outcome)
                if error:
                    outcome.status, outcome.reason = "not graded", error
            run.outcomes[outcome.student] = outcome
            merging += time.monotonic() - merged
        run.seconds["grading"] = time.monotonic() - start - merging
        run.seconds["merge"] = merging
    finally:
        if own:
            engine.__exit__(None, None, None)
    return run


@dataclass
class Summary:
    lesson: str
    course: CourseFolder
    results: dict[str, Result]  # every student in this run's submissions, graded now or before
    run: Run  # the students graded in this run
    seconds: dict[str, float]  # phase -> seconds, the whole command
    csv: Path
    report: Path

    def counts(self) -> dict[str, int]:
        statuses = [r.status for r in self.results.values()]
        return {s: statuses.count(s) for s in ("graded", "failed", "not graded")}

    def text(self) -> str:
        graded = len(self.run.outcomes)
        skipped = len(self.results) - graded
        counts = self.counts()
        grading = self.run.seconds.get("grading", 0.0)
        per = f" ({grading / graded:.1f} s per submission, {self.run.at_once} at a time)" if graded else ""
        lines = [f"{self.lesson}: {len(self.results)} students: " + ", ".join(f"{n} {s}" for s, n in counts.items())
                 + f". This run graded {graded} submissions and skipped {skipped} unchanged since their last "
                 f"grading: {sum(self.seconds.values()):.0f} s{per}."]
        lines += [f"  {r.status:<10}  {s}: {r.reason}" for s, r in sorted(self.results.items()) if r.reason]
        phases = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.seconds.items())
        inside = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.run.job_seconds.items())
        lines.append(f"time: {phases}" + (f" (inside the jobs, added up: {inside})" if inside else ""))
        if graded:
            lines += describe_protections(self.run.protections_off)
        root = self.course.root
        lines += [f"grades:   {self.csv.relative_to(root)}", f"report:   {self.report.relative_to(root)}",
                  f"feedback: feedback/<student>/{self.lesson}/{self.lesson}.html (in {root})"]
        return "\n".join(lines)


def grade(lesson: str, submissions: Path | None, course_dir: Path = ROOT, *, force: bool = False,
          jobs: int | None = None, scheduler: str | None = None, cell_timeout: int | None = None,
          memory_gib: float | None = None,
          engine=None, progress: bool = True) -> Summary:
    """Collect, autograde, write feedback, grades CSV and class report: the `grade` command.

    Without ``submissions``, what the course folder's submitted/ holds (nbgrader collect puts them there)."""
    from course.grading.engine import local_fork_server
    from course.grading.report import class_report, grades_table

    seconds: dict[str, float] = {}
    start = time.monotonic()
    course = CourseFolder(course_dir)
    out = course.root / "grades" / lesson
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "submissions.json"  # per student: what was graded, against which lesson version
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    students = (collect(lesson, submissions, course.root, write_config) if submissions
                else sorted(p.parent.name for p in (course.root / "submitted").glob(f"*/{lesson}") if p.is_dir()))
    seconds["collect"] = time.monotonic() - start
    # The fork server's imports (2-4 s of CPU) go on while nbgrader records the gradebook, which leaves a core idle.
    fork_server = local_fork_server(imported_modules(lesson)) if students and engine is None and not scheduler else None
    try:
        source = sha256(solution_notebook(lesson))
        if record.get("source") != source or not course.has(lesson):
            course.release(lesson)
            record["source"] = source
        seconds["gradebook"] = time.monotonic() - start - seconds["collect"]
        done = record.setdefault("students", {})
        now = {s: {"checksum": checksum(submission_files(course.submitted(s, lesson))), "source": source}
               for s in students}
        todo = [s for s in students if force or {k: done.get(s, {}).get(k) for k in now[s]} != now[s]
                or done[s].get("status") != "failed" and course.result(lesson, s).status != "graded"]
        run = grade_students(course, lesson, todo, engine, scheduler=scheduler, workers=jobs,
                             cell_timeout=cell_timeout, limits=lesson_limits(lesson, memory_gib), progress=progress,
                             fork_server=fork_server)
    finally:
        if fork_server:  # the engine stopped it already, unless nobody was graded
            fork_server.stop()
    seconds.update(run.seconds)
    start = time.monotonic()
    for student, outcome in run.outcomes.items():
        done[student] = {**now[student], "status": outcome.status, "reason": outcome.reason}
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    everyone = {s: course.result(lesson, s, e.get("reason", "")) if e.get("status") == "graded"
                else Result(s, e.get("status", "failed"), e.get("reason", e.get("error", "")))
                for s, e in sorted(done.items())}
    points = course.points(lesson)
    table = grades_table(everyone, points)
    csv = out / "grades.csv"
    table.to_csv(csv, index=False)
    report = class_report(table, lesson, points, out)
    seconds["report"] = time.monotonic() - start
    summary = Summary(lesson, course, {s: everyone[s] for s in students}, run, seconds, csv, report)
    (out / "summary.txt").write_text(summary.text() + "\n")
    return summary


def add_grading_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that grades (here, and `python -m course hub grade`), named as grade() names
    them."""
    parser.add_argument("--force", action="store_true", help="regrade every student, changed or not")
    where = parser.add_mutually_exclusive_group()  # a cluster given with --scheduler has its own size
    where.add_argument("--jobs", type=int, help="students graded at once on this machine (default: one per CPU core)")
    where.add_argument("--scheduler", help="grade on a running Dask cluster: its scheduler's address, "
                                           "e.g. tls://10.0.0.5:8786 (default: a local cluster for this run)")
    parser.add_argument("--timeout", type=int, dest="cell_timeout",
                        help="seconds per cell (default: nbgrader_config.py's)")
    parser.add_argument("--memory", type=float, dest="memory_gib",
                        help="GiB of memory per submission (default: the lesson's, else 4)")


def existing_path(text: str) -> Path:
    """An argparse type: a path that exists."""
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return Path(text)


def add_arguments(parser: argparse.ArgumentParser, lesson_type) -> None:
    """The `grade` command's arguments (``lesson_type`` checks a lesson id)."""
    parser.add_argument("lesson", type=lesson_type, help="the lesson (nbgrader assignment), e.g. 01-tensors")
    parser.add_argument("submissions", type=existing_path,
                        help="a folder of per-student folders, or an LMS zip or folder")
    parser.add_argument("--course-dir", type=Path, default=ROOT,
                        help="the nbgrader course folder for gradebook, feedback and grades (default: %(default)s)")
    add_grading_options(parser)
    parser.set_defaults(handler=command)


def command(*, lesson: str, submissions: Path, course_dir: Path, **options) -> int:
    """`python -m course grade`: grade, print the summary; 1 when a student could not be graded."""
    from course.grading.engine import ClusterUnreachable

    try:
        summary = grade(lesson, submissions, course_dir, **options)
    except ClusterUnreachable as error:
        print(f"grade: error: {error}", file=sys.stderr)
        return 1
    print(summary.text())
    return 1 if summary.counts()["not graded"] else 0
