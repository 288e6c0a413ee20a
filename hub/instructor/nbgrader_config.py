"""nbgrader for the instructor on the class's hub: the hub's course folder (its nbgrader_config.py
loads the course's settings), the class's exchange."""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

hub = Path(os.environ["COURSE_HUB_ROOT"])
load_subconfig(str(hub / "course" / "nbgrader_config.py"))  # noqa: F821 (traitlets provides it when it loads this file)
c.Exchange.root = str(hub / "exchange")
c.ExchangeFactory.collect = "course.exchange.LinkKeepingCollect"  # a link a student left in the inbox stays a link
