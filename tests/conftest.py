"""Fixtures shared by the grading tests."""

import os

import pytest

from course.grading.engine import Engine
from course.grading.sandbox import protections


@pytest.fixture(scope="session")
def engine():
    """One local Dask cluster (one worker per core) for every grading test of the session."""
    with Engine() as running:
        yield running


@pytest.fixture(scope="session")
def sandboxed():
    """Skip a test that needs every protection of the sandbox where one is off (CI requires them all)."""
    off = {name: why for name, why in protections().items() if why}
    if off:
        message = f"sandbox protections off here: {off}"
        if os.environ.get("COURSE_REQUIRE_SANDBOX"):
            pytest.fail(message)
        pytest.skip(message)
