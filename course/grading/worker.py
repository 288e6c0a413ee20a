"""One grading job: a student's submission in, scores, graded notebook and feedback page out.

``grade_job(job)`` runs where a Dask worker runs it, on this machine or on another one: it
needs the course's Python environment and data, no shared folder. The job carries the
submission's files and the lesson's gradebook (its cells, no student) as bytes; the worker
makes a scratch nbgrader course in its temporary folder, autogrades the student there with
nbgrader (the kernel in a sandbox, see sandbox.py) and generates their feedback, and returns
an ``Outcome``: the scores, the graded notebook and the feedback page as data. Only the
coordinating process writes the course's gradebook (merge.py).

A kernel that dies costs only the cells from the one it died in (``ContainedExecute``). A
failure that is not the student's (the kernel did not start) raises ``NotTheStudentsFault``,
which the engine retries.
"""

import base64
import html
import os
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.bccache
import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from course.cells import grade_id, hidden_lines
from course.grading import forkserver
from course.grading.sandbox import SANDBOX_UID, Limits, Sandbox, protections
from course.paths import ROOT, data_dir
from course.settings import COURSE_ID


class NotTheStudentsFault(Exception):
    """Grading failed for a reason that is not in the submission (retry it)."""


@dataclass(frozen=True)
class Job:
    lesson: str
    student: str
    files: dict[str, bytes]  # the submission: file name -> contents (the notebook is <lesson>.ipynb)
    gradebook: bytes  # the course's gradebook with the lesson's cells and no student
    source_files: dict[str, bytes] = field(default_factory=dict)  # solutions/<lesson>/ files besides the notebook
    cell_timeout: int | None = None  # seconds per cell (None: nbgrader_config.py's)
    limits: Limits = Limits()
    threads: int = 1  # torch threads in the kernel
    modules: frozenset[str] = frozenset()  # what the lesson imports (cells.imported_modules): forked kernels have it
    fork_server: str = ""  # the address of a fork server on the worker's machine to use ('': the worker's own)


@dataclass
class Outcome:
    """What a job returns: the student's grades and pages, or why they could not be graded."""

    student: str
    status: str = "graded"  # graded (reason may say what stopped early), or failed (the submission's fault)
    reason: str = ""
    score: float = 0.0
    max_score: float = 0.0
    cell_scores: dict = field(default_factory=dict)  # grade id -> score
    grades: list = field(default_factory=list)  # per grade cell: what the gradebook records
    comments: list = field(default_factory=list)
    timestamp: object = None
    notebook: bytes = b""  # the autograded notebook
    feedback: bytes = b""  # the feedback page (HTML)
    seconds: dict = field(default_factory=dict)  # phase -> seconds
    protections_off: dict = field(default_factory=dict)  # protection -> why it was off ('' when on)
    worker: str = ""


_one_job_at_a_time = threading.Lock()  # environment variables and the sandbox are per process
_config: Config | None = None
_current: dict = {}  # the running job's sandbox settings and what its kernel did


def course_config() -> Config:
    """The course's nbgrader settings (nbgrader_config.py), read once per worker process."""
    global _config
    if _config is None:
        _config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    return _config


def warm_up() -> str:
    """Import what a job needs before the first job (Dask runs this on every worker)."""
    course_config()
    protections()
    FeedbackPage()  # loads its templates
    return socket.gethostname()


def grade_job(job: Job) -> Outcome:
    """Autograde one submission and generate its feedback in a scratch course."""
    with _one_job_at_a_time, tempfile.TemporaryDirectory(prefix="g-", ignore_cleanup_errors=True) as scratch:
        return _grade(job, Path(scratch))


