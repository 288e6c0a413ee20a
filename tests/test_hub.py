"""The class on JupyterHub, end to end, with real system users and nbgrader's real exchange.

The test makes a roster (an instructor and three students with unique names), and runs the
course's own commands as an instructor would (`python -m course hub users|start|release|grade|
feedback`): JupyterHub with configurable-http-proxy on 127.0.0.1, PAM logins, each user's
JupyterLab started as that user. The instructor releases lesson 01. Ana logs in through the
hub's login page in Chromium, fetches the lesson in the Assignments panel, answers it, presses
Validate and submits; Ben and Cai log in through the same form over HTTP and use their
JupyterLab's nbgrader endpoints (fetch, validate, submit): Ben answers part, Cai nothing.
The instructor collects and grades (sandboxed) and releases feedback; each student fetches
theirs and sees their own score and no hidden test. Ben submits again; grading again grades
only him. As each student's own user, the test checks what they cannot read or list. Stopping
the hub leaves no process of the class running. Users and folders are removed afterwards.

It needs root (users, PAM, setuid servers), npm's configurable-http-proxy (scripts/setup) and
Chromium; it is skipped, saying why, where one is missing, and .ci/run makes a skip a failure.
Screenshots and the hub's log go to test-artifacts/hub/; the time of each step is printed.
"""

import csv
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
import requests
from browser import launch, why_no_browser
from ports import free_ports

import simulate
from course import cells
from course.hub import PROXY
from course.paths import ROOT, SOLUTIONS
from course.settings import COURSE_ID, INSTRUCTOR_ONLY

LESSON = "01-tensors"
COURSE = COURSE_ID
ARTIFACTS = ROOT / "test-artifacts" / "hub"
START_S = 120  # the hub, or a user's server, on a busy 2-core machine
RUN_S = 240    # a Validate (it runs the whole notebook) or a grading command


def _why_not() -> str:
    if os.geteuid() != 0:
        return "the hub test needs root (it creates system users; PAM; servers started as each user)"
    if not os.access(PROXY, os.X_OK):
        return f"{PROXY} is missing (run `make setup`, which installs it with npm)"
    return why_no_browser()


_missing = _why_not()
if _missing and os.environ.get("COURSE_REQUIRE_HUB"):
    pytest.fail(f"COURSE_REQUIRE_HUB is set but {_missing}", pytrace=False)
pytestmark = pytest.mark.skipif(bool(_missing), reason=_missing)


