"""nbgrader settings for the course.

The instructor's single source is solutions/<lesson>/<lesson>.ipynb; `make release`
generates the student versions into notebooks/. Grading folders (submitted/,
autograded/, feedback/, gradebook.db; release/ and grades/ from `make grade`) are created
beside this file and ignored by git.
"""

from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from course.settings import CELL_TIMEOUT, COURSE_ID

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# Every cell gets at most this many seconds; a cell that runs longer (an endless
# loop, say) is interrupted, scores 0, and the cells after it still run.
c.Execute.timeout = CELL_TIMEOUT
# Minimal tracebacks: a failing hidden test shows its message, never its source line.
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"]

# nbgrader gives 0 to a test cell with any stderr output, so a library warning or a
# progress bar would zero a correct answer. Drop stderr streams before scoring: an
# exception (an "error" output) still fails the cell.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"[\s\S]"

# Autograde restores test cells a student edited; this also puts back one they deleted
# (and grades it), instead of scoring it 0 without a word.
c.OverwriteCells.add_missing_cells = True

# Feedback shows the student's code, scores and the visible tests, never the hidden ones.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
