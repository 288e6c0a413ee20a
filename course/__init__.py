"""Helpers for the PyTorch Basics course.

Lessons use only a few of them: where the data is, and nothing that is the lesson
itself. The rest (figures, release, grading) is instructor tooling.
"""

import sys

from course.data import DataMissingError, fashion_mnist_root, iris_csv
from course.paths import data_dir

# jsonschema, which nbformat imports, checks the "iri" string format with rfc3987_syntax if it can import
# it, and that import builds a parser: 1.2 s of CPU in every process that reads a notebook (each grading
# worker, each command), for a format that no notebook or Jupyter schema uses. It stays out; jsonschema
# then leaves "iri" unchecked.
sys.modules.setdefault("rfc3987_syntax", None)

__all__ = ["DataMissingError", "data_dir", "fashion_mnist_root", "iris_csv"]
