"""pytest configuration for running notebooks with nbval.

Student versions (notebooks/) are executed, not compared: they have no stored outputs.
Their solution cells raise NotImplementedError, which is allowed; every graded test
cell must fail (a strict expected failure), so a test that passes without an answer
fails the build. Their kernels run as nbgrader's autograder runs them
(NBGRADER_EXECUTION=autograde), so a lesson's long training takes its short grading
path there; the full path runs, and is compared, in solutions/.

`make test` runs the tests on a pytest-xdist worker per core (``-n auto --dist loadscope``):
each notebook's cells run in order on one worker (they share a kernel), and so do a test
module's tests (its fixtures are made once). The longest files start first, so that the
workers finish together. Each worker's kernels get their share of the cores as torch's threads
(OMP_NUM_THREADS): two kernels with two threads each on two cores ran lesson 06's training more
than three times slower than one alone (its threads wait for each other, spinning).
"""

import os

import pytest

from course.cells import is_graded, is_solution
from course.paths import NOTEBOOKS

# The longest files on the 2-core CI machine (about 60 to 300 s each), in that order; the others follow.
LONGEST_FIRST = ("tests/test_grading.py", "solutions/06-cnn-classifier/06-cnn-classifier.ipynb", "tests/test_hub.py",
                 "solutions/07-fast-training/07-fast-training.ipynb", "tests/test_grading_class.py",
                 "tests/test_grading_dask.py", "tests/test_browser.py")


if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # in a pytest-xdist worker: what its kernels inherit
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.update(OMP_NUM_THREADS=_share, MKL_NUM_THREADS=_share)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most four (each grading test starts a Dask worker per core)."""
    return max(1, min(os.cpu_count() or 1, 4))


def pytest_collection_modifyitems(items):
    rank = {path: k for k, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: a file's order stays
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is None or NOTEBOOKS not in item.path.parents:
            continue
        if is_solution(cell):
            item.options["check_exception"] = True  # the stub raises NotImplementedError
        elif is_graded(cell):
            item.add_marker(pytest.mark.xfail(
                strict=True, reason="a graded test cell must fail while the exercise is unanswered"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Set the grader's environment before nbval starts a student version's kernel."""
    if NOTEBOOKS in item.path.parents:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    else:
        os.environ.pop("NBGRADER_EXECUTION", None)
