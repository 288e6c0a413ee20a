"""What a student sees: JupyterLab in a real browser, started by `make lab`'s script.

The notebooks can pass nbval and still greet a student with a missing Validate button, a
figure that does not render, a kernel from another environment or a notebook that cannot
be saved. This test starts JupyterLab through scripts/lab (so it checks what students get)
on a copy of notebooks/, drives headless Chromium (Debian's `chromium` package) with
Playwright as JupyterLab's own UI tests do, and works through lesson 01 as a student would:
open it, look at the figures, run all cells, answer one exercise right and one wrong, press
Validate, fix the answers, validate again and save.

Screenshots of each step go to test-artifacts/browser/ (ignored by git), with the server's
log; the test prints their paths. It is skipped, saying why, only where the browser or the
playwright package is missing; .ci/run installs both and makes a skip there a failure.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
from browser import launch, why_no_browser
from ports import free_ports

from course import cells
from course.paths import NOTEBOOKS, ROOT

ARTIFACTS = ROOT / "test-artifacts" / "browser"
LESSON = "01-tensors"
NOTEBOOK = f"{LESSON}/{LESSON}.ipynb"
SERVER_START_S = 120  # a cold start on a busy 2-core machine
RUN_S = 240           # running all cells, or one Validate (it runs the whole notebook)

# Lab plugins: the student's ones must be on, the instructor's ones and the news pop-up off.
# The Assignments panel needs a class's exchange: on in the hub (tests/test_hub.py), off here.
STUDENT_PLUGINS = ["@jupyter/nbgrader:validate-assignment"]
HIDDEN_PLUGINS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list",
                  "@jupyter/nbgrader:menu",
                  "@jupyter/nbgrader:create-assignment", "@jupyterlab/apputils-extension:announcements"]


_missing = why_no_browser()
if _missing and os.environ.get("COURSE_REQUIRE_BROWSER"):
    # .ci/run installs the browser and sets this: a skip there would hide a broken setup.
    pytest.fail(f"COURSE_REQUIRE_BROWSER is set but {_missing}", pytrace=False)
pytestmark = pytest.mark.skipif(bool(_missing), reason=_missing or "")


# ---------------------------------------------------------------------------------------
# The answers a student types: the instructor's solution (markers removed, as nbgrader does
# when it makes the student version), and a wrong get_pixel that forgets .item().


def solutions() -> dict[str, str]:
    """Solution cell sources of the lesson by grade id, without the BEGIN/END SOLUTION lines."""
    return {cells.grade_id(c): cells.answer(c.source) for c in cells.instructor(LESSON).cells
            if cells.is_solution(c)}


def answer_of(answers: dict[str, str], function: str) -> tuple[str, str]:
    """(grade id, answer) of the exercise that defines ``function``."""
    return next((grade_id, answer) for grade_id, answer in answers.items() if f"def {function}(" in answer)


def first_test_line() -> str:
    """The first line of the lesson's first graded test cell (where Run All stops, unanswered)."""
    return next(c.source.splitlines()[0] for c in cells.instructor(LESSON).cells if cells.is_test(c))


def answer_cells_on_disk(path: Path) -> dict[str, str]:
    return {cells.grade_id(c): c.source for c in nbformat.read(path, as_version=4).cells
            if cells.is_solution(c)}


# ---------------------------------------------------------------------------------------
# The server: scripts/lab on a free loopback port with a token, its root on a temp copy of
# notebooks/; stopped (its whole process group, then any kernel left) whatever happens.