def course(*args: str, timeout: int = RUN_S) -> str:
    """A `python -m course` command; its output (a failure shows it)."""
    result = subprocess.run([sys.executable, "-m", "course", *args], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"python -m course {' '.join(args)} exited {result.returncode}:\n" \
                                   f"{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def as_user(name: str, code: str) -> str:
    """Python code run as a system user (no privileges); what it prints."""
    user = pwd.getpwnam(name)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, user=user.pw_uid,
                            group=user.pw_gid, extra_groups=[], cwd=user.pw_dir, env={"HOME": user.pw_dir},
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Timer:
    def __init__(self):
        self.steps: list[tuple[str, float]] = []

    def __call__(self, name: str):
        timer = self

        class Step:
            def __enter__(self):
                self.start = time.monotonic()

            def __exit__(self, *exc):
                timer.steps.append((name, time.monotonic() - self.start))

        return Step()


class Hub:
    """The hub of a test class: started with `python -m course hub start`, stopped with SIGTERM."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = ARTIFACTS / "hub.log"
        self.proc = None

    def start(self):
        self._log = self.log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "course", "hub", "--root", str(self.root), "start",
                                      "--port", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the hub exited with {self.proc.returncode}:\n{self.log.read_text()}"
            try:
                if requests.get(f"{self.url}/hub/api", timeout=5).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the hub did not answer in {START_S} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C would; its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._log.close()


class Student:
    """A member's browser-less session: the hub's login form, then their JupyterLab's endpoints."""

    def __init__(self, hub: Hub, name: str, session: requests.Session | None = None):
        self.hub, self.name = hub, name
        self.http = session or requests.Session()
        self.base = f"{hub.url}/user/{name}"

    def log_in(self, password: str) -> None:
        self.http.get(f"{self.hub.url}/hub/login")
        r = self.http.post(f"{self.hub.url}/hub/login", data={"username": self.name, "password": password,
                                                              "_xsrf": self.http.cookies.get("_xsrf", path="/hub/")})
        assert r.ok and "/hub/login" not in r.url, f"{self.name} could not log in: {r.status_code} {r.url}"
        self.wait_for_server()

    def wait_for_server(self) -> None:
        """Until the user's JupyterLab answers (the hub spawns it on login); its OAuth cookie is then set."""
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            r = self.http.get(f"{self.base}/lab", timeout=30)
            if r.ok and r.url.startswith(f"{self.base}/lab"):
                return
            time.sleep(1)
        raise AssertionError(f"{self.name}'s JupyterLab did not start in {START_S} s (see {self.hub.log})")

    def xsrf(self) -> dict:
        """The header that a POST or PUT to the member's JupyterLab needs (its _xsrf cookie)."""
        return {"X-XSRFToken": next(c.value for c in self.http.cookies
                                    if c.name == "_xsrf" and c.path.startswith(f"/user/{self.name}"))}

    def post(self, endpoint: str, **data) -> dict:
        r = self.http.post(f"{self.base}/{endpoint}", data=data, headers=self.xsrf(), timeout=RUN_S)
        assert r.ok, f"{self.name}: POST {endpoint}: {r.status_code} {r.text[:500]}"
        reply = r.json()
        assert reply.get("success"), f"{self.name}: POST {endpoint}: {reply}"
        return reply["value"]

    def fetch(self) -> None:
        self.post("assignments/fetch", course_id=COURSE, assignment_id=LESSON)

    def validate(self) -> dict:
        return self.post("assignments/validate", path=f"{LESSON}/{LESSON}.ipynb")

    def submit(self) -> None:
        self.post("assignments/submit", course_id=COURSE, assignment_id=LESSON)

    def notebook(self):
        r = self.http.get(f"{self.base}/api/contents/{LESSON}/{LESSON}.ipynb", timeout=30)
        assert r.ok, f"{self.name} has no fetched notebook: {r.status_code}"
        return nbformat.from_dict(r.json()["content"])

    def save(self, nb) -> None:
        r = self.http.put(f"{self.base}/api/contents/{LESSON}/{LESSON}.ipynb", json={"type": "notebook",
                          "content": nb}, headers=self.xsrf(), timeout=30)
        assert r.ok, f"{self.name} could not save: {r.status_code} {r.text[:300]}"

    def feedback(self) -> str:
        """Fetch the feedback; the page of the latest submission."""
        value = self.post("assignments/fetch_feedback", course_id=COURSE, assignment_id=LESSON)
        submitted = [a for a in value if a.get("status") == "submitted"]
        assert submitted, f"{self.name} sees no submission: {value}"
        latest = max(submitted[0]["submissions"], key=lambda s: s["timestamp"])
        assert latest["has_local_feedback"], f"{self.name} got no feedback for the latest submission: {latest}"
        path = latest["local_feedback_path"].removeprefix("./")
        r = self.http.get(f"{self.base}/files/{path}/{LESSON}.html", timeout=30)
        assert r.ok, f"{self.name} cannot open their feedback {path}: {r.status_code}"
        return r.text


def feedback_score(page: str) -> tuple[float, float]:
    """The 'Score: X / Y' that nbgrader's feedback page shows first (the notebook's total)."""
    match = re.search(r"Score:\s*([\d.]+)\s*/\s*([\d.]+)", simulate.visible_text(page))
    assert match, "the feedback page shows no score"
    return float(match.group(1)), float(match.group(2))


def grades(hub_root: Path) -> dict[str, dict]:
    with open(hub_root / "course" / "grades" / LESSON / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def hub_class():
    """A roster of four new system users and a hub folder; both removed afterwards."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    prefix = "c" + secrets.token_hex(3)
    names = {role: f"{prefix}-{role}" for role in ("prof", "ana", "ben", "cai")}
    root = Path(tempfile.mkdtemp(prefix="course-hub-"))
    roster = root.parent / f"{root.name}-roster.csv"
    roster.write_text("id,first_name,last_name,email,role\n"
                      f"{names['prof']},Ada,Lovelace,ada@example.org,instructor\n"
                      f"{names['ana']},Ana,Right,,student\n{names['ben']},Ben,Partly,,student\n"
                      f"{names['cai']},Cai,Blank,,\n")
    try:
        yield names, root, roster
    finally:
        for name in names.values():
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        roster.unlink(missing_ok=True)


def test_a_class_on_the_hub_from_release_to_feedback(hub_class, capsys):
    from playwright.sync_api import expect, sync_playwright

    names, root, roster = hub_class
    prof, ana, ben, cai = names["prof"], names["ana"], names["ben"], names["cai"]
    timer, shots = Timer(), []
    with timer("users from the roster"):
        course("hub", "--root", str(root), "users", str(roster))
    with open(root / "state" / "passwords.csv", newline="") as f:
        passwords = {row["id"]: row["password"] for row in csv.DictReader(f)}
    assert set(passwords) == set(names.values())
    hub = Hub(root, free_ports(3))  # the hub uses its port and the next two
    try:
        with timer("hub start"):
            hub.start()
        with timer("instructor releases lesson 01"):
            course("hub", "--root", str(root), "release", LESSON)
        release_nb = nbformat.read(root / "course" / "release" / LESSON / f"{LESSON}.ipynb", as_version=4)
        right = cells.submission(release_nb, LESSON)
        partly = cells.submission(release_nb, LESSON, stub=(simulate.ex(4), 0))

        # Ana, in Chromium: the hub's login page, the Assignments panel, Validate, Submit.
        with sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(START_S * 1000)
                expect.set_options(timeout=START_S * 1000)

                def shot(name: str):
                    path = ARTIFACTS / f"{len(shots) + 1:02d}-{name}.png"
                    page.screenshot(path=str(path))
                    shots.append(path.name)

                with timer("Ana logs in (browser) and her JupyterLab starts"):
                    page.goto(f"{hub.url}/hub/login")
                    page.fill("#username_input", ana)
                    page.fill("#password_input", passwords[ana])
                    shot("login-page")
                    page.click("#login_submit")
                    page.wait_for_url(re.compile(f"/user/{ana}/lab"))
                    page.locator(".jp-LabShell").wait_for()
                    expect(page.get_by_text("Create Assignment")).to_have_count(0)
                    shot("lab-after-login")
                with timer("Ana fetches lesson 01 in the Assignments panel"):
                    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader").click()
                    items = [t for t in page.locator(".lm-Menu .lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel")
                             .all_inner_texts() if t.strip()]
                    assert items == ["Assignment List"], f"a student's Nbgrader menu offers {items}"
                    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text="Assignment List").click()
                    released = page.locator("#released_assignments_list")
                    expect(released).to_contain_text(LESSON)
                    shot("assignments-released")
                    released.get_by_role("button", name="Fetch").click()
                    expect(page.locator("#fetched_assignments_list")).to_contain_text(LESSON)
                    shot("assignments-fetched")
                ana_client = Student(hub, ana, requests.Session())
                for cookie in page.context.cookies():
                    ana_client.http.cookies.set(cookie["name"], cookie["value"], domain=cookie["domain"],
                                                path=cookie["path"])
                ana_client.save(right)  # her answers, as she would type them
                with timer("Ana validates in the browser"):
                    page.goto(f"{hub.url}/user/{ana}/lab/tree/{LESSON}/{LESSON}.ipynb")
                    page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
                    dialog = page.locator(".jp-Dialog", has_text="Validation Results")
                    dialog.wait_for(timeout=RUN_S * 1000)
                    assert "Success! Your notebook passes all the tests." in dialog.inner_text()
                    shot("validate-success")
                    page.locator(".jp-Dialog .jp-mod-accept").click()
                with timer("Ana submits in the Assignments panel"):
                    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader").click()
                    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text="Assignment List").click()
                    fetched = page.locator("#fetched_assignments_list")
                    fetched.get_by_role("button", name="Submit").click()
                    expect(page.locator("#submitted_assignments_list")).to_contain_text(LESSON)
                    shot("assignments-submitted")
            finally:
                browser.close()

        # Ben and Cai: the same login form, then their JupyterLab's nbgrader endpoints.
        students = {ana: ana_client}
        for name, nb in ((ben, partly), (cai, None)):
            with timer(f"{name[-3:].title()} logs in, fetches, validates, submits (HTTP)"):
                student = students[name] = Student(hub, name)
                student.log_in(passwords[name])
                student.fetch()
                if nb is not None:
                    student.save(nb)
                result = student.validate()
                assert result.get("failed"), f"{name}'s Validate found nothing wrong: {result}"
                student.submit()

        # Cai, after submitting, leaves a link to the course's gradebook in his submission: collect keeps it a link.
        inbound = root / "exchange" / COURSE / "inbound"
        cai_submission = next(inbound.glob(f"{cai}+{LESSON}+*"))
        as_user(cai, f"import os; os.symlink({str(root / 'course' / 'gradebook.db')!r}, "
                     f"{str(cai_submission / 'answers.txt')!r})")
        with timer("instructor collects and grades 3 students"):
            out = course("hub", "--root", str(root), "grade", LESSON, timeout=RUN_S)
        collected = root / "course" / "submitted" / cai / LESSON / "answers.txt"
        assert collected.is_symlink(), "collect followed the link Cai left in the inbox, with the instructor's rights"
        table = grades(root)
        assert {s: table[s]["status"] for s in (ana, ben, cai)} == dict.fromkeys((ana, ben, cai), "graded"), out
        score = {s: (float(table[s]["total"]), float(table[s]["max_score"])) for s in (ana, ben, cai)}
        full = score[ana][1]
        assert full > 0 and score[ana][0] == full, f"Ana answered everything right: {score[ana]}\n{out}"
        assert 0 < score[ben][0] < full, f"Ben answered part: {score[ben]}\n{out}"
        assert score[cai][0] == 0, f"Cai answered nothing: {score[cai]}\n{out}"
        with timer("instructor logs in; the formgrader lists the submissions"):
            teacher = Student(hub, prof)
            teacher.log_in(passwords[prof])
            r = teacher.http.get(f"{teacher.base}/formgrader/api/assignments", timeout=60)
            assert r.ok, f"the instructor's formgrader: {r.status_code} {r.text[:300]}"
            listed = {a["name"]: a for a in r.json()}
            assert listed[LESSON]["num_submissions"] == 3, listed.get(LESSON)
            r = students[ben].http.get(f"{students[ben].base}/formgrader/api/assignments", timeout=60)
            assert r.status_code == 404, f"a student reached the formgrader: {r.status_code}"
        with timer("instructor releases feedback"):
            course("hub", "--root", str(root), "feedback", LESSON)
        with timer("each student fetches feedback"):
            for name, student in students.items():
                page_html = student.feedback()
                assert feedback_score(page_html) == score[name], f"{name}'s feedback shows another score"
                assert not simulate.shown_hidden_lines(page_html, LESSON), f"{name}'s feedback shows hidden tests"

        # Ben submits again, all right now: grading again grades only him.
        students[ben].save(right)
        students[ben].submit()
        with timer("Ben resubmits; grading again grades only him"):
            out = course("hub", "--root", str(root), "grade", LESSON, timeout=RUN_S)
        assert "This run graded 1 submissions and skipped 2" in out, out
        assert float(grades(root)[ben]["total"]) == full, out

        # What a student can reach of the others' work, as their own user.
        ana_submission = next(inbound.glob(f"{ana}+{LESSON}+*"))
        ana_feedback = next((root / "exchange" / COURSE / "feedback").iterdir())
        instructor_only = [ROOT / name for name in INSTRUCTOR_ONLY if (ROOT / name).exists()]
        probe = f"""
import os
for path in {[str(inbound), str(inbound.parent / 'feedback'), str(root / 'course'), pwd.getpwnam(ana).pw_dir,
              *(str(p) for p in instructor_only if p.is_dir())]!r}:
    try:
        os.listdir(path); print("listed", path)
    except PermissionError:
        pass
for path in {[str(ana_submission / f'{LESSON}.ipynb'), str(ana_submission / 'submission_secret.txt'),
              pwd.getpwnam(ana).pw_dir + '/{LESSON}/{LESSON}.ipynb', str(root / 'course' / 'gradebook.db'),
              str(SOLUTIONS / LESSON / f'{LESSON}.ipynb'), str(root / 'state' / 'passwords.csv'),
              *(str(p) for p in instructor_only if p.is_file())]!r}:
    try:
        open(path).close(); print("read", path)
    except (PermissionError, FileNotFoundError):
        pass
"""
        reached = as_user(ben, probe)
        assert not reached, f"Ben reached others' work or the instructor's files:\n{reached}"
        assert re.search(r"\+[A-Za-z0-9_-]{12}$", ana_submission.name), \
            f"a submission's name should end in a random part that cannot be guessed: {ana_submission.name}"
        assert re.fullmatch(r"[0-9a-f]{32}\.html", ana_feedback.name), ana_feedback.name
    finally:
        with timer("hub stops"):
            code = hub.stop()
    assert code == 0, f"the hub command exited with {code}:\n{hub.log.read_text()[-3000:]}"
    left = subprocess.run(["pgrep", "-u", ",".join(names.values())], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the class still run after the hub stopped: {left}"
    assert not _listening(hub.port), "the proxy still listens after the hub stopped"
    with capsys.disabled():
        print(f"\nhub workflow ({os.cpu_count()} CPUs): " + "; ".join(f"{n} {s:.1f} s" for n, s in timer.steps))
        print(f"hub screenshots in {ARTIFACTS}: {', '.join(shots)}")