def _grade(job: Job, scratch: Path) -> Outcome:
    outcome = Outcome(job.student, protections_off=protections(), worker=f"{socket.gethostname()}:{os.getpid()}")
    server = _fork_server(job.modules, job.fork_server)
    if isinstance(server, forkserver.ForkServer):
        server.start()  # its imports (seconds, on a first job) go on while nbgrader prepares the notebook
    lesson, student = job.lesson, job.student
    (scratch / "gradebook.db").write_bytes(job.gradebook)
    _write_files(scratch / "submitted" / student / lesson, job.files)
    _write_files(scratch / "source" / lesson, job.source_files)
    config = Config(course_config())
    config.CourseDirectory.root = str(scratch)
    config.CourseDirectory.source_directory = "source"
    config.CourseDirectory.release_directory = "release"
    config.CourseDirectory.course_id = COURSE_ID
    if job.cell_timeout:
        config.Execute.timeout = job.cell_timeout
    config.Execute.kernel_name = "python3"  # never the kernel a submission's metadata names
    config.GenerateFeedback.exporter_class = FeedbackPage
    config.Autograde.autograde_preprocessors = [
        q for p in _autograde_preprocessors()
        for q in ((ContainedExecute, WithholdHiddenTests) if p is Execute else (p,))]
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    _current.clear()
    _current.update(scratch=scratch, limits=job.limits, threads=job.threads, fork_server=server, died="", died_in="",
                    start_error="")
    for phase, step in (("autograde", api.autograde), ("feedback", api.generate_feedback)):
        start = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = step(lesson, student)
        outcome.seconds[phase] = round(time.monotonic() - start, 2)
        if _current["start_error"]:
            raise NotTheStudentsFault(f"the kernel did not start: {_current['start_error']}")
        if not result["success"]:
            outcome.status, outcome.reason = "failed", _nbgrader_error(result)
            return outcome
    _read_grades(scratch, lesson, student, outcome)
    outcome.notebook = (scratch / "autograded" / student / lesson / f"{lesson}.ipynb").read_bytes()
    outcome.feedback = (scratch / "feedback" / student / lesson / f"{lesson}.html").read_bytes()
    if _current["died"]:
        outcome.reason = (f"the kernel stopped in {_current['died_in']}: {_current['died']}; "
                          "the cells before it were graded, the cells from it on scored 0")
    return outcome


def _autograde_preprocessors() -> list:
    from nbgrader.converters import Autograde

    return list(Autograde.autograde_preprocessors.default())


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / Path(name).name).write_bytes(data)


def _read_grades(scratch: Path, lesson: str, student: str, outcome: Outcome) -> None:
    with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        submission = gb.find_submission(lesson, student)
        notebook = gb.find_submission_notebook(lesson, lesson, student)
        outcome.score, outcome.max_score = notebook.score, notebook.max_score
        outcome.cell_scores = {grade.name: grade.score for grade in notebook.grades}
        outcome.timestamp = submission.timestamp
        for nb in submission.notebooks:
            outcome.grades += [{"notebook": nb.name, "name": g.name, "auto_score": g.auto_score,
                                "manual_score": g.manual_score, "extra_credit": g.extra_credit,
                                "needs_manual_grade": g.needs_manual_grade} for g in nb.grades]
            outcome.comments += [{"notebook": nb.name, "name": c.name, "auto_comment": c.auto_comment,
                                  "manual_comment": c.manual_comment} for c in nb.comments]


def _nbgrader_error(result: dict) -> str:
    """nbgrader's reason for a failed step: its first error line, or the end of its log."""
    lines = [line.strip() for line in (result.get("log", "") + "\n" + result.get("error", "")).splitlines()
             if line.strip()]
    errors = [line for line in lines if "[ERROR]" in line or "Error:" in line]
    return "nbgrader failed: " + (errors[0] if errors else " | ".join(lines[-3:]))[:300]


class FeedbackPage(HTMLExporter):
    """The feedback page: nbconvert's HTML export (with nbgrader's feedback template) less its last pass.

    That pass parses the whole rendered page again with BeautifulSoup, to give images without
    alt text a placeholder and JupyterLab-template cells a tabindex: about half the CPU time of
    a lesson's page (0.35-0.6 s). nbgrader's template is the classic one, which has no such
    cells; the placeholder alt text is added here to the images' tags. Code cells are highlighted
    once per worker process (``HighlightedOnce``).
    """

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = _COMPILED_TEMPLATES
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        self.register_filter("highlight_code", self.filters.get("highlight_code",
                                                                HighlightedOnce(pygments_lexer=lexer, parent=self)))
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=self._init_resources(resources)))
        page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return IMAGE_WITHOUT_ALT.sub(r'<img alt="No description has been provided for this image"\1', page), resources


class HighlightedOnce(Highlight2HTML):
    """nbconvert's highlighting of a code cell, remembered: the students of a class share most of their
    cells (the lesson's own), and highlighting is most of the CPU time of a feedback page (0.2-0.3 s)."""

    def __call__(self, source, language=None, metadata=None):
        key = (source, language or self.pygments_lexer, (metadata or {}).get("magics_language"),
               repr(self.extra_formatter_options))
        if key not in _HIGHLIGHTED:
            if len(_HIGHLIGHTED) > 20_000:  # a few lessons' cells, many times over: a bound, not a working size
                _HIGHLIGHTED.clear()
            _HIGHLIGHTED[key] = super().__call__(source, language, metadata)
        return _HIGHLIGHTED[key]


