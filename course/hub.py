"""The class on a JupyterHub on this machine: each student a system user, nbgrader's exchange between them.

    python -m course hub users ROSTER.csv   a system user for each new row of the roster; their passwords
    python -m course hub start              run the hub until Ctrl-C or SIGTERM (`make hub`)
    python -m course hub release LESSON     the student version of LESSON into the exchange (as the instructor)
    python -m course hub grade LESSON       collect the latest submissions, grade them in the sandbox
    python -m course hub feedback LESSON    the graded students' feedback into the exchange (as the instructor)

Every command takes ``--root DIR``, the hub's folder (default $COURSE_HUB_ROOT, else
/srv/pytorch-basics), and runs as root: the hub checks passwords with the system (PAM) and
starts each user's JupyterLab as that user (LocalProcessSpawner); grading needs root for its
sandbox. The hub's folder holds:

    roster.csv   who may log in: id, first_name, last_name, email, role (student or instructor)
    state/       the hub's database and cookie secret, the generated passwords (root only)
    exchange/    nbgrader's exchange; the course id inside
    course/      the instructor's nbgrader course: gradebook, submissions, autograded, feedback

What keeps students apart: home folders that only their owner can open (nbgrader keeps each
student's copy of a submission, and the secret that names its feedback file, in the home folder);
an exchange inbox that students can write to but not list, with unguessable submission names;
the course folder and solutions/ readable by the instructors' group only. The hub's settings are
hub/jupyterhub_config.py; each role's Jupyter settings are hub/student/ and hub/instructor/.
"""

import argparse
import csv
import functools
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course.lessons import NBGRADER
from course.paths import ROOT
from course.settings import COURSE_ID, HUB_ROOT, INSTRUCTOR_ONLY, INSTRUCTORS_GROUP

HUB_FILES = ROOT / "hub"
PROXY = HUB_FILES / "node_modules" / ".bin" / "configurable-http-proxy"
ROLES = ("student", "instructor")
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # a portable system user name; nbgrader forbids + and *


class HubError(Exception):
    """Something the person running the command can fix; the message says what."""


@dataclass(frozen=True)
class Member:
    id: str
    role: str = "student"
    first_name: str = ""
    last_name: str = ""
    email: str = ""


