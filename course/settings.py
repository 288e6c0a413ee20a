"""The course's settings, in one place: read by the package, nbgrader_config.py, the hub and the tests.

Change a value here, not where it is used. (Paths are in course/paths.py; the pinned package
versions in requirements.txt.)
"""

COURSE_ID = "pytorch-basics"  # nbgrader's course id: the exchange, the gradebook, the hub's folder and group
CELL_TIMEOUT = 60  # seconds a cell may run when grading or validating; a longer one is stopped and scores 0
HUB_ROOT = f"/srv/{COURSE_ID}"  # where `python -m course hub` keeps the class (roster, exchange, course folder)
INSTRUCTORS_GROUP = f"{COURSE_ID}-instructors"  # the system group that may read solutions/ and the course folder
# An LMS export names each file <student id>_<anything>: nbgrader's zip_collect reads the student from it.
LMS_FILE_NAME = r".*/(?P<student_id>[^/_]+)_(?P<file_id>[^/]+)$"
# What of the repository only instructors may read: the hidden tests and every trace of grading. The
# hub makes these readable by INSTRUCTORS_GROUP only; a graded kernel's sandbox does not contain them.
INSTRUCTOR_ONLY = ("solutions", "gradebook.db", "release", "submitted", "autograded", "feedback", "grades")
