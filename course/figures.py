"""The course's figures, drawn by code.

    python -m course figures [LESSON ...]   # write figures/*.png, embed them in the lessons

Each figure is a function returning a matplotlib Figure. ``main`` saves every
figure to figures/<name>.png and puts the same PNG into each solutions/ markdown
cell that shows ``attachment:<name>.png``, so a lesson still shows its figures
when a student has only the assignment folder. ``make release`` then carries
them into notebooks/.
"""

import base64
import io

import matplotlib

matplotlib.use("Agg")  # files only: no window, the same pixels everywhere

import matplotlib.pyplot as plt  # noqa: E402 (after matplotlib.use, which must come first)
import nbformat  # noqa: E402 (after matplotlib.use, which must come first)
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402 (after matplotlib.use, which must come first)

from course.paths import FIGURES, lesson_ids, solution_notebook  # noqa: E402 (after matplotlib.use, which must come first)

CELL = 1.0  # side of one element's square
DEPTH_OFFSET = (0.35, 0.3)  # how far each layer of a cube sits behind the one in front
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]

# The shape drawn for each rank and what its dimensions could mean.
RANK_EXAMPLES = {
    0: ((), "a scalar: one number, e.g. a loss"),
    1: ((4,), "a vector: e.g. one flower's 4 measurements"),
    2: ((3, 4), "a matrix: rows x columns, e.g. flowers x measurements"),
    3: ((3, 3, 4), "a cube: channels x height x width, e.g. one colour image"),
    4: ((2, 3, 3, 4), "a row of cubes: batch x channels x height x width"),
    5: ((2, 2, 3, 3, 4), "a matrix of cubes: batch x time x channels x height x width"),
    6: ((2, 2, 2, 3, 3, 4), "a row of matrices of cubes, e.g. 2 groups of 5D data"),
}


def _grid(ax, x, y, rows, cols, colour, value=None):
    """One 2-D grid of squares whose lower-left corner is (x, y)."""
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((x + c * CELL, y + (rows - 1 - r) * CELL), CELL, CELL,
                                   facecolor=colour, edgecolor="white", linewidth=1.5))
    if value is not None:
        ax.text(x + CELL / 2, y + CELL / 2, value, ha="center", va="center", color="white",
                fontsize=7, fontweight="bold")


def _cube(ax, x, y, shape, colour):
    """A tensor of rank <= 3 drawn at (x, y); returns its width and height."""
    depth, rows, cols = (1,) * (3 - len(shape)) + tuple(shape)
    dx, dy = DEPTH_OFFSET
    for layer in reversed(range(depth)):  # back layers first, so the front one covers them
        shade = 0.75 ** layer
        rgb = matplotlib.colors.to_rgb(colour)
        tinted = tuple(1 - (1 - v) * shade for v in rgb)
        _grid(ax, x + layer * dx, y + layer * dy, rows, cols, tinted,
              value="4.7" if shape == () else None)
    return cols * CELL + (depth - 1) * dx, rows * CELL + (depth - 1) * dy


def _cube_size(shape):
    depth, rows, cols = (1,) * (3 - len(shape)) + tuple(shape)
    dx, dy = DEPTH_OFFSET
    return cols * CELL + (depth - 1) * dx, rows * CELL + (depth - 1) * dy


def _gap(rank):
    return 0.9 * CELL * (rank - 3)


def _frame_pad(rank):
    return 0.4 * CELL if rank == 6 else 0.0


def _size(shape):
    """Width and height of the drawing of a tensor with this shape."""
    if len(shape) <= 3:
        return _cube_size(shape)
    n, rank = shape[0], len(shape)
    w, h = _size(shape[1:])
    pad = 2 * _frame_pad(rank)
    w, h = w + pad, h + pad
    if rank == 5:  # rank 5 repeats its rank-4 rows downwards; ranks 4 and 6 repeat sideways
        return w, n * h + (n - 1) * _gap(rank)
    return n * w + (n - 1) * _gap(rank), h


