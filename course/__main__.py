"""The course's command line: ``python -m course COMMAND [LESSON ...]``.

    data                 prepare Fashion-MNIST in data/ and verify every data file
    figures [LESSON ...] draw figures/*.png and embed them in the solution notebooks
    execute [LESSON ...] run solution notebooks in a fresh kernel and store their outputs
    release [LESSON ...] regenerate the student versions in notebooks/ from solutions/
    bench [--profile|--select]
                         time lesson 06's classic and lesson 07's fast CNN recipe side by side
    grade LESSON SUBMISSIONS [--course-dir DIR] [--force] [--jobs N | --scheduler ADDRESS] [--timeout S] [--memory GIB]
                         autograde a class: feedback, grades CSV, class report
    bench-grading [--students N ...]
                         time grading: seconds per submission, per lesson and per class size
    bench-validate [LESSON ...] [--rounds N]
                         time the Validate button's work on each lesson
    hub users|start|release|grade|feedback ...
                         the class on a JupyterHub on this machine (course/hub.py)

Without lesson ids, every lesson under solutions/ is processed. The Makefile has a
target for each command.
"""

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    # The environment's tools by name (nbgrader's gradebook runs `alembic`), as `make` provides them.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    command, lessons = (argv[0], argv[1:]) if argv else ("", [])
    if command == "data":
        from course.data import main as run
    elif command == "figures":
        from course.figures import main as run
    elif command == "bench":
        from course.bench import main as run
    elif command == "grade":
        from course.grading import main as run
    elif command == "hub":
        from course.hub import main as run
    elif command == "bench-grading":
        from course.bench_grading import main as run
    elif command == "bench-validate":
        from course.bench_validate import main as run
    elif command in ("execute", "release"):
        from course.lessons import main as lessons_main

        return lessons_main([command, *lessons])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return run(lessons)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
