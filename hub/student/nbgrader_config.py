"""nbgrader for a student on the class's hub: the course's settings (Validate), the class's exchange."""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

load_subconfig(str(Path(__file__).resolve().parents[2] / "nbgrader_config.py"))  # noqa: F821 (traitlets provides it when it loads this file)
c.Exchange.root = str(Path(os.environ["COURSE_HUB_ROOT"]) / "exchange")
c.ExchangeFactory.submit = "course.exchange.PrivateSubmit"  # a submission only its student and the instructors can open