def read_roster(path: Path) -> list[Member]:
    """The roster's members; a HubError naming each bad row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise HubError(f"no roster at {path}: run `make hub ROSTER=class.csv` (or `python -m course hub users "
                       "class.csv`) first") from None
    if not rows or "id" not in rows[0]:
        raise HubError(f"{path}: a CSV file with a header row naming at least the column id "
                       "(and optionally first_name, last_name, email, role)")
    members, problems = [], []
    for line, row in enumerate(rows, start=2):
        member = Member(**{k: (row.get(k) or "").strip() for k in ("id", "first_name", "last_name", "email")},
                        role=(row.get("role") or "student").strip().lower())
        if not USER_NAME.fullmatch(member.id):
            problems.append(f"line {line}: id {member.id!r} is not a system user name (lower-case letters, "
                            "digits, - and _, at most 32, starting with a letter)")
        if member.role not in ROLES:
            problems.append(f"line {line}: role {member.role!r} is neither student nor instructor")
        members.append(member)
    ids = [m.id for m in members]
    problems += [f"id {i!r} appears {ids.count(i)} times" for i in sorted(set(ids)) if ids.count(i) > 1]
    if not any(m.role == "instructor" for m in members):
        problems.append("no member has the role instructor")
    if problems:
        raise HubError(f"{path}:\n  " + "\n  ".join(problems))
    return members


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise HubError(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")
    return result


class Hub:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root or os.environ.get("COURSE_HUB_ROOT") or HUB_ROOT).resolve()
        self.state, self.exchange, self.course = self.root / "state", self.root / "exchange", self.root / "course"
        self.roster, self.passwords = self.root / "roster.csv", self.state / "passwords.csv"

    # ------------------------------------------------------------------ who
    def members(self) -> list[Member]:
        return read_roster(self.roster)

    def instructor(self) -> Member:
        return next(m for m in self.members() if m.role == "instructor")

    def settings(self, member: Member) -> dict[str, str]:
        """The environment variables that make a member's JupyterLab the course's, for their role."""
        return {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "JUPYTER_CONFIG_DIR": str(HUB_FILES / member.role), "COURSE_HUB_ROOT": str(self.root),
                **({"COURSE_DATA": os.environ["COURSE_DATA"]} if os.environ.get("COURSE_DATA") else {})}

    def env(self, member: Member) -> dict[str, str]:
        """The whole environment of a command run as the member (their system user)."""
        return {**self.settings(member), "HOME": pwd.getpwnam(member.id).pw_dir, "USER": member.id,
                "LOGNAME": member.id, "SHELL": "/bin/bash", "LANG": "C.UTF-8"}

    def as_member(self, member: Member, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run a command as the member's system user, in their environment."""
        user = pwd.getpwnam(member.id)
        groups = [g.gr_gid for g in grp.getgrall() if member.id in g.gr_mem]
        return _run(list(args), cwd=cwd or user.pw_dir, env=self.env(member), user=user.pw_uid,
                    group=user.pw_gid, extra_groups=groups, umask=0o077)

    def nbgrader(self, *args: str) -> str:
        """An nbgrader command as the instructor, in the course folder; its output."""
        result = self.as_member(self.instructor(), *NBGRADER, *args, cwd=self.course)
        return result.stdout + result.stderr

    # ------------------------------------------------------------------ commands
    def add_users(self, roster: Path) -> tuple[list[tuple[str, str]], list[str]]:
        """Create a system user for each new member (home folder only they can open).

        Returns (id, password) of each new user, and prepare()'s changes."""
        _need_root()
        members = read_roster(roster)
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(mode=0o700, exist_ok=True)
        _run(["groupadd", "--force", INSTRUCTORS_GROUP])
        created = []
        for member in members:
            try:
                pwd.getpwnam(member.id)
            except KeyError:
                name = " ".join(filter(None, (member.first_name, member.last_name)))
                _run(["useradd", "--create-home", "--shell", "/bin/bash", "--comment", name, member.id])
                password = secrets.token_urlsafe(9)
                _run(["chpasswd"], input=f"{member.id}:{password}\n")
                created.append((member.id, password))
            os.chmod(pwd.getpwnam(member.id).pw_dir, 0o700)  # useradd's default (0755) lets others read it
            if member.role == "instructor":
                _run(["usermod", "--append", "--groups", INSTRUCTORS_GROUP, member.id])
        shutil.copyfile(roster, self.roster)
        os.chmod(self.roster, 0o600)
        known = dict(_read_passwords(self.passwords))
        known.update(created)
        with open(os.open(self.passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", newline="") as f:
            csv.writer(f).writerows([("id", "password"), *sorted(known.items())])
        return created, self.prepare()

    def prepare(self) -> list[str]:
        """Folders, modes and owners for a class: what changed, in words."""
        _need_root()
        members, instructor = self.members(), self.instructor()
        changes = []
        # Every user's JupyterLab runs the course's environment and reaches the exchange: their folders.
        needed = {ROOT, Path(os.path.realpath(sys.executable)).parent, Path(sys.base_prefix).resolve(), self.root}
        for folder in sorted({f for path in needed for f in (path, *path.parents)}):
            mode = folder.stat().st_mode
            if not mode & 0o001:
                os.chmod(folder, mode | 0o001)
                changes.append(f"let every user pass through {folder} (o+x)")
        gid = grp.getgrnam(INSTRUCTORS_GROUP).gr_gid
        for name in INSTRUCTOR_ONLY:
            changes += _restrict(ROOT / name, gid)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.state.mkdir(mode=0o700, exist_ok=True)
        self.exchange.mkdir(exist_ok=True)
        os.chmod(self.exchange, 0o1777)  # what nbgrader asks for, and sticky: no one removes another's files
        self.course.mkdir(exist_ok=True)
        from course.grading.merge import CourseFolder

        CourseFolder(self.course).add_students([{k: getattr(m, k) for k in ("id", "first_name", "last_name", "email")}
                                                for m in members if m.role == "student"])
        owner = pwd.getpwnam(instructor.id)
        _chown_tree(self.course, owner.pw_uid, gid)
        os.chmod(self.course, 0o2770)  # the instructors' group, new files too
        for member in members:
            home = pwd.getpwnam(member.id).pw_dir
            if os.stat(home).st_mode & 0o077:
                os.chmod(home, 0o700)
                changes.append(f"made {home} private to {member.id}")
        return changes

    def start(self, ip: str, port: int) -> int:
        """Run JupyterHub until it ends or this process gets SIGINT/SIGTERM; then stop everything it started."""
        _need_root()
        if not os.access(PROXY, os.X_OK):
            raise HubError(f"{PROXY} is missing: run `make setup` (it installs configurable-http-proxy with npm)")
        changes = self.prepare()
        members = self.members()
        for change in changes:
            print(f"hub: {change}")
        env = {**os.environ, "COURSE_HUB_ROOT": str(self.root), "COURSE_HUB_IP": ip, "COURSE_HUB_PORT": str(port),
               "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        hub = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f",
                                str(HUB_FILES / "jupyterhub_config.py")], cwd=self.state, env=env,
                               start_new_session=True)
        ended = []

        def stop(signum, frame):
            ended.append(signum)
            hub.send_signal(signal.SIGTERM)  # the hub stops the users' servers and the proxy on its way out

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        instructors = [m.id for m in members if m.role == "instructor"]
        print(f"hub: http://{ip}:{port}/ for {len(members) - len(instructors)} students and the instructor(s) "
              f"{', '.join(instructors)}, who log in with their system passwords (new users' passwords: "
              f"{self.passwords}). Stop it with Ctrl-C.", flush=True)
        code = hub.wait()
        left = self.stop_leftovers()
        print(f"hub: stopped{f'; ended {left} processes the users had left running' if left else ''}", flush=True)
        return 0 if ended else code

    def stop_leftovers(self, wait: float = 10.0) -> int:
        """Kill what the roster's users still run (a process left behind in a terminal, say); how many.

        Killing is not being gone: a killed process exits when it is next scheduled, and one of them may
        have forked in between. So list, kill and list again until no process of theirs is left (at most
        ``wait`` seconds)."""
        uids = {pwd.getpwnam(member.id).pw_uid for member in self.members()}
        killed, deadline = set(), time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) in uids]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        return len(killed)

    def release(self, lesson: str) -> str:
        """Generate the student version in the course folder and release it to the exchange."""
        log = self.nbgrader("generate_assignment", lesson, "--force") + self.nbgrader(
            "release_assignment", lesson, "--force")
        # see course/exchange.py
        os.chown(self.exchange / COURSE_ID / "inbound", -1, grp.getgrnam(INSTRUCTORS_GROUP).gr_gid)
        return log

    def grade(self, lesson: str, **options):
        """Collect each student's latest submission (as the instructor) and grade the new ones, sandboxed."""
        from course.grading import grade
        from course.grading.engine import ClusterUnreachable

        _need_root()
        self.nbgrader("collect", lesson, "--update")
        try:
            summary = grade(lesson, None, self.course, **options)
        except ClusterUnreachable as error:
            raise HubError(str(error)) from error
        _chown_tree(self.course, pwd.getpwnam(self.instructor().id).pw_uid, grp.getgrnam(INSTRUCTORS_GROUP).gr_gid)
        return summary

    def feedback(self, lesson: str) -> str:
        return self.nbgrader("release_feedback", lesson)


