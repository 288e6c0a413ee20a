"""The command line (course/__main__.py): every command answers --help, and bad arguments get a
message that says what is wrong before anything runs."""

import pytest

from course.__main__ import MODULE_COMMANDS, build_parser, main
from course.paths import lesson_ids

COMMANDS = ["data", "figures", "execute", "release", "bench", "bench-validate", *(c[0] for c in MODULE_COMMANDS)]


def test_every_command_is_listed():
    parser = build_parser()
    assert set(parser._subparsers._group_actions[0].choices) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert f"python -m course {command}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["release", "99-nowhere"], "no lesson '99-nowhere' in solutions/ (the lessons: {lessons})"),
    (["grade", "99-nowhere", "."], "no lesson '99-nowhere' in solutions/"),
    (["grade", "01-tensors", "no-such-folder"], "no-such-folder does not exist"),
    (["grade", "01-tensors", ".", "--jobs", "2", "--scheduler", "tls://10.0.0.5:8786"],
     "argument --scheduler: not allowed with argument --jobs"),
    (["hub", "grade", "01-tensors", "--jobs", "2", "--scheduler", "tls://10.0.0.5:8786"],
     "argument --scheduler: not allowed with argument --jobs"),
    (["bench-grading", "--lessons", "6"], "no lesson '6' in solutions/"),
])
def test_bad_arguments_are_refused_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert message.format(lessons=", ".join(lesson_ids())) in capsys.readouterr().err


def test_a_command_gets_its_options_as_keywords(monkeypatch):
    """The handler of a module's command is called with its options by name (the hub's via its subcommand)."""
    import course.hub

    seen = {}
    monkeypatch.setattr(course.hub.Hub, "release", lambda hub, lesson: seen.update(root=hub.root, lesson=lesson) or "")
    assert main(["hub", "--root", "/tmp/a-hub", "release", "01-tensors"]) == 0
    assert seen == {"root": course.hub.Path("/tmp/a-hub"), "lesson": "01-tensors"}
