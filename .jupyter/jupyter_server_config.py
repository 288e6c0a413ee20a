"""JupyterLab settings for the course (used by `make lab`, which points JUPYTER_CONFIG_DIR here).

Students get the nbgrader extensions meant for them (Validate, the assignment list); the
instructor-only ones are off here and in labconfig/page_config.json (formgrader, course list,
create assignment). nbgrader's own settings, which Validate uses, are in nbgrader_config.py
beside this file.
"""

from pathlib import Path

c = get_config()  # noqa: F821

course_root = Path(__file__).resolve().parent.parent
c.ServerApp.root_dir = str(course_root / "notebooks")
c.ServerApp.open_browser = False

# Instructor-only nbgrader server extensions (their lab plugins are disabled in labconfig/).
c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
}

# The course's kernel only: "python3", which in a virtual or conda environment is the one of that
# environment (Jupyter prefers it to a "python3" kernel in the user's home folder).
c.KernelSpecManager.allowed_kernelspecs = {"python3"}
