"""JupyterLab settings for the course (used by `make lab`, which points JUPYTER_CONFIG_DIR here).

A learner on their own gets Validate. The instructor-only nbgrader extensions (formgrader,
course list, create assignment) are off here and in labconfig/page_config.json, and so is the
Assignments panel: it fetches and submits through a class's exchange, which only the class's
hub has (hub/student/ turns it on there). nbgrader's own settings, which Validate uses, are in
nbgrader_config.py beside this file.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

course_root = Path(__file__).resolve().parent.parent
c.ServerApp.root_dir = str(course_root / "notebooks")
c.ServerApp.open_browser = False

# Instructor-only nbgrader server extensions, and the hub's assignment list (their lab plugins are
# disabled in labconfig/).
c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
    "nbgrader.server_extensions.assignment_list": False,
}

# The course's kernel only: "python3", which in a virtual or conda environment is the one of that
# environment (Jupyter prefers it to a "python3" kernel in the user's home folder).
c.KernelSpecManager.allowed_kernelspecs = {"python3"}