def _draw(ax, x, y, shape, colour_index=0):
    """Draw a tensor of any rank with its lower-left corner at (x, y)."""
    if len(shape) <= 3:
        _cube(ax, x, y, shape, PALETTE[colour_index % len(PALETTE)])
        return
    n, rank = shape[0], len(shape)
    w, h = _size(shape[1:])
    pad = _frame_pad(rank)
    cubes_per_child = 1
    for size in shape[1:-3]:
        cubes_per_child *= size
    for i in range(n):
        if rank == 5:
            cx, cy = x, y + (n - 1 - i) * (h + 2 * pad + _gap(rank))
        else:
            cx, cy = x + i * (w + 2 * pad + _gap(rank)), y
        if pad:
            ax.add_patch(FancyBboxPatch((cx, cy), w + 2 * pad, h + 2 * pad,
                                        boxstyle="round,pad=0,rounding_size=0.3",
                                        facecolor="none", edgecolor="0.4", linewidth=1.2))
        _draw(ax, cx + pad, cy + pad, shape[1:], colour_index + i * cubes_per_child)


def rank_figure(rank: int):
    """A diagram of a tensor of the given rank (0 to 6), with its shape in the title."""
    shape, meaning = RANK_EXAMPLES[rank]
    width, height = _size(shape)
    scale = 0.32  # inches per element square
    fig, ax = plt.subplots(figsize=(width * scale + 0.2, height * scale + 0.2))
    _draw(ax, 0, 0, shape)
    ax.set_xlim(-0.3, width + 0.3)
    ax.set_ylim(-0.3, height + 0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{rank}D tensor, shape {tuple(shape)}\n{meaning}", fontsize=9)
    return fig


def pytorch_parts_figure():
    """PyTorch's main packages, from tensors at the bottom up to data and vision."""
    layers = [
        ("torch", "tensors on CPU or GPU: creation, maths, indexing"),
        ("torch.autograd", "records operations and computes gradients"),
        ("torch.nn", "layers, losses and models (nn.Module)"),
        ("torch.optim", "optimisers that update parameters (SGD, Adam)"),
        ("torch.utils.data", "Dataset and DataLoader: batches of examples"),
        ("torchvision", "image datasets, transforms and models"),
    ]
    fig, ax = plt.subplots(figsize=(7.6, 3.6))
    for i, (name, what) in enumerate(layers):
        y = i * 1.1
        ax.add_patch(FancyBboxPatch((0, y), 12.5, 0.9, boxstyle="round,pad=0,rounding_size=0.15",
                                    facecolor=PALETTE[i], edgecolor="none", alpha=0.9))
        ax.text(0.3, y + 0.45, name, va="center", color="white", fontsize=10,
                fontweight="bold", family="monospace")
        ax.text(3.6, y + 0.45, what, va="center", color="white", fontsize=9)
    ax.set_xlim(-0.2, 12.7)
    ax.set_ylim(-0.2, len(layers) * 1.1)
    ax.axis("off")
    ax.set_title("PyTorch's main packages", fontsize=10)
    return fig


FIGURES_BY_NAME = {f"tensor-{rank}d": (lambda rank=rank: rank_figure(rank)) for rank in RANK_EXAMPLES}
FIGURES_BY_NAME["pytorch-parts"] = pytorch_parts_figure


def png_bytes(name: str) -> bytes:
    """The PNG of one figure, rendered the same way on every machine."""
    fig = FIGURES_BY_NAME[name]()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1,
                metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def embed_in_notebook(path, pngs: dict[str, bytes]) -> list[str]:
    """Refresh every ``attachment:<name>.png`` in a notebook's markdown; returns the names."""
    nb = nbformat.read(path, as_version=4)
    used = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        names = [n for n in pngs if f"attachment:{n}.png" in cell.source]
        if names:
            cell["attachments"] = {
                f"{n}.png": {"image/png": base64.b64encode(pngs[n]).decode("ascii")} for n in names
            }
            used += names
    nbformat.write(nb, path)
    return used


def main(*, lessons: list[str]) -> int:
    FIGURES.mkdir(exist_ok=True)
    pngs = {name: png_bytes(name) for name in FIGURES_BY_NAME}
    for name, data in pngs.items():
        (FIGURES / f"{name}.png").write_bytes(data)
        print(f"wrote figures/{name}.png")
    for lesson in lessons or lesson_ids():
        used = embed_in_notebook(solution_notebook(lesson), pngs)
        if used:
            print(f"embedded {', '.join(sorted(set(used)))} in solutions/{lesson}")
    return 0

