"""Simulated student submissions, made from the real lessons.

A submission starts from the student version that nbgrader releases and fills its
solution cells from the instructor's notebook, the way a student who found the
intended answers would. messy_class() makes a class of lesson 01 with the wrong answers,
edited tests, crashes and attacks that real submissions bring, each with its expected grade.
"""

import copy
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat

from course.cells import grade_id, hidden_test_lines, is_solution, submission
from course.paths import solution_notebook


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def visible_text(page: str) -> str:
    """The text a reader sees on an HTML page, whitespace normalised."""
    parser = _Text()
    parser.feed(page)
    return " ".join("".join(parser.parts).split())


def shown_hidden_lines(page: str, lesson: str) -> list[str]:
    text = visible_text(page)
    return sorted(line for line in hidden_test_lines(lesson) if " ".join(line.split()) in text)


# A messy class of lesson 01-tensors (it grades fast): the submissions real students send.
MESSY = "01-tensors"
# Its graded cells, as the class report names them (ex7a: item a of exercise 7, a predict exercise
# scored item by item), with their points: 13 in all.
CELLS = {"ex1": 2, "ex2": 2, "ex3": 1, "ex4": 2, "ex5": 1, "ex6": 2, **{f"ex7{item}": 0.5 for item in "abcdef"}}
TOTAL = sum(CELLS.values())
POINTS = {n: sum(p for name, p in CELLS.items() if re.fullmatch(f"ex{n}[a-z]?", name)) for n in range(1, 8)}
WRONG = {  # wrong answers of the kinds students write
    "wrong-shape": (5, "def make_batch(n):\n    return torch.zeros(n, 32, 32, 3)"),
    "wrong-dtype": (2, "def iris_tensor(df, columns, n):\n    return torch.tensor(df[columns].iloc[:n].to_numpy())"),
    "off-by-one": (6, "def roll_dice(seed, n):\n    torch.manual_seed(seed)\n    return torch.randint(1, 6, (n,))"),
}


def ex(number: int, kind: str = "solution") -> str:
    return f"{MESSY}-ex{number}-{kind}"


def graded_cells() -> list[str]:
    """The grade ids of the lesson's test cells, in order."""
    return [f"{MESSY}-{name}-tests" for name in CELLS]


def edited(nb, changes: dict):
    """A copy of ``nb``: cells (by grade id) get a new source (str), an edit (callable) or go (None)."""
    nb = copy.deepcopy(nb)
    kept = []
    for cell in nb.cells:
        change = changes.get(grade_id(cell), cell.source)
        if callable(change):
            change(cell)
        elif change is not None:
            cell.source = change
        if change is not None:
            kept.append(cell)
    nb.cells = kept
    return nb


def messy_class(release_nb, course_dir, port: int, marker: str) -> dict:
    """Student -> (path in their folder, content, expected outcome) for lesson 01-tensors.

    Content is a notebook, raw bytes or None (an empty folder). The outcome is the score out
    of TOTAL, a piece of the reason given for a failed grading (a str), or (score, a piece of the
    reason a graded notebook stopped early). The attackers know where the course is
    (``course_dir``), a TCP listener on 127.0.0.1:``port``, and leave ``marker`` in the names of
    the files and processes they try to plant, for the test to look for.
    """
    gradebook, config = str(course_dir / "gradebook.db"), str(course_dir / "nbgrader_config.py")
    full = submission(release_nb, MESSY)
    solution = {grade_id(c): c.source for c in full.cells if is_solution(c)}

    def before(number, code):  # code put in front of an exercise's answer
        return {ex(number): code + "\n" + solution[ex(number)]}

    def after(number, code):
        return {ex(number): solution[ex(number)] + "\n" + code}

    def points(cell):
        cell.metadata.nbgrader["points"] = 100

    def attack(code, number=7):
        return edited(full, after(number, code))

    nb = f"{MESSY}.ipynb"
    students = {
        "full": (nb, full, TOTAL),
        "untouched": (f"{MESSY}/{nb}", release_nb, 0),
        "partial": (nb, edited(release_nb, {ex(n): solution[ex(n)] for n in (1, 3, 5, 7)}),
                    POINTS[1] + POINTS[3] + POINTS[5] + POINTS[7]),
        **{name: (nb, edited(full, {ex(n): code}), TOTAL - POINTS[n]) for name, (n, code) in WRONG.items()},
        # test cells edited: nbgrader restores them from the gradebook
        "tests-pass": (nb, edited(release_nb, {cell: "pass" for cell in graded_cells()}), 0),
        "assert-true": (nb, edited(full, {ex(5): WRONG["wrong-shape"][1], ex(5, "tests"): "assert True"}),
                        TOTAL - POINTS[5]),
        "deleted-tests": (nb, edited(full, {ex(4, "tests"): None, ex(6, "tests"): None,
                                            ex(6): WRONG["off-by-one"][1]}), TOTAL - POINTS[6]),
        "points-changed": (nb, edited(full, {ex(1, "tests"): points, ex(2): WRONG["wrong-dtype"][1]}),
                           TOTAL - POINTS[2]),
        "infinite-loop": (f"{MESSY}/{nb}", edited(full, before(3, "while True:\n    pass")), TOTAL - POINTS[3]),
        "sys-exit": (nb, edited(full, before(4, "import sys\nsys.exit('bye')")), TOTAL - POINTS[4]),
        # a kernel that dies costs the cells from the one it died in (ex6 and ex7: 5 points)
        "kernel-killer": (nb, edited(full, before(6, "import os\nos._exit(1)")),
                          (TOTAL - POINTS[6] - POINTS[7], "kernel died")),
        "memory-hog": (nb, edited(full, before(6, "import torch\nhog = torch.ones(2**29)  # 2 GiB")),
                       (TOTAL - POINTS[6] - POINTS[7], "used more than 1 GiB of memory")),
        "huge-output": (nb, attack("for i in range(300_000):\n    print('line', i)"), TOTAL),
        "not-json": (nb, b'{"cells": [ this is not JSON', "not a valid notebook"),
        "renamed": ("Copy of 01-tensors (2).ipynb", full, TOTAL),
        "empty": (None, None, "no notebook submitted"),
        # a link to the instructor's notebook: followed, the grader would grade the solution
        "linker": (nb, solution_notebook(MESSY), "is a link, not a file"),
        "noisy": (nb, edited(full, before(1, "import sys, warnings\nwarnings.warn('a warning')\n"
                                              "print('to stderr', file=sys.stderr)")), TOTAL),
        # attacks: each still gets its grade, and the test checks that the attack came to nothing
        "snoop": (nb, attack(SNOOP.format(gradebook=gradebook)), TOTAL),
        "intruder": (nb, attack(INTRUDER.format(marker=marker, gradebook=gradebook, config=config)), TOTAL),
        "caller": (nb, attack(CALLER.format(port=port)), TOTAL),
        "escapee": (nb, attack(ESCAPEE.format(marker=marker)), TOTAL),
        "fork-bomb": (nb, attack(FORK_BOMB), TOTAL),
        "spinner": (nb, edited(full, before(1, SPINNER)), TOTAL),
        "eavesdropper": (nb, edited(full, before(1, EAVESDROPPER)), TOTAL),
    }
    return students


