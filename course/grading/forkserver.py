"""Kernels forked from a warm process: a lesson's imports done once per machine, not once per student.

A lesson's kernel spends about 2 s of CPU importing torch, pandas and matplotlib: more than
it spends running the cells of most lessons. Where the sandbox can be entered from outside
(Linux, as root, with bubblewrap), a fork server imports them once (``preload``: those of them
that the lessons it serves import) and makes each kernel as a copy of itself. The grading
command starts one for the workers of its local cluster, which share it (``SharedForkServer``:
the imports once per machine, not once per worker); a worker of another cluster starts its own.
Workers ask it for kernels over a unix socket in its folder, which only root can open.

    fork server   root, outside any sandbox, one thread, the lessons' libraries imported
      keeper      root: joins the job's cgroups and limits, starts bubblewrap with the job's
                  sandbox (sandbox.py builds it, as for a kernel started afresh) around a
                  placeholder process, enters its pid namespace, forks, waits, records the end
        kernel    enters the placeholder's other namespaces and root, drops to the sandbox's
                  user (no capabilities, no new privileges), takes the job's environment,
                  folder and standard streams, runs ipykernel

The kernel sees what a kernel started afresh sees and ends as it does: when it exits, the
keeper writes the verdict and kills the placeholder (which ends the pid namespace) and what
is left in the cgroups. The fork server never reads a student's file or the gradebook, so a
kernel inherits nothing but imported modules. Elsewhere kernels start as new processes.

Differences from a fresh kernel, none of which a lesson can see in its results: the preloaded
modules are in ``sys.modules`` before the first cell (their names are not defined), and
NumPy's BLAS keeps one thread.
"""

import atexit
import ctypes
import importlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner

from course.grading.sandbox import SANDBOX_UID, ended, enter_limits, protections

# Imported by every fork server: what every kernel imports (ipykernel's debugger: 0.2 s of CPU; not
# matplotlib_inline's backend: it hooks into the kernel's shell when first imported).
KERNEL_MODULES = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.debugger", "course")
# Imported by a fork server for lessons that import what each is paired with: about 3.5 s of CPU
# for all of them. torch._dynamo is torch's compiler, which torch imports on first use of an
# optimiser or of backward() with a gradient (1.3 s of CPU in every kernel otherwise): it goes with
# torch.nn, the lessons that train models. torchvision imports it anyway.
LIBRARIES = {"numpy": "numpy", "pandas": "pandas", "matplotlib.pyplot": "matplotlib", "torch": "torch",
             "torch._dynamo": "torch.nn", "torchvision": "torchvision"}


# The fork server's program. It imports this module and sandbox.py without running the grading
# package's __init__.py, whose imports (nbgrader, nbformat: 2 s of CPU) neither it nor a kernel needs.
SERVE = """
import importlib.util, sys
path = sys.path[1:]
grading = importlib.util.find_spec("course.grading")
sys.modules[grading.name] = importlib.util.module_from_spec(grading)
from course.grading.forkserver import serve
serve(path, address=sys.argv[1], modules=sys.argv[2:])
"""


def preload(modules: frozenset[str]) -> tuple[str, ...]:
    """What a fork server imports for kernels of lessons that import ``modules`` (cells.imported_modules)."""
    def imported(name: str) -> bool:
        return any(m == name or m.startswith(name + ".") for m in modules)

    return tuple(library for library, wanted in LIBRARIES.items() if imported(wanted)) + KERNEL_MODULES


_NAMESPACES = ("ipc", "uts", "net", "mnt")  # entered by the kernel; the pid namespace by the keeper
_PR_SET_NO_NEW_PRIVS, _PR_CAPBSET_DROP = 38, 24
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str:
    """'' when kernels can be forked here, else why they start afresh."""
    if os.environ.get("COURSE_FORK_KERNELS", "1") == "0":
        return "COURSE_FORK_KERNELS=0"
    off = protections()
    if not hasattr(os, "pidfd_open") or off["separate user"] or off["private filesystem"]:
        return "needs Linux 5.3 or later, root and bubblewrap"
    return ""


# ---------------------------------------------------------------- in the grading worker

class SharedForkServer:
    """A fork server on this machine that another process started and owns (the grading command's)."""

    def __init__(self, address: str):
        self.address = address

    def listening(self) -> bool:
        """Whether it is there to answer (it may still be importing)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            return connection.connect_ex(self.address) == 0

    def fork(self, spec_file: Path, argv: list[str]) -> "ForkedKernel":
        """A kernel with ``argv`` (ipykernel's arguments) in the sandbox that ``spec_file`` describes (the
        server answers once its imports are done)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(self.address)
            connection.sendall(json.dumps({"spec": str(spec_file), "argv": argv}).encode() + b"\n")
            reply = connection.makefile("rb").readline()
        if not reply.strip().isdigit():
            raise RuntimeError(f"the fork server did not fork: {reply!r} (its log: {Path(self.address).parent}/log)")
        return ForkedKernel(int(reply), json.loads(spec_file.read_text())["verdict"])


