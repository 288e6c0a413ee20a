"""How long the Validate button takes, lesson by lesson (a benchmark that prints figures, not a test).

    python -m course bench-validate [LESSON ...] [--rounds N]      (or: make bench-validate)

The Validate button of JupyterLab posts to nbgrader's server extension, which builds a
``Validator`` from the Jupyter config path (here the course's ``.jupyter/``, so the course's
timeouts) and runs it on the notebook in the server's own process. This does the same for each
lesson's solution notebook: the kernel start, the lesson's short path (``NBGRADER_EXECUTION`` is
``validate``) and the checks, without the browser's round trip (``tests/test_browser.py`` times
that for one lesson). The lessons take turns, ``--rounds`` times (3 by default), so that a busy
moment of the machine spreads over them. Writes benchmarks/validate.md and .json.
"""

import os
import platform
import statistics
import time

from course.paths import ROOT, lesson_ids, load_average, solution_notebook, write_benchmark

LIMIT_SECONDS = 15.0  # issue 13: at most 15 s for any lesson on the 2-core machine


def validator():
    """A Validator with the settings the server extension loads: the Jupyter config path (see main)."""
    from jupyter_core.paths import jupyter_config_path
    from nbgrader.apps import NbGrader
    from nbgrader.validator import Validator

    app = NbGrader()
    app.config_file_paths.append(jupyter_config_path())  # as the server extension loads its settings
    app.load_config_file()
    return Validator(config=app.config)


def main(*, lessons: list[str], rounds: int = 3) -> int:
    lessons = lessons or lesson_ids()
    os.environ["JUPYTER_CONFIG_DIR"] = str(ROOT / ".jupyter")  # the course's settings, as `make lab` has them
    load_before = load_average()
    seconds = {lesson: [] for lesson in lessons}
    for round_number in range(1, rounds + 1):
        for lesson in lessons:
            start = time.perf_counter()
            result = validator().validate(str(solution_notebook(lesson)))
            seconds[lesson].append(round(time.perf_counter() - start, 2))
            if result:  # the instructor's answers must pass: anything reported is a broken lesson
                raise SystemExit(f"{lesson}: Validate reported {sorted(result)} on the instructor's answers")
            print(f"round {round_number}, {lesson}: {seconds[lesson][-1]:.1f} s", flush=True)
    rows = [{"lesson": lesson, "seconds": s, "median": statistics.median(s), "max": max(s)}
            for lesson, s in seconds.items()]
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rounds": rounds,
              "load_before": load_before, "limit_seconds": LIMIT_SECONDS, "lessons": rows}
    lines = ["# Validate, lesson by lesson", "",
             f"`python -m course bench-validate`: nbgrader's Validator as the Validate button runs it, on each "
             f"solution notebook, {rounds} rounds; {result['machine']}; load average before the run "
             f"{result['load_before']:.2f}. The limit: {LIMIT_SECONDS:.0f} s.", "",
             "| lesson | seconds, round by round | median | max |", "|---|---|---|---|"]
    lines += [f"| {r['lesson']} | {', '.join(f'{s:.1f}' for s in r['seconds'])} | {r['median']:.1f} | {r['max']:.1f} |"
              for r in rows]
    over = [r["lesson"] for r in rows if r["median"] > LIMIT_SECONDS]
    lines += ["", f"- lessons whose median is over {LIMIT_SECONDS:.0f} s: {', '.join(over) or 'none'}"]
    write_benchmark("validate", result, "\n".join(lines) + "\n")
    return 0
