"""Figures are code: figures/*.png and the lessons' attachments are what the code draws."""

import base64
import io
import re

import matplotlib.image
import numpy as np
import pytest

from course import cells, figures
from course.paths import FIGURES, lesson_ids

NAMES = sorted(figures.FIGURES_BY_NAME)


def pixels(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), format="png")


@pytest.mark.parametrize("name", NAMES)
def test_committed_png_is_what_the_code_draws(name):
    committed = FIGURES / f"{name}.png"
    assert committed.is_file(), f"figures/{name}.png is missing: run `make figures`"
    drawn, stored = pixels(figures.png_bytes(name)), pixels(committed.read_bytes())
    assert drawn.shape == stored.shape and np.abs(drawn - stored).max() < 0.02, \
        f"figures/{name}.png is out of date: run `make figures`"


def test_every_png_in_figures_has_code():
    orphans = {p.stem for p in FIGURES.glob("*.png")} - set(NAMES)
    assert not orphans, f"figures without code in course/figures.py: {orphans}"


@pytest.mark.parametrize("lesson", lesson_ids())
def test_lesson_figures_are_embedded_and_current(lesson):
    for cell in cells.instructor(lesson).cells:
        for name in re.findall(r"attachment:([\w-]+)\.png", cell.source):
            assert name in figures.FIGURES_BY_NAME, f"{lesson} shows {name}.png, which no code draws"
            attached = cell.get("attachments", {}).get(f"{name}.png", {}).get("image/png")
            assert attached, f"{lesson}: {name}.png is not embedded: run `make figures`"
            assert base64.b64decode(attached) == (FIGURES / f"{name}.png").read_bytes(), \
                f"{lesson}: embedded {name}.png is out of date: run `make figures`"


def test_rank_figures_cover_0d_to_6d():
    assert [f"tensor-{rank}d" for rank in range(7)] == [n for n in NAMES if n.startswith("tensor-")]
