"""JupyterLab settings for the course (used by `make lab`, which points JUPYTER_CONFIG_DIR here)."""

from pathlib import Path

c = get_config()  # noqa: F821

course_root = Path(__file__).resolve().parent.parent
c.ServerApp.root_dir = str(course_root / "notebooks")
c.ServerApp.open_browser = False
