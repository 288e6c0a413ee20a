"""The data helpers: shipped Iris, prepared Fashion-MNIST, and clear errors when data is missing."""

import gzip
import hashlib
import re

import pandas as pd
import pytest
from torchvision import datasets

import course
from course import data
from course.paths import ROOT


def test_iris_csv_matches_the_checksum_in_data_readme():
    readme = (ROOT / "data" / "README.md").read_text()
    documented = re.search(r"iris\.csv.*?([0-9a-f]{64})", readme, re.S).group(1)
    assert hashlib.sha256(course.iris_csv().read_bytes()).hexdigest() == documented


def test_iris_has_150_rows_of_three_species():
    iris = pd.read_csv(course.iris_csv())
    assert iris.shape == (150, 5)
    assert iris["species"].value_counts().to_dict() == {"setosa": 50, "versicolor": 50, "virginica": 50}


def test_fashion_mnist_loads_with_the_real_torchvision_class():
    root = course.fashion_mnist_root()
    train = datasets.FashionMNIST(root=root, train=True, download=False)
    test = datasets.FashionMNIST(root=root, train=False, download=False)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.data.shape == (60000, 28, 28) and int(train.targets.max()) == 9


def test_missing_fashion_mnist_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    with pytest.raises(course.DataMissingError, match=r"make data"):
        course.fashion_mnist_root()


def test_missing_iris_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    with pytest.raises(course.DataMissingError, match=r"iris\.csv is missing"):
        course.iris_csv()


def test_prepare_unpacks_the_debian_files_and_then_reuses_them(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    debian.mkdir()
    raw = data.fashion_mnist_raw()  # the real, prepared files stand in for Debian's
    for name in data.FASHION_MNIST_FILES:
        with gzip.open(debian / f"{name}.gz", "wb", compresslevel=1) as f:
            f.write((raw / name).read_bytes())
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)
    root = tmp_path / "data"
    assert data.prepare_fashion_mnist(root, log=lambda *_: None) == "Debian package"
    assert data.prepare_fashion_mnist(root, log=lambda *_: None) == "already there"


def test_prepare_rejects_a_corrupt_file(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    debian.mkdir()
    for name, (size, _) in data.FASHION_MNIST_FILES.items():
        with gzip.open(debian / f"{name}.gz", "wb", compresslevel=1) as f:
            f.write(b"\0" * size)  # right size, wrong content
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)
    with pytest.raises(course.DataMissingError, match="wrong SHA-256"):
        data.prepare_fashion_mnist(tmp_path / "data", log=lambda *_: None)


def test_no_download_is_tried_when_a_source_is_there(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.FashionMNIST, "download", lambda self: pytest.fail("tried to download"))
    data.prepare_fashion_mnist(log=lambda *_: None)
