"""Benchmark of lesson 06: the classic CNN recipe and the course's fast recipe, side by side.

    python -m course bench [--profile]      (or: make bench)

Both recipes are the lesson's own code: the cells of solutions/06-cnn-classifier tagged
``bench`` define the models, the training loops, ``evaluate`` and ``FAST_RECIPE``; this
module runs them in one process, one after the other, from the same seed, and times
the training only (evaluation on the 10,000 test images after each epoch is not
counted). On a GPU the fast recipe runs in mixed precision (bfloat16 autocast) with
channels_last and the data on the GPU. It prints a table and writes
benchmarks/cnn-<device>.json and .md, and says whether the device's targets were met.

--profile first prints where the time of a training step goes, for each recipe.
"""

import json
import math
import platform
import sys
import time
from pathlib import Path

import nbformat
import torch

from course.data import fashion_mnist_root
from course.paths import BENCHMARKS, solution_notebook

LESSON = "06-cnn-classifier"
CLASSIC = dict(num_epochs=3, batch_size=32, lr=1e-3)  # the recipe older tutorials teach
TARGET_ACCURACY = 0.92
TARGETS = {"cpu": dict(speedup=4.0, seconds=60.0),  # issue 5's targets on the 2-core machine
           "cuda": dict(speedup=None, seconds=5.0)}  # issue 14's: one H100/H200-class GPU


def lesson_namespace(lesson: str = LESSON, tag: str = "bench") -> dict:
    """Run the lesson's cells tagged ``tag`` (definitions only) and return what they define."""
    namespace = {"__name__": f"lesson_{lesson.replace('-', '_')}"}
    cells = [c for c in nbformat.read(solution_notebook(lesson), as_version=4).cells
             if tag in c.metadata.get("tags", [])]
    if not cells:
        raise RuntimeError(f"no cells tagged {tag!r} in {solution_notebook(lesson)}")
    for cell in cells:
        exec(compile(cell.source, f"<{lesson} cell>", "exec"), namespace)
    return namespace


def run_classic(ns: dict, device: torch.device, X_test, y_test, seed: int = 0) -> list[dict]:
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((ns["MEAN"],), (ns["STD"],))])
    train_set = datasets.FashionMNIST(fashion_mnist_root(), train=True, download=False, transform=to_tensor)
    torch.manual_seed(seed)
    loader = DataLoader(train_set, batch_size=CLASSIC["batch_size"], shuffle=True, num_workers=0)
    model = ns["ClassicCNN"]().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=CLASSIC["lr"])
    loss_fn = nn.CrossEntropyLoss()

    def one_epoch():
        return ns["train_epoch"](model, loader, loss_fn, optimizer, device, progress=False)

    return _epochs(one_epoch, CLASSIC["num_epochs"], lambda: ns["evaluate"](model, X_test, y_test, device=device))


def run_fast(ns: dict, device: torch.device, X_train, y_train, X_test, y_test, seed: int = 0) -> list[dict]:
    """The lesson's fast recipe; on a GPU in mixed precision (bfloat16 autocast), channels_last, data on the GPU."""
    recipe = ns["FAST_RECIPE"]
    mixed = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    torch.manual_seed(seed)
    model = ns["FastCNN"]().to(device)
    steps = math.ceil(len(X_train) / recipe["batch_size"])
    loss_fn, optimizer, scheduler = ns["make_fast_training"](model, steps, recipe)

    def one_epoch():
        with mixed:
            return ns["train_epoch_fast"](model, X_train, y_train, recipe["batch_size"], loss_fn, optimizer,
                                          scheduler, device=device, flip=recipe["flip"],
                                          channels_last=True)

    return _epochs(one_epoch, recipe["num_epochs"], lambda: ns["evaluate"](model, X_test, y_test, device=device))


def _epochs(one_epoch, num_epochs: int, accuracy) -> list[dict]:
    records, seconds = [], 0.0
    for epoch in range(1, num_epochs + 1):
        start = time.perf_counter()
        loss = one_epoch()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        records.append({"epoch": epoch, "train_seconds": round(seconds, 2), "train_loss": round(loss, 4),
                        "test_accuracy": round(accuracy(), 4)})
        print(f"  epoch {epoch}: {seconds:6.1f} s of training, test accuracy {records[-1]['test_accuracy']:.2%}",
              flush=True)
    return records


def time_to(records: list[dict], accuracy: float) -> float | None:
    """Training seconds at the end of the first epoch that reached ``accuracy``."""
    return next((r["train_seconds"] for r in records if r["test_accuracy"] >= accuracy), None)