class ForkServer(SharedForkServer):
    """A fork server that this process owns: started on first use, restarted if it died, ended with it."""

    def __init__(self, env: dict, modules: frozenset[str] = frozenset()):
        super().__init__("")
        self.env = env  # the kernels' environment, less what is per job
        self.modules = modules  # what the lessons it serves import (it imports preload(modules))
        self.process: subprocess.Popen | None = None
        self.home = ""  # its folder: its socket and its log

    def preloads(self, modules: frozenset[str]) -> bool:
        """Whether it imports what it would for kernels of lessons that import ``modules``."""
        return set(preload(modules)) <= set(preload(self.modules))

    def serving(self, modules: frozenset[str]) -> "ForkServer":
        """This server if it preloads what lessons that import ``modules`` call for, else (this one stopped) a new
        one that preloads that too."""
        if self.preloads(modules):
            return self
        self.stop()
        return ForkServer(self.env, self.modules | modules)

    def fork(self, spec_file: Path, argv: list[str]) -> "ForkedKernel":
        self.start()
        return super().fork(spec_file, argv)

    def start(self) -> None:
        """Start the fork server unless it runs: it listens at once, and its imports (seconds) go on meanwhile."""
        if self.process is not None and self.process.poll() is None:
            return
        self.stop()
        self.home = home = tempfile.mkdtemp(prefix="course-forkserver-")
        self.address = f"{home}/socket"
        env = {**self.env, "HOME": home, "MPLCONFIGDIR": home, "TMPDIR": home, "OMP_NUM_THREADS": "1",
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}  # what ipykernel sets before any import
        with open(Path(home) / "log", "ab") as log:
            # Its standard input stays open, unwritten, while this process lives: it ends when that closes.
            self.process = subprocess.Popen([sys.executable, "-c", SERVE, self.address, *preload(self.modules)],
                                            env=env, cwd=home, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=log, start_new_session=True)
        atexit.register(self.stop)
        if self.process.stdout.readline() != b"listening\n":
            raise RuntimeError(f"the fork server did not start (see {home}/log)")

    def stop(self) -> None:
        """End the fork server and remove its folder (it does both itself when this process ends)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
            atexit.unregister(self.stop)
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)


class ForkProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, with the kernel forked by a fork server.

    Its kernel manager has ``fork_server`` and ``sandbox`` (worker.SandboxKernelManager)."""

    async def launch_kernel(self, cmd: list[str], **kwargs) -> dict:
        km = self.parent
        self.process = km.fork_server.fork(km.sandbox.spec_file, km.kernel_arguments)
        self.pid, self.pgid = self.process.pid, None  # signal the keeper, never a process group
        self.cwd = kwargs.get("cwd")
        return self.connection_info


class ForkedKernel:
    """What jupyter_client's provisioner needs of a Popen, for a kernel's keeper (the fork server's child)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, verdict_file: str):
        self.pid, self.verdict_file, self.returncode = pid, verdict_file, None
        self.pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None and select.select([self.pidfd], [], [], timeout)[0]:
            os.close(self.pidfd)
            try:
                self.returncode = json.loads(Path(self.verdict_file).read_text())["returncode"]
            except (OSError, ValueError, KeyError):
                self.returncode = -signal.SIGKILL  # the keeper itself was killed
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


# ---------------------------------------------------------------- the fork server's process

_set_by_imports: dict[str, str] = {}  # environment variables that importing KERNEL_MODULES set (ipykernel's debugger)


def serve(path: list[str], address: str, modules: list[str]) -> None:
    """Listen at ``address``, import ``modules``, then fork a keeper for each request and answer its pid; end,
    removing its folder, when the standard input closes (its owner ended, however it ended).

    ``path`` is sys.path as the interpreter started, less its first entry (the script's folder)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the system
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)  # a worker that asks while the imports go on waits for its answer
    os.write(1, b"listening\n")
    os.dup2(2, 1)  # what a library prints goes to the log
    for name in modules:
        before = dict(os.environ)
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        if name in KERNEL_MODULES:  # a library's (torch's compiler's cache folder) is set when a kernel imports it
            _set_by_imports.update((k, v) for k, v in os.environ.items() if before.get(k) != v)
    received: dict[socket.socket, bytes] = {}  # each connection -> what it sent so far
    while True:
        ready = select.select([0, listener, *received], [], [])[0]
        if 0 in ready:  # nothing is written there: it is readable once closed
            shutil.rmtree(os.path.dirname(address), ignore_errors=True)
            return
        if listener in ready:
            received[listener.accept()[0]] = b""
        for connection in (c for c in ready if c in received):
            try:
                data = connection.recv(65536)
            except OSError:  # the worker went away
                data = b""
            received[connection] += data
            if data and not received[connection].endswith(b"\n"):
                continue
            if data:
                request = json.loads(received[connection])
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        for own in (listener, *received):
                            own.close()
                        code = _keeper(request["spec"], request["argv"], path)
                    finally:
                        os._exit(code)
                connection.sendall(f"{pid}\n".encode())
            connection.close()
            del received[connection]


