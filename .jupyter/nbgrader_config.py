"""nbgrader settings for the student's JupyterLab (found through JUPYTER_CONFIG_DIR).

nbgrader's Validate and assignment-list server extensions read nbgrader_config.py from the
Jupyter config path and from the current folder, which is not the course folder for the
assignment list. This file makes both use the course's settings (timeouts, minimal tracebacks)
wherever the server runs, and gives the assignment list a writable exchange folder inside the
project (git-ignored) instead of /usr/local/share/nbgrader/exchange.
"""

from pathlib import Path

c = get_config()  # noqa: F821

here = Path(__file__).resolve().parent
load_subconfig(str(here.parent / "nbgrader_config.py"))  # noqa: F821

exchange = here / "exchange"
exchange.mkdir(exist_ok=True)
c.Exchange.root = str(exchange)
