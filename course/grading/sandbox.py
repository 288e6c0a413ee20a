"""The sandbox a student's kernel runs in while it is graded.

A grading job (worker.py) starts the notebook's kernel through ``SandboxKernelManager``: its
command is this file run as a launcher, which puts itself in a cgroup of its own (memory and
process limits), sets resource limits (CPU time, file size), drops to an unprivileged user and
starts the kernel in bubblewrap (``bwrap``) with:

- a filesystem of its own: the system's /usr and /etc, the Python environment, the course's
  helper package and data, all read-only; its working folder and the folder of its sockets
  read-write; a private /tmp. The gradebook, solutions/, the course folder and the grader's
  home are not there at all;
- no network: a network namespace with only a loopback of its own. The kernel talks to
  nbgrader over unix sockets (ZeroMQ's ipc transport) in a folder bound in;
- a pid namespace: when the kernel ends, everything it started ends too (setsid, double
  fork and nohup included), and the launcher kills what is left in its cgroup.

Each protection needs something of the machine (``protections()`` says which are on and why
the others are off); grading works without any of them. The launcher runs with Python's
``-I -S`` and imports only the standard library, so that it starts in milliseconds.
"""

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

SANDBOX_UID = 65534  # nobody: owns nothing, so it can read only what every user can read
CGROUP_PREFIX = "course-grading-"
GIB, MIB = 1 << 30, 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one submission's kernel may use. A lesson's notebook metadata can change them:
    ``"grading": {"limits": {"memory_gib": 6}}`` in solutions/<lesson>/<lesson>.ipynb."""

    memory_gib: float = 4  # resident memory, the kernel and all it starts (cgroup)
    processes: int = 1024  # processes and threads at once (cgroup)
    cpu_seconds: int = 900  # CPU time of any one process (rlimit)
    file_mib: int = 256  # the size of any file it writes (rlimit)
    wall_seconds: int = 900  # from the kernel's start to its end

    def describe(self) -> dict[str, str]:
        return {"memory": f"{self.memory_gib:g} GiB of memory", "processes": f"{self.processes} processes",
                "cpu": f"{self.cpu_seconds} s of CPU time", "files": f"files of {self.file_mib} MiB",
                "wall": f"{self.wall_seconds} s"}


# ---------------------------------------------------------------- what this machine can do

PROTECTIONS = {  # name -> what it stops
    "separate user": "student code runs as an unprivileged user (nobody), not as the grader",
    "private filesystem": "only the Python environment, the course's data and its own folder are visible",
    "no network": "no connection to anything, 127.0.0.1 included",
    "memory limit": "a kernel over the memory limit is stopped, not another process of the machine",
    "process limit": "a fork bomb is bounded",
    "nothing survives": "every process the notebook started ends with its grading",
}
CONTROLLERS = {"memory": "memory limit", "pids": "process limit"}  # cgroup controller -> its protection
_cache: dict[str, str] = {}


def protections() -> dict[str, str]:
    """Each protection -> '' when it is on here, else why it is off. Computed once per process."""
    if not _cache:
        root = os.geteuid() == 0
        bwrap = _bwrap_works()
        _cache.update({
            "separate user": "" if root and shutil.which("setpriv") else
            "needs root and util-linux setpriv" + ("" if root else " (grading runs as a normal user)"),
            "private filesystem": bwrap,
            "no network": bwrap,
            **{name: "" if _cgroup_parent(controller) else f"needs root and the cgroup {controller} controller"
               for controller, name in CONTROLLERS.items()},
        })
        _cache["nothing survives"] = _cache["process limit"] and bwrap
    return dict(_cache)


def describe_protections(off: dict[str, str] | None = None) -> list[str]:
    """Lines for a summary: what is on, and what is off with the reason."""
    off = protections() if off is None else off
    on = [name for name, why in off.items() if not why]
    lines = [f"sandbox: on: {', '.join(on) or 'nothing'}"]
    lines += [f"  OFF {name} ({PROTECTIONS[name]}): {why}" for name, why in off.items() if why]
    return lines


def _bwrap_works() -> str:
    """'' when bubblewrap can make the namespaces here, else why not."""
    if not shutil.which("bwrap"):
        return "needs bubblewrap (Debian: apt-get install bubblewrap)"
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
                            "--unshare-pid", "--die-with-parent", "true"], capture_output=True, text=True)
    if probe.returncode:
        return f"bwrap cannot create namespaces here: {probe.stderr.strip()[:120]} (needs root or user namespaces)"
    return ""


@functools.cache
def _cgroup_parent(controller: str) -> Path | None:
    """A writable cgroup (v1 hierarchy of ``controller``, or v2) to make job cgroups in, or None."""
    if os.geteuid() != 0:
        return None
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        mine = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
        if fstype == "cgroup" and controller in options:
            own = next((c.split(":", 2)[2] for c in mine if controller in c.split(":")[1].split(",")), "/")
        elif fstype == "cgroup2" and controller in _read(Path(fields[4]) / "cgroup.controllers").split():
            own = next((c.split(":", 2)[2] for c in mine if c.startswith("0::")), "/")
        else:
            continue
        parent = Path(fields[4] + own)
        probe = parent / f"{CGROUP_PREFIX}probe-{os.getpid()}"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError:
            continue
        if fstype == "cgroup2" and controller not in _read(parent / "cgroup.subtree_control").split():
            continue
        return parent
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# ---------------------------------------------------------------- one kernel's sandbox

@dataclass
class Sandbox:
    """The sandbox of one grading job's kernel. ``prepare`` before the kernel starts, ``close`` after."""

    workdir: Path  # the notebook's folder: the kernel's working folder, its only writable place
    sockets: Path  # where the kernel's ipc sockets and connection file live (short path: 107 bytes max)
    limits: Limits
    readable: tuple[Path, ...]  # folders the kernel may read: Python environment, course package, data
    env: dict  # the kernel's whole environment

    def __post_init__(self):
        self.id = f"{CGROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        self.off = protections()
        self.cgroups = [_cgroup_parent(controller) / self.id for controller, name in CONTROLLERS.items()
                        if not self.off[name]]
        self.spec_file = self.sockets / "sandbox.json"
        self.verdict_file = self.sockets.parent / f"{self.sockets.name}-verdict.json"  # outside the sandbox
        self.log_file = self.sockets.parent / f"{self.sockets.name}-kernel.log"  # the kernel's own output

    def prepare(self) -> None:
        for folder in (self.workdir, self.sockets):
            folder.mkdir(parents=True, exist_ok=True)
            if not self.off["separate user"]:
                for path in [folder, *folder.rglob("*")]:
                    os.chown(path, SANDBOX_UID, SANDBOX_UID)
        for cgroup in dict.fromkeys(self.cgroups):
            cgroup.mkdir(exist_ok=True)
            if (cgroup / "memory.limit_in_bytes").exists():  # cgroup v1
                limit = str(int(self.limits.memory_gib * GIB))
                (cgroup / "memory.limit_in_bytes").write_text(limit)
                if (cgroup / "memory.memsw.limit_in_bytes").exists():  # no swapping past the limit
                    (cgroup / "memory.memsw.limit_in_bytes").write_text(limit)
            elif (cgroup / "memory.max").exists():  # cgroup v2
                (cgroup / "memory.max").write_text(str(int(self.limits.memory_gib * GIB)))
                (cgroup / "memory.swap.max").write_text("0") if (cgroup / "memory.swap.max").exists() else None
            if (cgroup / "pids.max").exists():
                (cgroup / "pids.max").write_text(str(self.limits.processes))
        spec = {"command": self._wrapper(), "bwrap": self._bwrap(), "setpriv": self._setpriv(), "env": self.env,
                "cwd": str(self.workdir), "cgroups": [str(c) for c in self.cgroups],
                "limits": asdict(self.limits), "verdict": str(self.verdict_file), "log": str(self.log_file)}
        self.spec_file.write_text(json.dumps(spec))
        self.verdict_file.unlink(missing_ok=True)

    def command(self, kernel: list[str]) -> list[str]:
        """The command that starts ``kernel`` in this sandbox."""
        return [sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(self.spec_file), "--", *kernel]

    def _wrapper(self) -> list[str]:
        """bwrap and setpriv arguments that go before the kernel's command (those that are available)."""
        bwrap = self._bwrap()
        return (bwrap + ["--"] if bwrap else []) + self._setpriv()

    def _bwrap(self) -> list[str]:
        """bubblewrap's arguments for this sandbox, up to the command ([] when it is off)."""
        if self.off["private filesystem"]:
            return []
        command = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                   "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = Path("/", top)
            if path.is_symlink():
                command += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                command += ["--ro-bind", str(path), str(path)]
        command += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
                    "--perms", "1777", "--tmpfs", "/dev/shm",
                    "--perms", "1777", "--size", str(512 * MIB), "--tmpfs", "/tmp"]
        for device in sorted(Path("/dev").glob("nvidia*")):  # a GPU, where there is one
            command += ["--dev-bind", str(device), str(device)]
        made = {Path("/"), Path("/usr"), Path("/etc"), Path("/tmp"), Path("/dev"), Path("/proc")}
        binds = [(path, "--ro-bind") for path in self.readable] + [(self.workdir, "--bind"), (self.sockets, "--bind")]
        for path, how in sorted(binds, key=lambda b: len(b[0].parts)):
            for parent in reversed(path.parents):
                if parent not in made:
                    command += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            command += [how, str(path), str(path)]
            made.add(path)
        return command + ["--chdir", str(self.workdir)]

    def _setpriv(self) -> list[str]:
        """setpriv's arguments that drop to the sandbox's user, up to the command ([] when it is off)."""
        if self.off["separate user"]:
            return []
        return ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--"]

    def verdict(self) -> str:
        """Why the kernel stopped, in words, when a limit stopped it: '' for a plain death."""
        try:
            ended = json.loads(self.verdict_file.read_text())
        except (OSError, ValueError):
            ended = {}
        if ended.get("wall_exceeded"):
            return f"ran longer than {self.limits.wall_seconds} s (the time limit of a whole notebook)"
        if any(_oom_kills(cgroup) for cgroup in self.cgroups):
            return f"used more than {self.limits.memory_gib:g} GiB of memory"
        if ended.get("returncode") in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return f"used more than {self.limits.cpu_seconds} s of CPU time"
        return ""

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(_read(self.log_file).strip().splitlines()[-lines:])

    def close(self) -> None:
        """Kill whatever is left in the sandbox's cgroups and remove them."""
        for cgroup in dict.fromkeys(self.cgroups):
            kill_cgroup(cgroup)
            try:
                cgroup.rmdir()
            except OSError:
                pass


