"""Helpers for the PyTorch Basics course.

Lessons use only a few of them: where the data is, and nothing that is the lesson
itself. The rest (figures, release, grading) is instructor tooling.
"""

from course.data import DataMissingError, fashion_mnist_root, iris_csv
from course.paths import data_dir

__all__ = ["DataMissingError", "data_dir", "fashion_mnist_root", "iris_csv"]