_HIGHLIGHTED: dict[tuple, str] = {}


class CompiledTemplates(jinja2.BytecodeCache):
    """Templates compiled once per worker process, not once per page (0.16 s of CPU per page)."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_COMPILED_TEMPLATES = CompiledTemplates()
IMAGE_WITHOUT_ALT = re.compile(r"<img((?![^>]*\balt=)[\s>])")


# ---------------------------------------------------------------- the kernel, in its sandbox

class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel in a Sandbox and talks to it over unix sockets."""

    sandbox: Sandbox | None = None
    fork_server: forkserver.SharedForkServer | None = None  # when set, the kernel is forked by it (forkserver.py)
    kernel_arguments: list[str] = []  # ipykernel's command-line arguments

    def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
        """This environment's ipykernel, whatever kernel specs the machine has, in the sandbox."""
        self.kernel_arguments = ["-f", self.connection_file, *(extra_arguments or [])]
        return self.sandbox.command([sys.executable, "-m", "ipykernel_launcher", *self.kernel_arguments])

    def write_connection_file(self, **kwargs):
        result = super().write_connection_file(**kwargs)
        if not self.sandbox.off["separate user"]:  # the kernel, as the sandbox's user, must read it
            os.chown(self.connection_file, SANDBOX_UID, SANDBOX_UID)
        return result


def _fork_server(modules: frozenset[str], address: str = "") -> forkserver.SharedForkServer | None:
    """Where a job's kernel is forked, where kernels can be: the fork server at ``address`` (the grading
    command's) while it listens, else this worker's own, made on first use, and made again to preload more when
    a job's lesson imports ``modules`` that call for more."""
    global _server
    if forkserver.unavailable():
        return None
    shared = forkserver.SharedForkServer(address)
    if address and shared.listening():
        return shared
    _server = (_server or new_fork_server()).serving(modules)
    return _server


def new_fork_server() -> forkserver.ForkServer:
    """A fork server for this machine's grading kernels, not started, preloading what every kernel imports."""
    return forkserver.ForkServer(kernel_env(Path(tempfile.gettempdir()), 1, True))


_server: forkserver.ForkServer | None = None


def kernel_env(workdir: Path, threads: int, private_tmp: bool) -> dict:
    """The kernel's whole environment: nothing of the grader's (tokens, paths) gets in."""
    tmp = "/tmp" if private_tmp else str(workdir / ".tmp")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir),
           "TMPDIR": tmp, "LANG": "C.UTF-8", "NBGRADER_EXECUTION": "autograde", "COURSE_DATA": str(data_dir()),
           "MPLCONFIGDIR": f"{tmp}/matplotlib", "IPYTHONDIR": f"{tmp}/ipython", "XDG_CACHE_HOME": f"{tmp}/cache",
           "JUPYTER_CONFIG_DIR": f"{tmp}/jupyter", "JUPYTER_DATA_DIR": f"{tmp}/jupyter-data",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.update({k: v for k, v in os.environ.items() if k in ("CUDA_VISIBLE_DEVICES", "TZ")})
    return env