def _oom_kills(cgroup: Path) -> int:
    for name in ("memory.oom_control", "memory.events"):
        for line in _read(cgroup / name).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return 0


def kill_cgroup(cgroup: Path, seconds: float = 5) -> None:
    """SIGKILL every process in a cgroup until none is left (a fork bomb adds them while we kill)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = [int(p) for p in _read(cgroup / "cgroup.procs").split() if int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


# ---------------------------------------------------------------- the launcher (a process of its own)

def launch(spec_file: str, kernel: list[str]) -> int:
    """Join the cgroups, set the limits, start the kernel in the sandbox, wait, record how it ended."""
    spec = json.loads(Path(spec_file).read_text())
    enter_limits(spec)
    limits = spec["limits"]
    start = time.monotonic()
    with open(spec["log"], "ab") as log:
        child = subprocess.Popen(spec["command"] + kernel, env=spec["env"], cwd=spec["cwd"], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: child.kill())
    try:
        returncode, wall_exceeded = child.wait(timeout=limits["wall_seconds"]), False
    except subprocess.TimeoutExpired:
        child.kill()
        returncode, wall_exceeded = child.wait(), True
    return ended(spec, returncode, wall_exceeded, time.monotonic() - start)


def enter_limits(spec: dict) -> None:
    """Put this process (and so all it starts) in the job's cgroups and under its resource limits."""
    for cgroup in spec["cgroups"]:
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
    limits = spec["limits"]
    cpu, size = limits["cpu_seconds"], limits["file_mib"] * MIB
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def ended(spec: dict, returncode: int, wall_exceeded: bool, seconds: float) -> int:
    """Kill the kernel's leftovers, record how it ended (Sandbox.verdict reads it), return an exit status."""
    for cgroup in spec["cgroups"]:  # where no pid namespace ended them
        kill_cgroup(Path(cgroup))
    Path(spec["verdict"]).write_text(json.dumps({"returncode": returncode, "wall_exceeded": wall_exceeded,
                                                 "seconds": round(seconds, 1)}))
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    separator = sys.argv.index("--")
    sys.exit(launch(sys.argv[1], sys.argv[separator + 1:]))
