"""nbgrader's exchange as the class's hub uses it (course/hub.py)."""

import functools
import os
import shutil
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect
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


class LinkKeepingCollect(ExchangeCollect):
    """nbgrader's collect, copying links in a submission as links (hub/instructor/nbgrader_config.py).

    A student owns their submission's folder in the inbox and can put a link there after
    submitting; nbgrader's copy would follow it with the instructor's rights (their course folder,
    the gradebook with the hidden tests) and the copy would reach the student's kernel when it is
    graded. Copied as a link, the grader leaves it out (course/grading/collect.py)."""

    def do_copy(self, src, dest, log=None):
        copytree = shutil.copytree
        shutil.copytree = functools.partial(copytree, symlinks=True)  # nbgrader's do_copy calls shutil.copytree
        try:
            super().do_copy(src, dest, log)
        finally:
            shutil.copytree = copytree