def profile(ns: dict, device: torch.device, X_train, y_train) -> None:
    """Print the operations that take the most time in a few training steps of each recipe."""
    from torch import nn
    from torch.profiler import ProfilerActivity, profile as torch_profile

    for name, make, batch_size, channels_last in [
        ("classic", ns["ClassicCNN"], CLASSIC["batch_size"], False),
        ("fast", ns["FastCNN"], ns["FAST_RECIPE"]["batch_size"], True),
    ]:
        torch.manual_seed(0)
        model = make().to(device)
        X, y = X_train[:batch_size].to(device), y_train[:batch_size].to(device)
        if channels_last:
            model, X = model.to(memory_format=torch.channels_last), X.contiguous(memory_format=torch.channels_last)
        optimizer, loss_fn = torch.optim.Adam(model.parameters()), nn.CrossEntropyLoss()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(20):
                optimizer.zero_grad()
                loss_fn(model(X), y).backward()
                optimizer.step()
        print(f"\nwhere a training step's time goes: {name} recipe, batch {batch_size}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def report(result: dict) -> str:
    c, f = result["classic"], result["fast"]
    lines = [
        f"# CNN benchmark on {result['device']}",
        "",
        f"{result['machine']}, torch {result['torch']}. Training time only;",
        "each recipe evaluated on all 10,000 test images after every epoch.",
        "",
        "| recipe | epoch | training s | s per epoch | test accuracy |",
        "|---|---|---|---|---|",
    ]
    course = "course, bf16 autocast" if torch.device(result["device"]).type == "cuda" else "course"
    for name, records in (("classic", c["epochs"]), (course, f["epochs"])):
        previous = 0.0
        for r in records:
            lines.append(f"| {name} | {r['epoch']} | {r['train_seconds']:.1f} | {r['train_seconds'] - previous:.1f} "
                         f"| {r['test_accuracy']:.2%} |")
            previous = r["train_seconds"]
    lines += [
        "",
        f"- classic recipe's final accuracy: {c['final_accuracy']:.2%} after {c['train_seconds']:.1f} s",
        f"- course recipe's final accuracy: {f['final_accuracy']:.2%} after {f['train_seconds']:.1f} s",
        f"- time to 90%: classic {_s(c['seconds_to_90'])}, course {_s(f['seconds_to_90'])}",
        f"- time to the classic's final accuracy: classic {_s(c['seconds_to_classic_final'])}, "
        f"course {_s(f['seconds_to_classic_final'])}",
        f"- speed-up to the classic's final accuracy: **{_ratio(result['speedup'])}**",
        f"- targets ({target_text(result['device'])}): {'met' if result['targets_met'] else 'NOT met'}",
    ]
    return "\n".join(lines) + "\n"


def target_text(device: str) -> str:
    target = TARGETS[torch.device(device).type]
    return (f"at least {target['speedup']:.0f}x, and " if target["speedup"] else "") + \
        f"{TARGET_ACCURACY:.1%} within {target['seconds']:.0f} s of training"


def targets_met(result: dict) -> bool:
    """The device's targets: the speed-up (where it has one), and the accuracy reached within the training budget."""
    target = TARGETS[torch.device(result["device"]).type]
    within_budget = [r["test_accuracy"] for r in result["fast"]["epochs"] if r["train_seconds"] <= target["seconds"]]
    return (result["speedup"] or 0) >= (target["speedup"] or 0) and max(within_budget, default=0) >= TARGET_ACCURACY


def _s(seconds):
    return "not reached" if seconds is None else f"{seconds:.1f} s"


def _ratio(value):
    return "not reached" if value is None else f"{value:.1f}x"


def main(args: list[str]) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ns = lesson_namespace()
    X_train, y_train = ns["load_tensors"](True)
    X_test, y_test = ns["load_tensors"](False)
    if "--profile" in args:
        profile(ns, device, X_train, y_train)
    print(f"classic recipe on {device}: DataLoader with ToTensor+Normalize, batch {CLASSIC['batch_size']}, Adam")
    classic = run_classic(ns, device, X_test, y_test)
    print(f"course recipe on {device}: {ns['FAST_RECIPE']}")
    fast = run_fast(ns, device, X_train.to(device), y_train.to(device), X_test, y_test)
    target = classic[-1]["test_accuracy"]
    to_target, classic_to_target = time_to(fast, target), time_to(classic, target)
    result = {
        "device": str(device),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name(0)}" if device.type == "cuda" else ""),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "classic": {"recipe": CLASSIC, "epochs": classic, "final_accuracy": target,
                    "train_seconds": classic[-1]["train_seconds"], "seconds_to_90": time_to(classic, 0.90),
                    "seconds_to_classic_final": classic_to_target},
        "fast": {"recipe": ns["FAST_RECIPE"], "epochs": fast, "final_accuracy": fast[-1]["test_accuracy"],
                 "train_seconds": fast[-1]["train_seconds"], "seconds_to_90": time_to(fast, 0.90),
                 "seconds_to_classic_final": to_target},
        "speedup": None if to_target is None else round(classic_to_target / to_target, 2),
    }
    result["targets_met"] = targets_met(result)
    BENCHMARKS.mkdir(exist_ok=True)
    (BENCHMARKS / f"cnn-{device.type}.json").write_text(json.dumps(result, indent=2) + "\n")
    (BENCHMARKS / f"cnn-{device.type}.md").write_text(report(result))
    print("\n" + report(result))
    print(f"wrote benchmarks/cnn-{device.type}.json and benchmarks/cnn-{device.type}.md")
    return 0
