"""nbgrader settings for the student's JupyterLab (found through JUPYTER_CONFIG_DIR).

nbgrader's Validate server extension reads nbgrader_config.py from the Jupyter config path and
from the current folder, which is not the course folder. This file makes it use the course's
settings (timeouts, minimal tracebacks) wherever the server runs.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

load_subconfig(str(Path(__file__).resolve().parent.parent / "nbgrader_config.py"))  # noqa: F821 (traitlets provides it when it loads this file)
