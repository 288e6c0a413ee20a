"""Where grading jobs run: Dask, on this machine or on a cluster.

By default ``Engine()`` starts a Dask ``LocalCluster`` on 127.0.0.1 (one worker process per
core, one job at a time each) and stops it afterwards. Other users of the machine (students on
the class's hub) must not run code in its workers, which run as the grader: it speaks TLS with a
certificate made for this run and kept in memory, so only this process's client gets in, and
its HTTP servers serve nothing. ``Engine(scheduler="tls://host:8786")``
sends the same jobs to a running Dask cluster instead: ``dask scheduler`` and ``dask worker``
by hand, dask-jobqueue on Slurm, dask-kubernetes; and a Dask Gateway cluster by the address it
gives (``gateway://proxy:port/name``), with the gateway's address and credentials from Dask's
configuration, as a DaskHub sets them. Its workers need the course's environment and data (the
same image), not the course folder: a job carries its submission and the lesson's gradebook as
data and returns its results as data.

Every worker imports nbgrader once, before its first job. The workers of the local cluster fork
their kernels from one fork server (forkserver.py) that this process starts first, so that the
lesson's imports go on while the workers start (the grade command starts it earlier still, while
nbgrader records the lesson's gradebook); a cluster's workers elsewhere each have their own. A
job that fails for a reason that is not the student's (``NotTheStudentsFault``) is retried; a
worker that is lost takes no grade with it: the scheduler runs its job again on another worker.
A job that still cannot run is reported ``not graded``, never as the student's failure.
"""

import dataclasses
import logging
import os
import sys

from course.grading import forkserver
from course.grading.worker import Job, NotTheStudentsFault, Outcome, grade_job, new_fork_server, warm_up

RETRIES = 2  # more tries of a job that failed through no fault of the student


class ClusterUnreachable(Exception):
    """The cluster given with --scheduler cannot be used; the message says what to check."""


class Engine:
    def __init__(self, scheduler: str | None = None, workers: int | None = None, modules: frozenset[str] = frozenset(),
                 fork_server: forkserver.ForkServer | None = None):
        """``modules``: what the lessons to grade import (cells.imported_modules), for the fork server to preload;
        ``fork_server``: one started already (the grade command starts it before the gradebook phase), now the
        engine's to stop."""
        self.scheduler, self.workers, self.modules = scheduler, workers, modules
        self.cluster = self.client = self.gateway_cluster = None
        self.fork_server = fork_server

    def __enter__(self) -> "Engine":
        import dask
        from distributed import Client, LocalCluster
        from distributed.security import Security

        if self.scheduler and self.scheduler.startswith("gateway://"):
            self.gateway_cluster = gateway_cluster(self.scheduler)
            self.client = self.gateway_cluster.get_client(set_as_default=False)
        elif self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout=30)
            except (OSError, TypeError) as error:  # TypeError: tls:// without certificates
                raise ClusterUnreachable(f"no Dask scheduler answered at {self.scheduler} ({error}): is it running, "
                                         "and is this the address it printed, with its protocol (tls:// or "
                                         "tcp://) and, for TLS, its certificates in Dask's configuration?") from error
        else:
            # Dask's nannies write variables for their workers (OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_,
            # PYTHONHASHSEED) into this process's own environment, where every later child inherits them:
            # a notebook run from here afterwards trained three times slower. The workers need none
            # (each kernel gets an environment of its own, worker.kernel_env): none is set, even when a
            # nanny restarts its worker, and what Dask writes anyway is undone.
            self.fork_server = local_fork_server(self.modules, self.fork_server)  # first: it imports meanwhile
            environ = dict(os.environ)
            with dask.config.set({"distributed.nanny.pre-spawn-environ": {}, "distributed.scheduler.http.routes": [],
                                  "distributed.worker.http.routes": []}):
                self.cluster = LocalCluster(n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1,
                                            processes=True, host="127.0.0.1", dashboard_address=None,
                                            # its HTTP server (no routes) on a free port, not on 8787
                                            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                                            security=Security.temporary(),
                                            silence_logs=logging.CRITICAL,  # a job's failure comes back as its outcome
                                            memory_limit=0)
            os.environ.clear()
            os.environ.update(environ)
            self.client = Client(self.cluster)
        self.client.run(warm_up, on_error="return")  # a worker lost meanwhile is the scheduler's to handle
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self.cluster:
            self.cluster.close()
        if self.gateway_cluster:
            close_gateway(self.gateway_cluster)  # the cluster keeps running: it is not ours to stop
        if self.fork_server:
            self.fork_server.stop()

    @property
    def size(self) -> int:
        """How many jobs run at once."""
        return sum(w["nthreads"] for w in self.client.scheduler_info(n_workers=-1)["workers"].values())

    def run(self, jobs: list[Job], progress: bool = True):
        """Run the jobs; yield each Outcome as it comes, with a progress bar and an ETA on stderr."""
        from distributed import as_completed
        from tqdm import tqdm

        if self.fork_server:
            self.fork_server = local_fork_server(frozenset().union(*(job.modules for job in jobs)), self.fork_server)
            jobs = [dataclasses.replace(job, fork_server=self.fork_server.address) for job in jobs]
        futures = {self.client.submit(grade_job, job, key=f"grade-{job.lesson}-{job.student}-{id(job)}",
                                      retries=RETRIES, pure=False): job for job in jobs}
        with tqdm(total=len(jobs), desc=f"grading {jobs[0].lesson}" if jobs else "grading", unit="student",
                  file=sys.stderr, disable=not progress or not jobs, dynamic_ncols=True) as bar:
            for future in as_completed(futures, loop=self.client.loop):
                job = futures[future]
                try:
                    outcome = future.result()
                except NotTheStudentsFault as error:
                    outcome = not_graded(job, str(error))
                except Exception as error:  # noqa: BLE001 (a lost worker, a broken connection: not the student's)
                    outcome = not_graded(job, f"{type(error).__name__}: {error}")
                bar.update(1)
                yield outcome


