"""The grades table and the class report of a graded lesson (written by `python -m course grade`).

grades.csv has one row per student: status (graded; failed: the submission's fault; not graded: the
grader's) and the reason, one column per graded
cell, the total and the maximum. report.md (with report.png) shows the score distribution,
the mean score per exercise and the exercises most students failed; students whose grading
failed are listed, not counted.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after matplotlib.use, which must come first)
import pandas as pd  # noqa: E402 (after matplotlib.use, which must come first)
from matplotlib.ticker import MaxNLocator  # noqa: E402 (after matplotlib.use, which must come first)


def grades_table(results: dict, points: dict[str, float]) -> pd.DataFrame:
    """One row per student (course.grading.Result), one column per graded cell (in order)."""
    rows = []
    for student, result in sorted(results.items()):
        graded = result.status == "graded"
        row = {"student": student, "status": result.status, "reason": result.reason}
        for cell in points:
            row[cell] = result.cell_scores.get(cell, 0.0) if graded else None
        row["total"] = result.score if graded else None
        row["max_score"] = sum(points.values())
        rows.append(row)
    return pd.DataFrame(rows, columns=["student", "status", "reason", *points, "total", "max_score"])


def exercise_name(cell: str, lesson: str) -> str:
    """'01-tensors-ex3-tests' -> 'ex3'."""
    return cell.removeprefix(f"{lesson}-").removesuffix("-tests")


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """A DataFrame as markdown table lines (numbers with at most two decimals)."""
    def cell(v):
        return f"{v:.2f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)

    return ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False))]


def class_report(table: pd.DataFrame, lesson: str, points: dict[str, float], out: Path) -> Path:
    """Write report.md and report.png into ``out``; return the markdown file."""
    graded = table[table.status == "graded"]
    failed = table[table.status != "graded"]
    total = sum(points.values())
    names = [exercise_name(cell, lesson) for cell in points]
    exercises = pd.DataFrame({
        "exercise": names,
        "points": list(points.values()),
        "mean score": [graded[cell].mean() if len(graded) else float("nan") for cell in points],
        "full marks (%)": [round(100 * (graded[cell] >= p).mean()) if len(graded) else ""
                           for cell, p in points.items()],
        "failed (%)": [round(100 * (graded[cell] == 0).mean()) if len(graded) else "" for cell in points],
    }).sort_values(["failed (%)", "exercise"], ascending=[False, True])

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    left.hist(graded.total, bins=[x - 0.5 for x in range(int(total) + 2)], color="#4c72b0", edgecolor="white")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set(title=f"{lesson}: total scores ({len(graded)} students)", xlabel=f"score (out of {total:g})",
             ylabel="students")
    means = [graded[cell].mean() / p * 100 if len(graded) else 0 for cell, p in points.items()]
    right.bar(names, means, color="#55a868")
    right.set(title="mean score per exercise", ylabel="% of the points", ylim=(0, 100))
    png = out / "report.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)

    lines = [f"# {lesson}: class report", "",
             f"{len(table)} students: {len(graded)} graded, {len(failed)} failed or not graded (listed below, "
             "not counted).", ""]
    if len(graded):
        lines += [f"Total score out of {total:g}: mean {graded.total.mean():.2f}, median {graded.total.median():g}, "
                  f"lowest {graded.total.min():g}, highest {graded.total.max():g}; "
                  f"{(graded.total >= total).sum()} with full marks, {(graded.total == 0).sum()} with 0.", ""]
    lines += [f"![score distribution and mean score per exercise]({png.name})", "",
              "## Exercises, the most often failed first", "",
              "Failed: 0 points for the exercise.", "",
              *markdown_table(exercises), ""]
    if len(failed):
        lines += ["## Students whose grading failed", "", "| student | status | why |", "|---|---|---|"]
        lines += [f"| {row.student} | {row.status} | {row.reason.replace('|', '/')} |" for row in failed.itertuples()]
        lines.append("")
    md = out / "report.md"
    md.write_text("\n".join(lines))
    return md
