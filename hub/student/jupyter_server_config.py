"""A student's JupyterLab on the class's hub (JUPYTER_CONFIG_DIR, set by hub/jupyterhub_config.py).

The settings of `make lab` (.jupyter/), with the Assignments panel on: on the hub it fetches
and submits through the class's exchange (nbgrader_config.py beside this file). The hub
chooses the folder (the student's home).
"""

from pathlib import Path

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

load_subconfig(str(Path(__file__).resolve().parents[2] / ".jupyter" / "jupyter_server_config.py"))  # noqa: F821 (traitlets provides it when it loads this file)
for setting in ("root_dir", "open_browser"):
    c.ServerApp.pop(setting, None)
c.ServerApp.jpserver_extensions["nbgrader.server_extensions.assignment_list"] = True
