"""Grading on a real Dask cluster: a scheduler and two workers started with Dask's own command
line on 127.0.0.1 grade a class with exactly the local run's grades, and a worker killed in the
middle of the run loses no grade (the scheduler gives its job to the other worker). A real Dask
Gateway (dask-gateway-server, its local backend, the Kubernetes values' own extraConfig) grades
the same class by its cluster's gateway:// address, and refuses a cluster to a student."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import dask
import nbformat
import pytest
import yaml
from ports import free_ports

import simulate
from course import grading
from course.grading.engine import close_gateway
from course.paths import ROOT, student_notebook

LESSON = simulate.MESSY
BIN = Path(sys.executable).parent
CHOSEN = ("full", "untouched", "partial", "wrong-shape", "wrong-dtype", "off-by-one", "kernel-killer", "sys-exit")
ON_THE_GATEWAY = ("full", "partial", "kernel-killer", "sys-exit")  # fewer: the same path, a shorter test


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


@pytest.fixture(scope="module")
def graded_locally(engine, tmp_path_factory):
    """A class of eight (attackers and a kernel killer included), its folder and the local run's grades."""
    folder = tmp_path_factory.mktemp("dask-class")
    release_nb = nbformat.read(student_notebook(LESSON), as_version=4)
    everyone = simulate.messy_class(release_nb, folder / "unused", 1, "unused")
    simulate.write_class(folder / "class", {s: everyone[s] for s in CHOSEN})
    local = grading.grade(LESSON, folder / "class", folder / "local", engine=engine, progress=False)
    assert local.counts() == {"graded": len(CHOSEN), "failed": 0, "not graded": 0}, local.text()
    expected = {s: everyone[s][2] for s in CHOSEN}
    totals = {s: float(e[0] if isinstance(e, tuple) else e) for s, e in expected.items()}
    assert {s: float(r["total"]) for s, r in rows(local).items()} == totals
    return folder / "class", rows(local)


def some_of(submissions: Path, students: tuple[str, ...], folder: Path) -> Path:
    """A class of only these students' submissions."""
    for student in students:
        shutil.copytree(submissions / student, folder / student)
    return folder


def test_a_dask_cluster_grades_like_the_local_run_and_a_lost_worker_loses_no_grade(cluster, graded_locally,
                                                                                    tmp_path):
    address, workers = cluster
    submissions, local = graded_locally
    killer = threading.Thread(target=kill_after_the_first_grade, args=(workers[0], tmp_path / "remote"))
    killer.start()
    remote = grading.grade(LESSON, submissions, tmp_path / "remote", scheduler=address, progress=False)
    killer.join()

    assert workers[0].poll() is not None, "the worker was to be killed during the run"
    assert remote.counts() == {"graded": len(CHOSEN), "failed": 0, "not graded": 0}, remote.text()
    assert rows(remote) == local


def healthy(url: str) -> bool:
    """The gateway answers through its proxy (the proxy listens before it routes to the gateway)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


# The gateway of the test: local processes instead of pods, a password instead of the hub's login
# (the instructor is an admin, as on the hub); then the Kubernetes values' extraConfig, as deployed.
GATEWAY_CONFIG = """
from dask_gateway_server.auth import SimpleAuthenticator
from dask_gateway_server.models import User


class ClassAuthenticator(SimpleAuthenticator):
    async def authenticate(self, request):
        user = await super().authenticate(request)
        return User(user.name, admin=user.name == "ada")


c.DaskGateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{http}"
c.Proxy.tcp_address = "127.0.0.1:{tcp}"
c.DaskGateway.authenticator_class = ClassAuthenticator
c.SimpleAuthenticator.password = {password!r}
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.UnsafeLocalBackend.clusters_directory = {clusters!r}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """dask-gateway-server on 127.0.0.1: its HTTP address, its scheduler proxy, the password."""
    folder = tmp_path_factory.mktemp("gateway")
    api = free_ports(3)
    http, tcp, password = api + 1, api + 2, uuid.uuid4().hex
    values = yaml.safe_load((ROOT / "hub" / "kubernetes" / "dask-gateway-values.yaml").read_text())
    config = GATEWAY_CONFIG.format(api=api, http=http, tcp=tcp, password=password, clusters=str(folder / "clusters"))
    config += "\n".join(code for _, code in sorted(values["gateway"]["extraConfig"].items()))
    (folder / "dask_gateway_config.py").write_text(config)
    log = (folder / "gateway.log").open("w")
    server = subprocess.Popen([str(BIN / "dask-gateway-server"), "-f", str(folder / "dask_gateway_config.py")],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    try:
        deadline = time.monotonic() + 60
        while not healthy(f"http://127.0.0.1:{http}/api/health") and time.monotonic() < deadline:
            assert server.poll() is None, (folder / "gateway.log").read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{http}", f"gateway://127.0.0.1:{tcp}", password
    finally:
        server.terminate()  # it stops its clusters first
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_a_dask_gateway_cluster_grades_like_the_local_run_and_only_an_instructor_starts_one(gateway, graded_locally,
                                                                                           tmp_path):
    from dask_gateway import BasicAuth, Gateway

    address, proxy, password = gateway
    submissions, local = graded_locally
    student, instructor = (Gateway(address, proxy_address=proxy, auth=BasicAuth(name, password))
                           for name in ("ana", "ada"))
    try:
        with pytest.raises(Exception, match="ana may not start a cluster"):
            student.new_cluster()
        cluster = instructor.new_cluster()
    finally:
        close_gateway(student)
        close_gateway(instructor)
    try:
        cluster.scale(2)
        with cluster.get_client(set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        # As on a DaskHub: the grading command finds the gateway and the credentials in Dask's configuration.
        settings = {"gateway.address": address, "gateway.auth.type": "basic",
                    "gateway.auth.kwargs": {"username": "ada", "password": password}}
        with dask.config.set(settings):
            few = some_of(submissions, ON_THE_GATEWAY, tmp_path / "class")
            remote = grading.grade(LESSON, few, tmp_path / "gateway", scheduler=cluster.scheduler_address,
                                   progress=False)
    finally:
        close_gateway(cluster, shutdown=True)
    assert cluster.scheduler_address.startswith(f"{proxy}/")
    assert remote.counts() == {"graded": len(ON_THE_GATEWAY), "failed": 0, "not graded": 0}, remote.text()
    assert rows(remote) == {s: local[s] for s in ON_THE_GATEWAY}


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
