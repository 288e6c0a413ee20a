"""The benchmark runs the lessons' own recipes, and lesson 07 cites the selection it was made from.

`make bench` itself is timed work, not a test; these tests keep it runnable (the cells it reads
from lessons 06 and 07 still define what it needs) and keep lesson 07's table of validation
accuracies equal to the benchmark file it quotes (`python -m course bench --select`).
"""

import json
import re

import nbformat
import pytest
import torch

from course import bench
from course.paths import BENCHMARKS, solution_notebook


@pytest.fixture(scope="module")
def fast():
    return bench.lesson_namespace(bench.FAST_LESSON)


def test_one_short_epoch_of_each_recipe_runs_from_the_lessons_cells(fast):
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    classic = bench.lesson_namespace(bench.CLASSIC_LESSON)
    X_all, y_all = fast["load_tensors"](True)
    X, y = X_all[:512], y_all[:512]
    recipe = dict(fast["FAST_RECIPE"], num_epochs=1)
    records = bench.run_fast(fast, torch.device("cpu"), X, y, X[:256], y[:256], recipe=recipe)
    assert len(records) == 1 and 0 <= records[0]["test_accuracy"] <= 1 and records[0]["train_seconds"] > 0

    torch.manual_seed(0)
    model = classic["ClassicCNN"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = classic["train_epoch"](model, DataLoader(TensorDataset(X, y), batch_size=64), nn.CrossEntropyLoss(),
                                  optimizer, torch.device("cpu"), progress=False)
    assert isinstance(loss, float) and 0 < loss < 10
    assert 0 <= fast["evaluate"](model, X[:256], y[:256]) <= 1


def _table(text: str) -> dict[str, list[float]]:
    """Rows of a markdown table of accuracies: candidate name -> the percentages in its row."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        numbers = [re.fullmatch(r"(\d+\.\d+) ?%", c) for c in cells[1:]]
        if len(cells) > 1 and numbers and all(numbers):
            rows[cells[0]] = [float(n.group(1)) for n in numbers]
    return rows


def test_lesson_07_quotes_the_selection_benchmark_and_chooses_its_winner(fast):
    result = json.loads((BENCHMARKS / "select-cpu.json").read_text())
    assert [row["candidate"] for row in result["candidates"]] == list(fast["CANDIDATES"]), \
        "lesson 07's CANDIDATES changed: run `python -m course bench --select` again"
    for row in result["candidates"]:
        assert row["recipe"] == fast["CANDIDATES"][row["candidate"]], \
            f"the recipe of {row['candidate']!r} changed: run `python -m course bench --select` again"
    best = max(result["candidates"], key=lambda row: row["mean_validation_accuracy"])
    assert fast["FAST_RECIPE"] == best["recipe"], "FAST_RECIPE should be the candidate with the best validation mean"

    benchmark = _table((BENCHMARKS / "select-cpu.md").read_text())
    lesson = nbformat.read(solution_notebook(bench.FAST_LESSON), as_version=4)
    quoted = [_table(c.source) for c in lesson.cells if c.cell_type == "markdown" and "| candidate |" in c.source]
    assert len(quoted) == 1, "lesson 07 should quote the selection table once"
    assert quoted[0] == benchmark and len(benchmark) == len(result["candidates"]), \
        "lesson 07's table of validation accuracies differs from benchmarks/select-cpu.md"