# reads every gradebook and lesson notebook it can find, and prints the hidden tests it finds in them
SNOOP = """\
import os, pathlib, sqlite3
found = []
for top in ("../../..", "/", "/root", "/home", "/tmp", "/work", "/srv", {gradebook!r}):
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "usr", "dev", ".venv", "lib", "site-packages")]
        found += [os.path.join(folder, f) for f in files if f.endswith((".db", ".ipynb"))]
for path in sorted(set(found)):
    try:
        if path.endswith(".db"):
            for (source,) in sqlite3.connect(path).execute("select source from source_cell"):
                print(source)
        else:
            print(pathlib.Path(path).read_text())
    except Exception as error:
        print(path, type(error).__name__)"""
# writes outside its folder: the system's temporary folder, the course, the gradebook, its HOME's parent
INTRUDER = """\
import os, pathlib
for path in ("/tmp/{marker}-tmp.txt", "../../../{marker}-course.txt", {gradebook!r}, {config!r},
             os.path.expanduser("~/../{marker}-home.txt"), "/root/{marker}-root.txt"):
    try:
        pathlib.Path(path).write_text("planted by a simulated student")
    except OSError as error:
        print(path, type(error).__name__)"""
# connects to a listener of the grader's machine on 127.0.0.1
CALLER = """\
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"hello from a student")
except OSError as error:
    print("connection:", error)"""
# starts processes that leave the kernel's process group and session: setsid, a double fork, nohup
ESCAPEE = """\
import os, subprocess
subprocess.Popen(["setsid", "sleep", "3141"], start_new_session=True)
subprocess.Popen("nohup python3 -c 'import time; time.sleep(3600)  # {marker}' >/dev/null 2>&1 &", shell=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "2718"])
    os._exit(0)"""
# starts processes until the machine says no
FORK_BOMB = """\
import subprocess
children = 0
try:
    while children < 100_000:
        subprocess.Popen(["sleep", "600"])
        children += 1
except OSError as error:
    print("fork refused after", children, "children:", error)"""
# a thread that keeps spinning after its cell
SPINNER = """\
import threading
threading.Thread(target=lambda: [None for _ in iter(int, 1)], daemon=True).start()"""
# prints the source of every cell that runs after it, the test cells with their hidden tests included:
# as it is, as JSON, spaced out, reversed and in base64
EAVESDROPPER = """\
import base64, json
from IPython.display import Pretty, display
def leak(info):
    source = info.raw_cell
    print(source)
    for spelling in (json.dumps(source), " ".join(source), source[::-1], base64.b64encode(source.encode()).decode()):
        display(Pretty(spelling))  # an output each
get_ipython().run_line_magic("xmode", "Verbose")
get_ipython().events.register("pre_run_cell", leak)"""
ESCAPEE_COMMANDS = ("sleep 3141", "sleep 2718")  # with the marker: what must not outlive grading


def write_class(folder, students: dict) -> None:
    """Write submissions as <folder>/<student>/<path>, from messy_class()."""
    for student, (path, content, _) in students.items():
        (folder / student).mkdir(parents=True, exist_ok=True)
        if path is None:
            continue
        target = folder / student / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            target.symlink_to(content)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            nbformat.write(content, target)
