"""nbgrader's exchange as the class's hub uses it (course/hub.py)."""

import os
from pathlib import Path

from nbgrader.exchange.default.submit import ExchangeSubmit


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, with the submission closed to the other students (hub/student/nbgrader_config.py).

    nbgrader leaves a submission's folder open to all (0777), hidden only by its unguessable name
    in an inbox that students cannot list: a name that leaks (a log, a shared screen) lets anyone
    read or change it. Here only the student and the inbox's group can enter it: the folder takes
    the inbox's group (the instructors, course/hub.py) from its setgid bit when it is made."""

    def copy_files(self):
        super().copy_files()
        os.chmod(Path(self.inbound_path) / self.assignment_filename, 0o770)