def local_fork_server(modules: frozenset[str], server: forkserver.ForkServer | None = None):
    """This machine's fork server, running and preloading what lessons that import ``modules`` call for:
    ``server`` if it does, else a new one (``server`` stopped); None where kernels are not forked."""
    if forkserver.unavailable():
        return None
    server = (server or new_fork_server()).serving(modules)
    server.start()
    return server


def gateway_cluster(address: str):
    """The running Dask Gateway cluster whose scheduler address (``GatewayCluster.scheduler_address``)
    is ``gateway://proxy:port/name``. The gateway's own address and credentials come from Dask's
    configuration: ``gateway.address`` and ``gateway.auth`` (a DaskHub sets both for every user)."""
    import dask
    from dask_gateway import Gateway

    if not dask.config.get("gateway.address", None):
        raise ClusterUnreachable(f"to grade on the Dask Gateway cluster {address}, give the gateway's address in "
                                 "Dask's configuration: DASK_GATEWAY__ADDRESS=https://... (a DaskHub sets it, "
                                 "and the credentials: DASK_GATEWAY__AUTH__TYPE)")
    proxy, _, name = address.removeprefix("gateway://").partition("/")
    try:
        return Gateway(proxy_address=f"gateway://{proxy}").connect(name)
    except Exception as error:  # noqa: BLE001 (dask_gateway raises ValueError, HTTP and connection errors alike)
        raise ClusterUnreachable(f"the Dask Gateway at {dask.config.get('gateway.address')} gave no cluster "
                                 f"{name!r} ({type(error).__name__}: {error}): is it running (Gateway()."
                                 "list_clusters()), and are Dask's credentials (gateway.auth) yours?") from error


def close_gateway(gateway, shutdown: bool = False) -> None:
    """Close a dask_gateway Gateway or GatewayCluster once and for all (``shutdown``: the cluster too).

    Collected later, the Gateway would close itself again and fail, its loop gone ("Accessing the
    loop property while the loop is not running"): its close becomes a no-op once done."""
    gateway.close(shutdown=shutdown) if hasattr(gateway, "scheduler_address") else gateway.close()
    inner = getattr(gateway, "gateway", gateway)  # a cluster's own Gateway
    inner.close = lambda: None


def not_graded(job: Job, why: str) -> Outcome:
    return Outcome(job.student, status="not graded",
                   reason=f"not graded, through no fault of the student ({why[:200]}); run the command again")
