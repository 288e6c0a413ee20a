"""Finding and preparing the course data.

    python -m course data        # prepare Fashion-MNIST and check every file

Iris ships with the repository (data/iris.csv). Fashion-MNIST is too big to
commit, so it is prepared into data/FashionMNIST/raw/ (the layout that
torchvision.datasets.FashionMNIST reads with download=False) from, in order:
files already there, the Debian package ``dataset-fashion-mnist``, or
torchvision's own download.
"""

import gzip
import hashlib
import shutil
import sys
from pathlib import Path

from course.paths import data_dir

PREPARE_HINT = "run `make data` in the course folder (or `python -m course data`)"

# The four idx files, uncompressed: size in bytes and SHA-256 (see data/README.md).
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte": (47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": (60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": (7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": (10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}

# Where Debian's dataset-fashion-mnist package puts the gzipped files.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataMissingError(FileNotFoundError):
    """A data file the course needs is not there; the message says what to run."""


def iris_csv() -> Path:
    """Path of the Iris table (150 rows, four measurements and the species)."""
    path = data_dir() / "iris.csv"
    if not path.is_file():
        raise DataMissingError(
            f"{path} is missing. It ships with the course repository: restore it "
            "with `git checkout -- data/iris.csv`, or point $COURSE_DATA at a folder that has it."
        )
    return path


def fashion_mnist_raw(root: Path | None = None) -> Path:
    return Path(root or data_dir()) / "FashionMNIST" / "raw"


def _problems(raw: Path, checksums: bool) -> list[str]:
    """What is wrong with the idx files in ``raw`` (an empty list when nothing is)."""
    problems = []
    for name, (size, expected) in FASHION_MNIST_FILES.items():
        path = raw / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, expected {size}")
        elif checksums and sha256(path) != expected:
            problems.append(f"{name} has the wrong SHA-256 checksum")
    return problems


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fashion_mnist_root() -> Path:
    """The ``root`` to give ``torchvision.datasets.FashionMNIST`` (with download=False).

    Raises DataMissingError, saying what to run, when the files are not prepared.
    """
    root = data_dir()
    problems = _problems(fashion_mnist_raw(root), checksums=False)
    if problems:
        raise DataMissingError(
            f"Fashion-MNIST is not ready in {fashion_mnist_raw(root)} "
            f"({'; '.join(problems)}): {PREPARE_HINT}."
        )
    return root


def prepare_fashion_mnist(root: Path | None = None, log=print) -> str:
    """Put the four idx files into <root>/FashionMNIST/raw/ and verify them.

    Returns where they came from: "already there", "Debian package" or "download".
    """
    raw = fashion_mnist_raw(root)
    if not _problems(raw, checksums=True):
        source = "already there"
    elif all((DEBIAN_DIR / f"{name}.gz").is_file() for name in FASHION_MNIST_FILES):
        raw.mkdir(parents=True, exist_ok=True)
        for name in FASHION_MNIST_FILES:
            log(f"unpacking {DEBIAN_DIR / name}.gz -> {raw / name}")
            with gzip.open(DEBIAN_DIR / f"{name}.gz") as src, open(raw / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        source = "Debian package"
    else:
        log("downloading Fashion-MNIST with torchvision (about 30 MB)")
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(root=str(raw.parent.parent), train=True, download=True)
            FashionMNIST(root=str(raw.parent.parent), train=False, download=True)
        except Exception as error:  # torchvision raises several kinds on a closed network
            raise DataMissingError(
                f"Fashion-MNIST could not be downloaded ({error}). Install the Debian package "
                "(`sudo apt-get install dataset-fashion-mnist`) and run `make data` again, or "
                f"copy the four idx files into {raw}."
            ) from error
        source = "download"
    problems = _problems(raw, checksums=True)
    if problems:
        raise DataMissingError(f"Fashion-MNIST in {raw} failed verification: {'; '.join(problems)}.")
    log(f"Fashion-MNIST: 4 files verified in {raw} (source: {source})")
    return source


def main() -> int:
    try:
        iris = iris_csv()
        print(f"Iris: {iris}")
        prepare_fashion_mnist()
    except DataMissingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

