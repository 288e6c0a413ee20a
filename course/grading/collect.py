"""Submissions in: a class's files sorted into submitted/<student>/<lesson>/ and checked.

A class comes as a folder with a folder per student (``<student>/<anything>.ipynb`` or
nbgrader's ``<student>/<lesson>/<lesson>.ipynb``), or as what an LMS exports: a zip file, or
a folder of files, named ``<student>_<anything>.ipynb`` (nbgrader's zip_collect sorts them;
the student id is everything before the first underscore).

A link is never followed: the grader could read any file on the machine through it (a
solution, the gradebook) and hand it to the student's kernel. A link is kept as a link, a
notebook that is a link is not graded, and a job never carries one.
"""

import hashlib
import shutil
import tempfile
from pathlib import Path

import nbformat

from course.lessons import nbgrader
from course.settings import LMS_FILE_NAME

# LMS exports name each file <student>_<anything>.ipynb (zip_collect matches the whole path).


def collect(lesson: str, submissions: Path, course_root: Path, write_config) -> list[str]:
    """Copy a class's submissions to <course_root>/submitted/<student>/<lesson>/; return the students.

    A student's notebook is renamed <lesson>.ipynb when it is the only one they sent.
    """
    submissions = Path(submissions)
    with tempfile.TemporaryDirectory(prefix="collect-") as tmp:
        if submissions.is_file() or any(p.suffix in (".ipynb", ".zip") for p in submissions.iterdir()):
            submissions = zip_collect(lesson, submissions, Path(tmp), write_config)
        students = sorted(p.name for p in submissions.iterdir() if _is_folder(p) and not p.name.startswith((".", "__")))
        for student in students:
            folder = submissions / student
            folder = folder / lesson if _is_folder(folder / lesson) else folder
            dest = course_root / "submitted" / student / lesson
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for path in folder.iterdir():
                if path.is_symlink():
                    (dest / path.name).symlink_to(path.readlink())
                elif _is_file(path):
                    shutil.copyfile(path, dest / path.name)
            notebooks = list(dest.glob("*.ipynb"))
            if len(notebooks) == 1:
                notebooks[0].rename(dest / f"{lesson}.ipynb")
    return students


def zip_collect(lesson: str, export: Path, scratch: Path, write_config) -> Path:
    """Collect an LMS export (a zip, or a folder of <student>_<anything>.ipynb) with nbgrader zip_collect.

    Returns the folder of per-student folders it made (<student>/<lesson>/...).
    """
    write_config(scratch)
    archive = scratch / "downloaded" / lesson / "archive"
    archive.mkdir(parents=True)
    for path in [export] if export.is_file() else sorted(export.iterdir()):
        if _is_file(path):
            shutil.copyfile(path, archive / path.name)
    nbgrader("zip_collect", lesson, "--force", f"--FileNameCollectorPlugin.named_regexp={LMS_FILE_NAME}", cwd=scratch)
    (scratch / "submitted").mkdir(exist_ok=True)
    return scratch / "submitted"


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def check_submission(folder: Path, lesson: str) -> str:
    """Why a submission folder cannot be graded, or ''."""
    if (folder / f"{lesson}.ipynb").is_symlink():
        return f"{lesson}.ipynb is a link, not a file: links are not graded (submit the notebook itself)"
    notebooks = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    if f"{lesson}.ipynb" not in notebooks:
        if not notebooks:
            return "no notebook submitted"
        return f"several notebooks and none is {lesson}.ipynb: {', '.join(notebooks)}"
    try:
        nbformat.read(folder / f"{lesson}.ipynb", as_version=4)
    except Exception as error:  # noqa: BLE001 (any reason a file is not a notebook)
        return f"{lesson}.ipynb is not a valid notebook: {str(error).splitlines()[0][:200]}"
    return ""


def submission_files(folder: Path) -> dict[str, bytes]:
    """The files of a submission folder, by name (what a grading job carries); links left out."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if _is_file(path)}


def checksum(files: dict[str, bytes]) -> str:
    """A checksum of everything a student submitted."""
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest()
