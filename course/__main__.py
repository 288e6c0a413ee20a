"""The course's command line: ``python -m course COMMAND ...``; ``python -m course COMMAND --help``
describes each command. The Makefile has a target for each.

Commands that take lessons check their ids against solutions/ and, given none, process every
lesson. Modules are imported only by the command that needs them, so ``--help`` answers at once.
"""

import argparse
import os
import sys
from importlib import import_module
from pathlib import Path


def lesson_id(text: str) -> str:
    """An argparse type: a lesson id that exists under solutions/."""
    from course.paths import lesson_ids

    if text not in lesson_ids():
        raise argparse.ArgumentTypeError(f"no lesson {text!r} in solutions/ (the lessons: {', '.join(lesson_ids())})")
    return text


def _data() -> int:
    from course.data import main

    return main()


def _figures(*, lessons: list[str]) -> int:
    from course.figures import main

    return main(lessons=lessons)


def _execute(*, lessons: list[str]) -> int:
    from course.lessons import execute
    from course.paths import lesson_ids

    for lesson in lessons or lesson_ids():
        print(f"{lesson}: executed, outputs stored ({execute(lesson):.1f} s of cell time)")
    return 0


def _release(*, lessons: list[str]) -> int:
    from course.lessons import release
    from course.paths import ROOT, lesson_ids

    for lesson in lessons or lesson_ids():
        print(f"{lesson}: student version written to {release(lesson).relative_to(ROOT)}")
    return 0


def _bench(*, profile: bool, select: bool) -> int:
    from course.bench import main

    return main(with_profile=profile, selection=select)


def _bench_validate(*, lessons: list[str], rounds: int) -> int:
    from course.bench_validate import main

    return main(lessons=lessons, rounds=rounds)


# Commands with a module of their own: it defines add_arguments(parser, lesson_type), which declares
# the arguments and sets the parser's default ``handler``, a keyword-only function of them.
MODULE_COMMANDS = [
    ("grade", "course.grading", "autograde a class: feedback, grades CSV, class report"),
    ("bench-grading", "course.bench_grading", "time grading: seconds per submission, per lesson and per class size"),
    ("hub", "course.hub", "the class on a JupyterHub on this machine: users, start, release, grade, feedback"),
]


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``chosen``, the command given, gets its module's arguments."""
    parser = argparse.ArgumentParser(prog="python -m course", description="The PyTorch Basics course's tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, handler=None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    def lessons(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("lessons", nargs="*", type=lesson_id, metavar="LESSON", help="lesson ids (default: all)")

    command("data", "prepare Fashion-MNIST in data/ and verify every data file", _data)
    lessons(command("figures", "draw figures/*.png and embed them in the solution notebooks", _figures))
    lessons(command("execute", "run solution notebooks in a fresh kernel and store their outputs", _execute))
    lessons(command("release", "regenerate the student versions in notebooks/ from solutions/", _release))
    bench = command("bench", "time lesson 06's classic and lesson 07's fast CNN recipe side by side", _bench)
    bench.add_argument("--profile", action="store_true", help="first show where a training step's time goes")
    bench.add_argument("--select", action="store_true",
                       help="instead, train lesson 07's candidate recipes and score them on validation data")
    validate = command("bench-validate", "time the Validate button's work on each lesson", _bench_validate)
    lessons(validate)
    validate.add_argument("--rounds", type=int, default=3, help="rounds over the lessons (default: %(default)s)")

    for name, module, help in MODULE_COMMANDS:
        sub = command(name, help)
        if name == chosen:  # only the chosen command's module is imported, for its arguments
            import_module(module).add_arguments(sub, lesson_id)
    return parser


def main(argv: list[str]) -> int:
    # The environment's tools by name (nbgrader's gradebook runs `alembic`), as `make` provides them.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    options = vars(build_parser(argv[0] if argv else None).parse_args(argv))
    del options["command"]
    return options.pop("handler")(**options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