def _keeper(spec_file: str, argv: list[str], path: list[str]) -> int:
    """The kernel's parent: the job's cgroups and limits, its sandbox around a placeholder, the kernel, the end."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    spec = json.loads(Path(spec_file).read_text())
    enter_limits(spec)
    log = os.open(spec["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    info_read, info_write = os.pipe()
    ready_read, ready_write = os.pipe()
    hold_read, hold_write = os.pipe()  # the placeholder lives while this is open
    placeholder = subprocess.Popen(
        spec["bwrap"] + ["--info-fd", str(info_write), "--"] + spec["setpriv"]
        + ["/bin/sh", "-c", "echo ready; exec cat"],
        pass_fds=(info_write,), stdin=hold_read, stdout=ready_write, stderr=log, env=spec["env"])
    for fd in (info_write, ready_write, hold_read):
        os.close(fd)
    info = json.loads(_read_all(info_read))
    if os.read(ready_read, 6) != b"ready\n":  # the placeholder runs: the sandbox is complete
        raise RuntimeError("the sandbox did not start")
    os.close(ready_read)
    inside = info["child-pid"]
    _setns(inside, "pid")
    start = time.monotonic()
    kernel = os.fork()
    if kernel == 0:
        try:
            _kernel(spec, argv, path, inside, log)
        finally:
            os._exit(1)
    pidfd = os.pidfd_open(kernel)
    wall_exceeded = not select.select([pidfd], [], [], spec["limits"]["wall_seconds"])[0]
    if wall_exceeded:
        os.kill(kernel, signal.SIGKILL)
    status = os.waitpid(kernel, 0)[1]
    os.close(hold_write)
    placeholder.kill()
    placeholder.wait()
    return ended(spec, os.waitstatus_to_exitcode(status), wall_exceeded, time.monotonic() - start)


def _kernel(spec: dict, argv: list[str], path: list[str], inside: int, log: int) -> None:
    """In the keeper's pid namespace: enter the sandbox, become its user, run ipykernel, exit."""
    root = os.open(f"/proc/{inside}/root", os.O_RDONLY | os.O_DIRECTORY)
    for namespace in _NAMESPACES:
        _setns(inside, namespace)
    os.fchdir(root)
    os.chroot(".")
    os.chdir(spec["cwd"])
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, 1 << 16)  # the fork server's and keeper's pipes and files
    for capability in range(64):
        _libc.prctl(_PR_CAPBSET_DROP, capability)
    os.setgroups([])
    os.setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)  # clears every capability
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or os.getuid() != SANDBOX_UID:
        os._exit(1)
    os.environ.clear()
    os.environ.update(spec["env"], PWD=spec["cwd"])  # as bwrap --chdir sets it
    os.environ.update(_set_by_imports)  # as a fresh kernel's start sets them
    tempfile.tempdir = None  # the fork server's cached choice; the kernel's is its own $TMPDIR
    sys.path[:] = path  # as a new interpreter has it (ipykernel_launcher drops the first entry)
    for name in [name for name in sys.modules if name.startswith("course.grading")]:
        del sys.modules[name]  # the fork server's, not run whole (SERVE): code that imports it gets it afresh
    _fresh_state(int(spec["env"].get("OMP_NUM_THREADS", "1")))
    sys.argv = ["ipykernel_launcher", *argv]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
    sys.stdout.flush()
    os._exit(0)


def _fresh_state(threads: int) -> None:
    """What a new process would not share with its siblings: random seeds, torch's thread count."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _setns(pid: int, namespace: str) -> None:
    fd = os.open(f"/proc/{pid}/ns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(fd, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns {namespace}: {os.strerror(error)}")
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return data

