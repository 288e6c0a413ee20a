"""Grading on a real Dask cluster: a scheduler and two workers started with Dask's own command
line on 127.0.0.1 grade a class with exactly the local run's grades, and a worker killed in the
middle of the run loses no grade (the scheduler gives its job to the other worker)."""

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

import simulate
from course import grading
from course.paths import student_notebook

LESSON = simulate.MESSY
BIN = Path(sys.executable).parent


def start(*command: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "dask"), *command], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-job workers, each a process of its own, without nannies."""
    scheduler_file = tmp_path_factory.mktemp("dask") / "scheduler.json"
    processes = [start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                       "--scheduler-file", str(scheduler_file))]
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [start("worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-nanny",
                     "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{k}") for k in range(2)]
    processes += workers
    try:
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address, workers
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill_after_the_first_grade(worker: subprocess.Popen, course_dir: Path, seconds: float = 300) -> None:
    """SIGKILL a worker once the first student is graded: the worker is then busy with another job."""
    deadline = time.monotonic() + seconds
    while not any((course_dir / "autograded").glob("*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)


def rows(summary) -> dict:
    with summary.csv.open() as table:
        return {row["student"]: row for row in csv.DictReader(table)}


def test_a_dask_cluster_grades_like_the_local_run_and_a_lost_worker_loses_no_grade(cluster, engine, tmp_path):
    address, workers = cluster
    release_nb = nbformat.read(student_notebook(LESSON), as_version=4)
    everyone = simulate.messy_class(release_nb, tmp_path / "unused", 1, "unused")
    chosen = ("full", "untouched", "partial", "wrong-shape", "wrong-dtype", "off-by-one", "kernel-killer", "sys-exit")
    simulate.write_class(tmp_path / "class", {s: everyone[s] for s in chosen})

    local = grading.grade(LESSON, tmp_path / "class", tmp_path / "local", engine=engine, progress=False)
    killer = threading.Thread(target=kill_after_the_first_grade, args=(workers[0], tmp_path / "remote"))
    killer.start()
    remote = grading.grade(LESSON, tmp_path / "class", tmp_path / "remote", scheduler=address, progress=False)
    killer.join()

    assert workers[0].poll() is not None, "the worker was to be killed during the run"
    assert remote.counts() == {"graded": len(chosen), "failed": 0, "not graded": 0}, remote.text()
    assert rows(remote) == rows(local)
    expected = {s: everyone[s][2] for s in chosen}
    assert {s: float(r["total"]) for s, r in rows(remote).items()} == \
           {s: float(e[0] if isinstance(e, tuple) else e) for s, e in expected.items()}


def test_a_local_cluster_leaves_the_graders_environment_alone():
    """Dask's nannies would set OMP_NUM_THREADS=1 and MALLOC_TRIM_THRESHOLD_ here, in the grader's own
    environment, for every later child to inherit (a notebook run afterwards trained three times slower)."""
    from course.grading.engine import Engine

    before = dict(os.environ)
    with Engine(workers=1):
        assert dict(os.environ) == before
    assert dict(os.environ) == before


def test_only_the_grader_can_use_its_local_cluster(engine):
    """Anyone else on the machine (a student on the class's hub) who finds the scheduler's port gets
    no client: the cluster speaks TLS with a certificate of its own, and its HTTP server serves nothing."""
    import urllib.error
    import urllib.request

    from distributed import Client
    from distributed.security import Security

    address = engine.cluster.scheduler_address
    assert address.startswith("tls://127.0.0.1:"), address
    attempts = [(address.replace("tls://", "tcp://"), None), (address, None), (address, Security.temporary())]
    for attempt, security in attempts:
        # Refused however it fails (a TLS handshake error, a timeout, a closed comm): any exception will do,
        # success is what must not happen.
        with pytest.raises(Exception):  # noqa: B017 (see the comment above)
            with Client(attempt, security=security, timeout=5) as client:
                client.submit(os.getpid).result(timeout=5)
    port = engine.cluster.scheduler.http_server.port
    for path in ("/health", "/metrics", "/info/main/workers.html", "/json/identity.json"):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