def readable_paths() -> tuple[Path, ...]:
    """What a kernel reads: the Python installation and environment, the course package, the data."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent.parent,
             ROOT / "course", data_dir().resolve()}
    return tuple(sorted(p for p in paths if p.exists() and p != Path("/usr")))


class ContainedExecute(Execute):
    """nbgrader's Execute, with the kernel in a sandbox and a kernel death contained to its cell.

    When the kernel dies, the cell it died in gets an error saying why (which limit, when one
    stopped it), and every later code cell gets an error saying it did not run, so they score
    0 while the cells before keep their scores. A kernel that does not start is not the
    student's fault: it is recorded for grade_job, which raises NotTheStudentsFault.
    """

    def __init__(self, **kwargs):
        kwargs["kernel_manager_class"] = SandboxKernelManager
        super().__init__(**kwargs)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        workdir = Path(self.resources["metadata"]["path"]).resolve()
        sockets = _current["scratch"] / "k"
        off = protections()
        self.sandbox = Sandbox(workdir, sockets, _current["limits"], readable_paths(),
                               kernel_env(workdir, _current["threads"], not off["private filesystem"]))
        self.sandbox.prepare()
        if off["private filesystem"]:
            Path(self.sandbox.env["TMPDIR"]).mkdir(exist_ok=True)
        km.sandbox = self.sandbox
        if _current["fork_server"]:
            km.fork_server = _current["fork_server"]
            km.kernel_id = km.kernel_id or str(uuid.uuid4())
            km.provisioner = forkserver.ForkProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
        km.transport, km.connection_file, km.ip = "ipc", str(sockets / "kernel.json"), str(sockets / "ipc")
        km.kernel_spec.interrupt_mode = "message"  # a signal would stop the launcher, not the kernel
        return km

    def preprocess(self, nb, resources=None, km=None):
        self._ran_a_cell = False
        # nbgrader's first pass wrote the notebook with every hidden test restored into the kernel's
        # working folder, and its second pass has read it: the kernel must not find it there.
        # nbgrader writes the graded notebook back when this pass ends.
        Path(resources["metadata"]["path"], f"{resources['unique_key']}.ipynb").unlink(missing_ok=True)
        try:
            return super().preprocess(nb, resources, km)
        except Exception as error:
            if self._ran_a_cell:
                raise
            _current["start_error"] = f"{type(error).__name__}: {error} (its log: {self.sandbox.log_tail()})"[:500]
            raise
        finally:
            if getattr(self, "sandbox", None):
                self.sandbox.close()

    def preprocess_cell(self, cell, resources, index):
        self._ran_a_cell = True
        if _current["died"]:
            if cell.cell_type == "code":
                reason = f"not run: the kernel stopped in an earlier cell ({_current['died']})"
                cell.outputs = [_error("NotRun", reason)]
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            _current["died"] = self.sandbox.verdict() or "the kernel died (os._exit, a crash or a signal)"
            _current["died_in"] = grade_id(cell) or f"cell {index + 1}"
            cell.outputs.append(_error("KernelDied", f"the kernel stopped while running this cell: {_current['died']}"))
            return cell, resources


class WithholdHiddenTests(NbGraderPreprocessor):
    """Outputs that quote a hidden test say so instead, in the graded notebook and so in the feedback.

    The kernel receives each test cell's source to run it, so student code can print it: an
    IPython hook, a verbose traceback of a failing hidden assert. An output that holds a line of a
    hidden test, as it is or spelt the usual ways (whitespace changed, escaped as repr or JSON
    write it, reversed, in base64), keeps its kind (an error still fails its cell) and loses its
    text. A spelling it does not know gets through: the tests run in the student's process.
    """

    def preprocess(self, nb, resources):
        hidden = {squeezed for line in hidden_lines(nb.cells, 8) | {"BEGIN HIDDEN TESTS", "END HIDDEN TESTS"}
                  if len(squeezed := _squeezed(line)) >= 8}
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [_withheld(o) if _quotes(o, hidden) else o for o in cell.outputs]
        return nb, resources


ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
WITHHELD = "[output withheld: it quoted a hidden test]"


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return " ".join(_text(v) for v in (value.values() if isinstance(value, dict) else value))
    return ""


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _spellings(text: str) -> list[str]:
    """``text``, and what it says when it is escaped, reversed or base64; whitespace removed."""
    spellings = [text, text[::-1]]
    try:
        spellings.append(text.encode("latin-1", "backslashreplace").decode("unicode_escape"))
    except ValueError:  # a broken escape: not escaped text
        pass
    for token in BASE64_TOKEN.findall(text):
        try:
            spellings.append(base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "ignore"))
        except ValueError:
            pass
    return [_squeezed(s) for s in spellings]


def _quotes(output, lines: set[str]) -> bool:
    spellings = _spellings(html.unescape(ANSI_CODE.sub("", _text(output))))
    return any(line in spelling for spelling in spellings for line in lines)


def _withheld(output):
    if output.output_type == "error":
        return _error(output.ename, WITHHELD)
    if output.output_type == "stream":
        return nbformat.v4.new_output("stream", name=output.name, text=WITHHELD + "\n")
    return nbformat.v4.new_output("display_data", data={"text/plain": WITHHELD})


def _error(name: str, text: str):
    return nbformat.v4.new_output("error", ename=name, evalue=text, traceback=[f"{name}: {text}"])