def _read_passwords(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [(row["id"], row["password"]) for row in csv.DictReader(f)]


def _restrict(path: Path, gid: int) -> list[str]:
    """Make a repository path readable by root and the instructors' group only."""
    if not path.exists() or not path.stat().st_mode & 0o007 and path.stat().st_gid == gid:
        return []
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not item.is_symlink():
            os.chown(item, -1, gid)
            os.chmod(item, item.stat().st_mode & ~0o007)
    return [f"made {path} readable by the group {INSTRUCTORS_GROUP} only"]


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for item in [path, *path.rglob("*")]:
        os.lchown(item, uid, gid)


def _owner(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


def _need_root() -> None:
    if os.geteuid() != 0:
        raise HubError("the hub's commands run as root (they create users, start each user's server as "
                       "that user and grade in the sandbox): run them with sudo")


def add_arguments(parser: argparse.ArgumentParser, lesson_type) -> None:
    """The `hub` command's arguments and subcommands (``lesson_type`` checks a lesson id)."""
    from course.grading import add_grading_options

    parser.add_argument("--root", help=f"the hub's folder (default $COURSE_HUB_ROOT, else {HUB_ROOT})")
    commands = parser.add_subparsers(dest="hub_command", required=True, metavar="HUB_COMMAND")
    users = commands.add_parser("users", help="create a system user for each new member of a roster CSV")
    users.add_argument("roster", type=Path, help="CSV: id, first_name, last_name, email, role")
    start = commands.add_parser("start", help="run the hub until Ctrl-C")
    start.add_argument("--ip", default="127.0.0.1", help="where to listen (default 127.0.0.1; a classroom "
                       "needs 0.0.0.0 behind HTTPS)")
    start.add_argument("--port", type=int, default=8000)
    for name, what in (("release", "release LESSON to the students"), ("feedback", "release LESSON's feedback"),
                       ("grade", "collect and grade LESSON's latest submissions")):
        commands.add_parser(name, help=what).add_argument("lesson", type=lesson_type, help="e.g. 01-tensors")
    add_grading_options(commands.choices["grade"])
    for name, handler in (("users", users_command), ("start", start_command), ("release", release_command),
                          ("feedback", feedback_command), ("grade", grade_command)):
        commands.choices[name].set_defaults(handler=_reporting_hub_errors(handler))


def _reporting_hub_errors(handler):
    """``handler`` with the hub's folder given as a Hub, and a HubError printed as the reason for exit 1."""
    @functools.wraps(handler)
    def run(*, root: str | None, hub_command: str, **options) -> int:
        try:
            return handler(hub=Hub(root), **options)
        except HubError as e:
            print(f"hub {hub_command}: error: {e}", file=sys.stderr)
            return 1
    return run


def users_command(*, hub: Hub, roster: Path) -> int:
    """`hub users ROSTER`: the new members' system users, and the class's folders and modes."""
    created, changes = hub.add_users(roster)
    for change in changes:
        print(f"hub: {change}")
    print(f"hub: {len(created)} new users (passwords in {hub.passwords}, root only); "
          f"{len(hub.members())} in the roster {hub.roster}")
    return 0


def start_command(*, hub: Hub, ip: str, port: int) -> int:
    """`hub start`: the hub until Ctrl-C or SIGTERM."""
    return hub.start(ip, port)


def release_command(*, hub: Hub, lesson: str) -> int:
    """`hub release LESSON`."""
    print(hub.release(lesson))
    return 0


def feedback_command(*, hub: Hub, lesson: str) -> int:
    """`hub feedback LESSON`."""
    print(hub.feedback(lesson))
    return 0


def grade_command(*, hub: Hub, lesson: str, **grading_options) -> int:
    """`hub grade LESSON [grading options]`: 1 when a student could not be graded."""
    summary = hub.grade(lesson, **grading_options)
    print(summary.text())
    return 1 if summary.counts()["not graded"] else 0
