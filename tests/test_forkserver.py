"""A kernel forked by the fork server is the kernel a fresh start gives, in the same sandbox.

The same probe notebook is graded twice in this process (course.grading.worker.grade_job),
once with kernels started afresh and once forked (course/grading/forkserver.py), and what
the probe saw of itself must be the same: its user, capabilities, files, environment,
Python path, kernel settings (the short tracebacks that keep hidden tests out of feedback).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course import cells, grading
from course.bench_grading import make_class
from course.grading import CourseFolder, forkserver, lesson_limits, worker
from course.paths import student_notebook

LESSON = "00-setup"
PROBE = r'''
import json, os, sys
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
import matplotlib, random, torch
try:
    assert 1 + 1 == 3, "a hidden test's message"
except AssertionError:
    import traceback
    shown = traceback.format_exc()
print(json.dumps({
    "ids": [status[k].split() for k in ("Uid", "Gid", "Groups")],
    "capabilities": [status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs")],
    "root": sorted(os.listdir("/")), "cwd": os.getcwd(),
    "environment": sorted(os.environ), "path": sys.path,
    "user names": sorted(k for k in globals() if not k.startswith("_")),
    "xmode": get_ipython().InteractiveTB.mode, "history": get_ipython().history_manager.hist_file,
    "backend": matplotlib.get_backend(), "threads": torch.get_num_threads(), "random": random.random(),
}))
'''


def probe(tmp_path, fork: str, monkeypatch) -> dict:
    monkeypatch.setenv("COURSE_FORK_KERNELS", fork)
    monkeypatch.setattr(worker, "_server", None)
    course = CourseFolder(tmp_path / f"course-{fork}")
    course.release(LESSON)
    nb = cells.submission(nbformat.read(student_notebook(LESSON), as_version=4), LESSON)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    job = worker.Job(LESSON, "probe", {f"{LESSON}.ipynb": nbformat.writes(nb).encode()}, course.template(),
                     limits=lesson_limits(LESSON), modules=cells.imported_modules(LESSON))
    outcome = worker.grade_job(job)
    assert outcome.status == "graded" and outcome.score == outcome.max_score, outcome
    cell = nbformat.reads(outcome.notebook.decode(), as_version=4).cells[0]
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert text, cell.outputs
    seen = json.loads(text)
    seen["forked"] = worker._server is not None
    return seen


def test_a_forked_kernel_sees_what_a_fresh_kernel_sees(tmp_path, monkeypatch, sandboxed):
    if forkserver.unavailable():
        pytest.skip(f"kernels are not forked here: {forkserver.unavailable()}")
    fresh = probe(tmp_path, "0", monkeypatch)
    forked = probe(tmp_path, "1", monkeypatch)
    assert not fresh.pop("forked") and forked.pop("forked")
    assert fresh["ids"] == [["65534"] * 4, ["65534"] * 4, []]
    assert fresh["capabilities"] == ["0000000000000000"] * 4 + ["1"]
    assert fresh["xmode"] == "Minimal" and fresh["history"] == ":memory:"
    assert fresh.pop("random") != forked.pop("random")  # each kernel seeds its own
    for seen in (fresh, forked):  # each job has a scratch folder of its own
        assert seen.pop("cwd").endswith(f"/autograded/probe/{LESSON}")
    assert fresh == forked


def test_a_fork_server_preloads_the_libraries_of_the_lessons_it_serves(monkeypatch):
    assert forkserver.preload(cells.imported_modules("05-neural-networks")) == (
        "torch", "torch._dynamo", *forkserver.KERNEL_MODULES)  # it trains models: torch's compiler too
    assert "torch._dynamo" not in forkserver.preload(cells.imported_modules("01-tensors"))  # no model trained
    assert forkserver.preload(cells.imported_modules("06-cnn-classifier"))[:5] == (
        "numpy", "matplotlib.pyplot", "torch", "torch._dynamo", "torchvision")
    if forkserver.unavailable():
        pytest.skip(f"kernels are not forked here: {forkserver.unavailable()}")
    monkeypatch.setattr(worker, "_server", None)
    first = worker._fork_server(cells.imported_modules("01-tensors"))
    assert worker._fork_server(frozenset({"torch", "random"})) is first  # it has torch: the same server
    more = worker._fork_server(cells.imported_modules("06-cnn-classifier"))  # torchvision too: a new one
    assert more is not first
    assert more.modules == cells.imported_modules("01-tensors") | cells.imported_modules("06-cnn-classifier")
    more.start()  # the grading command's, say: its workers use it while it listens, else their own
    shared = worker._fork_server(frozenset(), more.address)
    assert type(shared) is forkserver.SharedForkServer and shared.address == more.address
    more.stop()
    assert worker._fork_server(frozenset(), more.address) is more


def test_a_fork_server_ends_and_removes_its_folder_when_its_owner_is_killed(tmp_path):
    if forkserver.unavailable():
        pytest.skip(f"kernels are not forked here: {forkserver.unavailable()}")
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    home, pid = owner.stdout.readline().split()
    assert Path(home, "socket").exists()
    owner.kill()  # no finalizer runs
    owner.wait()
    deadline = time.monotonic() + 60  # it notices once its imports are done
    while (Path(home).exists() or Path(f"/proc/{pid}").exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(home).exists(), f"the fork server's folder {home} outlived its owner"
    assert not Path(f"/proc/{pid}").exists(), f"the fork server {pid} outlived its owner"


OWNER = """
import time
from course.grading import worker
server = worker.new_fork_server()
server.start()
print(server.home, server.process.pid, flush=True)
time.sleep(600)
"""


def test_the_grade_command_starts_its_fork_server_before_the_gradebook_and_stops_it(tmp_path, monkeypatch):
    """Its imports go on while nbgrader records the gradebook; the workers use it; nothing is left after."""
    if forkserver.unavailable():
        pytest.skip(f"kernels are not forked here: {forkserver.unavailable()}")
    events, homes = [], []
    start, release = forkserver.ForkServer.start, CourseFolder.release

    def starting(server):
        start(server)
        if server.home not in homes:
            homes.append(server.home)
            events.append("fork server")

    monkeypatch.setattr(forkserver.ForkServer, "start", starting)
    monkeypatch.setattr(CourseFolder, "release", lambda *args: events.append("gradebook") or release(*args))
    submissions = make_class(LESSON, 2, tmp_path / "class")
    first = grading.grade(LESSON, submissions, tmp_path / "course", progress=False)
    assert {s: (o.status, o.reason) for s, o in first.run.outcomes.items()} == {
        s: ("graded", "") for s in ("student000", "student001")}
    assert all(r.score == r.max_score > 0 for r in first.results.values())
    assert events == ["fork server", "gradebook"], "one fork server, started before the gradebook, served the class"
    again = grading.grade(LESSON, submissions, tmp_path / "course", progress=False)  # nobody to grade
    assert not again.run.outcomes and events == ["fork server", "gradebook", "fork server"]
    left = [home for home in homes if Path(home).exists()]
    assert not left, f"fork server folders left after grading: {left}"