def _kernel_pids(kernel_id: str) -> list[int]:
    """Processes whose command line names this kernel's connection file (Linux /proc)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(f"kernel-{kernel_id}.json".encode() in arg for arg in argv):
            pids.append(int(proc.name))
    return pids


def _argv(pid: int) -> list[str]:
    return [a.decode() for a in (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0") if a]


class Lab:
    def __init__(self, root: Path, log: Path):
        self.root = root
        self.log = log
        self.port = free_ports()
        self.token = os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.kernel_pids: set[int] = set()
        self.proc = None

    def api(self, path: str):
        req = urllib.request.Request(f"{self.url}/api/{path}",
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def start(self, workspaces: Path):
        args = [str(ROOT / "scripts" / "lab"), f"--port={self.port}", "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                f"--LabApp.workspaces_dir={workspaces}"]  # keep the student's workspace untouched
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scripts/lab exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{self.log.read_text()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server shuts its kernels down
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in self.kernel_pids:  # kernels run in sessions of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self._log_file.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    server = Lab(root, ARTIFACTS / "jupyterlab.log")
    try:
        server.start(tmp / "workspaces")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 900})
            pg.set_default_timeout(60_000)
            yield pg
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------
# The student's session, step by step.


class Steps:
    def __init__(self, page, lab):
        self.page = page
        self.lab = lab
        self.shots: list[tuple[Path, str]] = []
        self.validate_seconds: list[float] = []  # each Validate, from the click to its dialog (printed)

    def shot(self, name: str, what: str):
        path = ARTIFACTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append((path, what))

    def show(self, locator):
        """Scroll locator into view and let the page paint it (cells off screen are not drawn)."""
        from playwright.sync_api import expect

        locator.scroll_into_view_if_needed()
        expect(locator).to_be_in_viewport()
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def cell(self, text: str):
        """The code cell whose editor contains text."""
        from playwright.sync_api import expect

        cells = self.page.locator(".jp-Notebook .jp-CodeCell").filter(
            has=self.page.locator(".cm-content", has_text=text))
        # JupyterLab draws a long notebook's cells a few at a time after it opens: wait for this one.
        expect(cells, f"expected one code cell containing {text!r}").to_have_count(1)
        return cells.first

    def run(self, cell, action, timeout_s=RUN_S):
        """Do action (which runs cell, and maybe more); wait until cell has a new execution
        count, no cell is queued or running ([*]) and the kernel is idle."""
        prompt = cell.locator(".jp-InputPrompt")
        before = prompt.text_content()
        action()
        self.page.wait_for_function(
            r"""([prompt, before]) => {
                 const prompts = [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')];
                 const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
                 return /\[\d+\]/.test(prompt.textContent) && prompt.textContent !== before
                        && !prompts.some(p => p.textContent.includes('*'))
                        && status && status.dataset.status === 'idle';
               }""", arg=[prompt.element_handle(), before], timeout=timeout_s * 1000)

    def menu(self, menu: str, item: str):
        self.page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=menu).click()
        self.page.locator(".lm-Menu .lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel",
                          has_text=re.compile(f"^{re.escape(item)}$")).click()

    def type_answer(self, text: str, answer: str):
        """Replace the content of the cell containing text by answer, as typed by the student."""
        editor = self.cell(text).locator(".cm-content")
        editor.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.insert_text(answer)

    def run_cell_and_its_test(self, text: str):
        """Shift+Enter in the answer cell, then in the test cell below it; the test cell's output."""
        answer = self.cell(text)
        test = answer.locator("xpath=following-sibling::div[contains(@class, 'jp-CodeCell')][1]")

        def shift_enter_twice():
            answer.locator(".cm-content").click()
            self.page.keyboard.press("Shift+Enter")
            self.page.keyboard.press("Shift+Enter")

        self.run(test, shift_enter_twice)
        return test.locator(".jp-OutputArea").text_content()

    def validate(self) -> tuple[str, str]:
        """Press Validate; the dialog's class (validation-failed, -success, ...) and text."""
        started = time.monotonic()
        self.page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
        dialog = self.page.locator(".jp-Dialog", has_text="Validation Results")
        dialog.wait_for(timeout=RUN_S * 1000)
        self.validate_seconds.append(time.monotonic() - started)
        message = dialog.locator("#validation-message")
        return message.get_attribute("class"), message.inner_text()

    def close_dialog(self):
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.locator(".jp-Dialog").wait_for(state="detached")


def test_a_student_works_through_lesson_01_in_jupyterlab(lab, page, capsys):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # a busy 2-core machine can take a while to draw
    steps = Steps(page, lab)
    answers = solutions()
    make_batch_id, make_batch = answer_of(answers, "make_batch")
    get_pixel_id, get_pixel = answer_of(answers, "get_pixel")
    wrong_get_pixel = get_pixel.replace(".item()", "")  # returns a 0D tensor, not a number
    assert wrong_get_pixel != get_pixel
    original = (NOTEBOOKS / NOTEBOOK).read_bytes()
    started = time.monotonic()
    try:
        # scripts/lab told the student where to go.
        log = lab.log.read_text()
        assert f"http://127.0.0.1:{lab.port}/lab" in log, f"scripts/lab printed no URL:\n{log}"

        # 1. Open the lesson: JupyterLab with the course's settings, the Validate button, the
        #    course's kernel started without asking, no instructor panel, no news pop-up.
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
        page.locator(".jp-Notebook").wait_for()
        validate = page.locator(".jp-NotebookPanel-toolbar .validate-button")
        expect(validate, "no Validate button in the notebook's toolbar").to_be_visible()
        expect(validate).to_have_text("Validate")
        expect(page.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName")).to_have_text(
            "Python 3 (ipykernel)")
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached()
        expect(page.get_by_text("Create Assignment")).to_have_count(0)
        expect(page.get_by_text(re.compile("Jupyter news", re.I))).to_have_count(0)
        expect(page.locator(".jp-Dialog")).to_have_count(0)  # no kernel chooser, no error
        config = json.loads(page.locator("#jupyter-config-data").text_content())
        disabled = set(config.get("disabledExtensions", []))
        assert not disabled & set(STUDENT_PLUGINS), f"student plugins disabled: {disabled & set(STUDENT_PLUGINS)}"
        assert set(HIDDEN_PLUGINS) <= disabled, f"not disabled: {set(HIDDEN_PLUGINS) - disabled}"
        steps.shot("lesson-opened", "lesson 01 just opened: Validate button in the toolbar, "
                   "kernel Python 3 (ipykernel) idle, no Create Assignment panel, no news pop-up")

        # 2. The figures: every markdown image (the lesson's cell attachments) has loaded.
        nb = nbformat.read(lab.root / NOTEBOOK, as_version=4)
        figures = [m for c in nb.cells if c.cell_type == "markdown"
                   for m in re.findall(r"!\[[^\]]*\]\(attachment:([^)\s]+)\)", c.source)]
        assert len(figures) >= 7, f"lesson 01 should show its 0D to 6D figures, found {figures}"
        images = page.locator(".jp-Notebook .jp-MarkdownOutput img")
        try:
            page.wait_for_function(
                """n => { const imgs = [...document.querySelectorAll('.jp-Notebook .jp-MarkdownOutput img')];
                          return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
                arg=len(figures), timeout=30_000)
            rendered = True
        except PlaywrightTimeout:
            rendered = False
        if not rendered:
            found = images.evaluate_all(
                "imgs => imgs.map(i => [i.alt, i.getAttribute('src').slice(0, 40), i.naturalWidth])")
            pytest.fail(f"{len(figures)} figures referenced ({figures}), but not all render; the images "
                        f"in the page (alt, src, naturalWidth) are: {found}")
        expect(images).to_have_count(len(figures))
        steps.show(images.nth(3))
        steps.shot("figure", "a figure of the lesson (the 3D tensor), rendered from its cell attachment")

        # 3. No dead panel: alone, a learner has no class to fetch from, so neither the Assignments
        #    panel nor nbgrader's menu (which only opens panels) is there.
        menus = page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").all_inner_texts()
        assert "Nbgrader" not in menus, f"a learner on their own sees nbgrader's menu: {menus}"
        expect(page.get_by_text("Released assignments")).to_have_count(0)
        steps.shot("menus", f"the menu bar of a learner on their own: {', '.join(menus)}; no Assignments panel")

        # 4. Run all cells: the lesson's demonstrations run in the course's Python, and the run
        #    stops at the first exercise, whose test fails while it is unanswered.
        first_test = steps.cell(first_test_line())
        steps.run(first_test, lambda: steps.menu("Run", "Run All Cells"))
        outputs = page.locator(".jp-Notebook .jp-OutputArea").all_text_contents()
        torch_version = version("torch").split("+")[0]
        assert any(f"torch {torch_version}" in o for o in outputs), "the setup cell printed no torch version"
        expect(first_test.locator(".jp-OutputArea")).to_contain_text("NotImplementedError")
        sessions = [s for s in lab.api("sessions") if s["path"] == NOTEBOOK]
        assert len(sessions) == 1, f"expected one kernel session for the lesson: {sessions}"
        pids = _kernel_pids(sessions[0]["kernel"]["id"])
        lab.kernel_pids.update(pids)
        assert pids, "could not find the kernel's process"
        kernel_python = Path(_argv(pids[0])[0])
        assert kernel_python.parent.resolve() == (Path(sys.prefix) / "bin").resolve(), \
            f"the kernel runs {kernel_python}, not the course environment's Python ({sys.prefix})"
        steps.show(first_test)
        steps.shot("run-all", "after Run > Run All Cells: the run stops at exercise 1's test, "
                   "NotImplementedError while it is unanswered")

        # 5. One right answer (make_batch) and one wrong one (get_pixel returns a tensor).
        steps.type_answer("def make_batch(n):", make_batch)
        steps.type_answer("def get_pixel(img, c, row, col):", wrong_get_pixel)
        out = steps.run_cell_and_its_test("def make_batch(n):")
        assert "Error" not in out, f"make_batch's test should pass, got:\n{out}"
        out = steps.run_cell_and_its_test("def get_pixel(img, c, row, col):")
        assert "AssertionError" in out and "not a tensor" in out, f"get_pixel's test should fail, got:\n{out}"
        steps.show(steps.cell("def get_pixel(img, c, row, col):"))
        steps.shot("answers", "make_batch answered right (its test passes), get_pixel wrong "
                   "(its test fails: a tensor instead of a number)")

        # 6. Validate: the dialog names the failing test (get_pixel's), not the passing one.
        kind, text = steps.validate()
        assert "validation-failed" in kind, f"Validate should report failures, got {kind}:\n{text}"
        assert "AssertionError: get_pixel should return a Python number, not a tensor" in text, text
        assert "b = make_batch(4)" not in text, f"make_batch's test passed, the dialog lists it:\n{text}"
        assert "iris_tensor(" in text, f"the unanswered exercise 2 should be listed as failing:\n{text}"
        steps.show(page.locator("#validation-message pre", has_text="AssertionError: get_pixel"))
        steps.shot("validate-failed", "Validate with one right and one wrong answer: the dialog lists "
                   "get_pixel's failing test and its message, and the still unanswered exercises")
        steps.close_dialog()

        # 7. Fix get_pixel, answer the other exercises, validate again: success.
        steps.type_answer("def get_pixel(img, c, row, col):", get_pixel)
        stubs = answer_cells_on_disk(NOTEBOOKS / NOTEBOOK)
        for grade_id, answer in answers.items():
            if grade_id not in (make_batch_id, get_pixel_id):
                steps.type_answer(stubs[grade_id].splitlines()[0], answer)  # found by its first line
        kind, text = steps.validate()
        assert "validation-success" in kind, f"all answers are right, Validate says ({kind}):\n{text}"
        assert "Success! Your notebook passes all the tests." in text
        steps.shot("validate-success", "Validate after fixing get_pixel and answering the rest: Success")
        steps.close_dialog()

        # 7b. Run all cells again, every exercise answered: the run goes to the end and the plots
        #     (the iris scatter plot, ...) render.
        steps.run(steps.cell(first_test_line()), lambda: steps.menu("Run", "Run All Cells"))
        plots = page.locator(".jp-Notebook .jp-OutputArea-output img")
        expect(plots.first).to_be_attached()
        widths = plots.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 0 for w in widths), f"a plot did not render (image widths {widths})"
        steps.shot("run-all-answered", "Run All Cells with every exercise answered: the plots render")

        # 8. Save; the notebook on disk holds the student's answers.
        saved_at = (lab.root / NOTEBOOK).stat().st_mtime_ns
        page.keyboard.press("Escape")  # command mode
        steps.menu("File", "Save Notebook")
        deadline = time.monotonic() + 30
        while (lab.root / NOTEBOOK).stat().st_mtime_ns == saved_at and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (lab.root / NOTEBOOK).stat().st_mtime_ns != saved_at, "File > Save Notebook wrote nothing"
        expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
        saved = answer_cells_on_disk(lab.root / NOTEBOOK)
        assert saved == answers, "the saved notebook does not hold the answers typed in the browser"
        assert (NOTEBOOKS / NOTEBOOK).read_bytes() == original, "the repository's notebook changed"
        steps.shot("saved", "after File > Save Notebook: no unsaved-changes mark on the tab")

        log = lab.log.read_text()
        assert "Unwritable directory" not in log and "Traceback" not in log, \
            f"the server logged an error:\n{log}"
    except BaseException:
        try:
            steps.shot("failure", "the page when the test failed")
        except Exception:
            pass
        raise
    finally:
        with capsys.disabled():
            print(f"\nbrowser test: {time.monotonic() - started:.0f} s; screenshots and server log "
                  f"in {ARTIFACTS.relative_to(ROOT)}/:")
            for path, what in steps.shots:
                print(f"  {path.relative_to(ROOT)}: {what}")
            print(f"  {lab.log.relative_to(ROOT)}: the JupyterLab server's log")
            times = ", ".join(f"{t:.1f} s" for t in steps.validate_seconds)
            print(f"  Validate, from the click to its dialog: {times}")
