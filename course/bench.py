"""Benchmark of the CNN recipes: lesson 06's classic recipe and lesson 07's fast recipe, side by side.

    python -m course bench [--profile] [--select]      (or: make bench)

Both recipes are the lessons' own code, read from the cells tagged ``bench``: the classic
recipe's network and training loop (``ClassicCNN``, ``train_epoch``) from
solutions/06-cnn-classifier; the fast recipe (``FastCNN``, ``train_epoch_fast``,
``make_fast_training``, ``random_flip``, ``FAST_RECIPE``), ``load_tensors`` and ``evaluate``
from solutions/07-fast-training. This module runs the two in one process, one after the
other, from the same seed, on all 60,000 training images, and times the training only
(evaluation on the 10,000 test images after each epoch is not counted: the benchmark
measures a recipe already chosen, the lesson chose it on validation data). On a GPU the fast
recipe runs in mixed precision (bfloat16 autocast) with channels_last and the data on the
GPU. It prints a table and writes benchmarks/cnn-<device>.json and .md: seconds and test
accuracy per epoch, the time to 92 % test accuracy, the speed-up to the classic recipe's final
accuracy, and whether the device's targets (``TARGETS``) were met.

--profile first prints where the time of a training step goes, for each recipe.

--select runs, instead, the model selection that lesson 07 cites: every recipe in the lesson's
``CANDIDATES`` is trained on the 50,000 images of the lesson's training split (seeds
``SELECT_SEEDS``) and measured on the 10,000 validation images; the test set is not touched.
It writes benchmarks/select-<device>.json and .md.
"""

import math
import os
import platform
import statistics
import time

import nbformat
import torch

from course.data import fashion_mnist_root
from course.paths import load_average, solution_notebook, write_benchmark

CLASSIC_LESSON = "06-cnn-classifier"  # ClassicCNN and train_epoch
FAST_LESSON = "07-fast-training"      # the fast recipe, load_tensors, evaluate, the validation split
CLASSIC = dict(num_epochs=3, batch_size=32, lr=1e-3)  # the recipe older tutorials teach
TARGET_ACCURACY = 0.92
TARGETS = {"cpu": dict(speedup=4.0, seconds=60.0),  # issue 5's targets on the 2-core machine
           "cuda": dict(speedup=None, seconds=5.0)}  # issue 14's: one H100/H200-class GPU
SELECT_SEEDS = (0, 1)


def lesson_namespace(lesson: str = FAST_LESSON, tag: str = "bench") -> dict:
    """Run the lesson's cells tagged ``tag`` (definitions only) and return what they define."""
    namespace = {"__name__": f"lesson_{lesson.replace('-', '_')}"}
    cells = [c for c in nbformat.read(solution_notebook(lesson), as_version=4).cells
             if tag in c.metadata.get("tags", [])]
    if not cells:
        raise RuntimeError(f"no cells tagged {tag!r} in {solution_notebook(lesson)}")
    for cell in cells:
        exec(compile(cell.source, f"<{lesson} cell>", "exec"), namespace)
    return namespace


def run_classic(classic: dict, fast: dict, device: torch.device, X_test, y_test, seed: int = 0) -> list[dict]:
    """Lesson 06's ClassicCNN and train_epoch: a DataLoader with ToTensor+Normalize, batches of 32, Adam."""
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((classic["MEAN"],), (classic["STD"],))])
    train_set = datasets.FashionMNIST(fashion_mnist_root(), train=True, download=False, transform=to_tensor)
    torch.manual_seed(seed)
    loader = DataLoader(train_set, batch_size=CLASSIC["batch_size"], shuffle=True, num_workers=0)
    model = classic["ClassicCNN"]().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=CLASSIC["lr"])
    loss_fn = nn.CrossEntropyLoss()

    def one_epoch():
        return classic["train_epoch"](model, loader, loss_fn, optimizer, device, progress=False)

    return _epochs(one_epoch, CLASSIC["num_epochs"], lambda: fast["evaluate"](model, X_test, y_test, device=device))


def _fast_model(ns: dict, recipe: dict, device: torch.device, steps_per_epoch: int, seed: int):
    """A seeded FastCNN, its (loss_fn, optimizer, scheduler) for ``recipe``, and autocast (bf16 on a GPU)."""
    torch.manual_seed(seed)
    model = ns["FastCNN"](batch_norm=recipe["batch_norm"]).to(device)
    loss_fn, optimizer, scheduler = ns["make_fast_training"](model, steps_per_epoch, recipe)
    mixed = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    return model, loss_fn, optimizer, scheduler, mixed


def run_fast(ns: dict, device: torch.device, X_train, y_train, X_test, y_test, seed: int = 0,
             recipe: dict | None = None) -> list[dict]:
    """The lesson's fast recipe; on a GPU in mixed precision (bfloat16 autocast), channels_last, data on the GPU."""
    recipe = recipe or ns["FAST_RECIPE"]
    steps = math.ceil(len(X_train) / recipe["batch_size"])
    model, loss_fn, optimizer, scheduler, mixed = _fast_model(ns, recipe, device, steps, seed)

    def one_epoch():
        with mixed:
            return ns["train_epoch_fast"](model, X_train, y_train, recipe["batch_size"], loss_fn, optimizer,
                                          scheduler, device=device, flip=recipe["flip"], channels_last=True)

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


def profile(classic: dict, fast: dict, device: torch.device, X_train, y_train) -> None:
    """Print the operations that take the most time in a few training steps of each recipe."""
    from torch import nn
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler's own log lines would clutter the tables
    for name, make, batch_size, channels_last in [
        ("classic", classic["ClassicCNN"], CLASSIC["batch_size"], False),
        ("fast", lambda: fast["FastCNN"](batch_norm=fast["FAST_RECIPE"]["batch_norm"]),
         fast["FAST_RECIPE"]["batch_size"], True),
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
        f"{result['machine']}, torch {result['torch']}. Training time only, on all 60,000 training images;",
        "each recipe evaluated on all 10,000 test images after every epoch. The classic recipe is",
        f"lesson {CLASSIC_LESSON}'s, the course recipe lesson {FAST_LESSON}'s (chosen there on validation data).",
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
        f"- time to {TARGET_ACCURACY:.0%}: classic {_s(c['seconds_to_target'])}, course {_s(f['seconds_to_target'])}",
        f"- time to 90%: classic {_s(c['seconds_to_90'])}, course {_s(f['seconds_to_90'])}",
        f"- time to the classic's final accuracy: classic {_s(c['seconds_to_classic_final'])}, "
        f"course {_s(f['seconds_to_classic_final'])}",
        f"- speed-up to the classic's final accuracy: **{_ratio(result['speedup'])}**",
        f"- targets ({target_text(result['device'])}): {'met' if result['targets_met'] else 'NOT met'}",
    ]
    if result.get("load_before") is not None:
        lines.append(f"- load average before the run: {result['load_before']:.2f}" + (
            " (other work shared the cores: the times are inflated)" if result["load_before"] >= 0.5 else ""))
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


def _machine(device: torch.device) -> str:
    threads = torch.get_num_threads()
    return f"{platform.machine()}, {threads} thread{'s' if threads > 1 else ''}" + (
        f", {torch.cuda.get_device_name(0)}" if device.type == "cuda" else "")


def select(ns: dict, device: torch.device, seeds=SELECT_SEEDS) -> dict:
    """Train every candidate recipe of lesson 07 on its training split; validation accuracy per seed."""
    X_all, y_all = ns["load_tensors"](True)
    train_idx, val_idx = ns["train_idx"], ns["val_idx"]
    X_train, y_train = X_all[train_idx].to(device), y_all[train_idx].to(device)
    X_val, y_val = X_all[val_idx], y_all[val_idx]
    rows = []
    for name, recipe in ns["CANDIDATES"].items():
        runs = []
        for seed in seeds:
            print(f"{name}, seed {seed}: {recipe}", flush=True)
            steps = math.ceil(len(X_train) / recipe["batch_size"])
            model, loss_fn, optimizer, scheduler, mixed = _fast_model(ns, recipe, device, steps, seed)
            start = time.perf_counter()
            for _ in range(recipe["num_epochs"]):
                with mixed:
                    ns["train_epoch_fast"](model, X_train, y_train, recipe["batch_size"], loss_fn, optimizer,
                                           scheduler, device=device, flip=recipe["flip"], channels_last=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            accuracy = ns["evaluate"](model, X_val, y_val, device=device)
            print(f"  validation accuracy {accuracy:.2%} after {seconds:.1f} s of training", flush=True)
            runs.append({"seed": seed, "validation_accuracy": round(accuracy, 4), "train_seconds": round(seconds, 1)})
        rows.append({"candidate": name, "recipe": recipe, "runs": runs,
                     "mean_validation_accuracy": round(statistics.mean(r["validation_accuracy"] for r in runs), 4)})
    chosen = [row["candidate"] for row in rows if row["recipe"] == ns["FAST_RECIPE"]]
    return {"device": str(device), "machine": _machine(device), "torch": torch.__version__,
            "train_images": len(train_idx), "validation_images": len(val_idx), "seeds": list(seeds),
            "candidates": rows, "lesson_choice": chosen[0] if chosen else None}


def select_report(result: dict) -> str:
    seeds = result["seeds"]
    lines = [
        f"# Choosing lesson {FAST_LESSON}'s recipe on validation data ({result['device']})",
        "",
        f"`python -m course bench --select`: {result['machine']}, torch {result['torch']}. Every candidate trained "
        f"on the lesson's {result['train_images']:,} training images (the split `random_split(range(60_000), "
        f"[50_000, 10_000], generator=torch.Generator().manual_seed(0))`) from seeds {', '.join(map(str, seeds))}, "
        f"then measured once on the {result['validation_images']:,} validation images. The test set is not used. "
        "Each run's training seconds are in the .json file; they compare candidates only when nothing else ran "
        "on the machine (see the load average below).",
        "",
        "| candidate | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---|" + "---|" * len(seeds) + "---|",
    ]
    for row in result["candidates"]:
        accuracies = " | ".join(f"{r['validation_accuracy']:.2%}" for r in row["runs"])
        name = f"**{row['candidate']}**" if row["candidate"] == result["lesson_choice"] else row["candidate"]
        lines.append(f"| {name} | {accuracies} | {row['mean_validation_accuracy']:.2%} |")
    best = max(result["candidates"], key=lambda row: row["mean_validation_accuracy"])
    lines += ["", f"- highest mean validation accuracy: {best['candidate']} "
                  f"({best['mean_validation_accuracy']:.2%})",
              f"- the lesson's choice (`FAST_RECIPE`, in bold): {result['lesson_choice'] or 'none of the candidates'}"]
    if result.get("load_before") is not None:
        lines.append(f"- load average before the run: {result['load_before']:.2f}")
    return "\n".join(lines) + "\n"


def main(*, with_profile: bool = False, selection: bool = False) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fast = lesson_namespace(FAST_LESSON)
    load_before = load_average()
    if selection:
        result = select(fast, device)
        result["load_before"] = load_before
        write_benchmark(f"select-{device.type}", result, select_report(result))
        return 0
    classic = lesson_namespace(CLASSIC_LESSON)
    X_train, y_train = fast["load_tensors"](True)
    X_test, y_test = fast["load_tensors"](False)
    if with_profile:
        profile(classic, fast, device, X_train, y_train)
    print(f"classic recipe ({CLASSIC_LESSON}) on {device}: DataLoader with ToTensor+Normalize, "
          f"batch {CLASSIC['batch_size']}, Adam")
    classic_records = run_classic(classic, fast, device, X_test, y_test)
    print(f"course recipe ({FAST_LESSON}) on {device}: {fast['FAST_RECIPE']}")
    fast_records = run_fast(fast, device, X_train.to(device), y_train.to(device), X_test, y_test)
    target = classic_records[-1]["test_accuracy"]
    to_target, classic_to_target = time_to(fast_records, target), time_to(classic_records, target)
    result = {
        "device": str(device),
        "machine": _machine(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "classic": {"lesson": CLASSIC_LESSON, "recipe": CLASSIC, "epochs": classic_records, "final_accuracy": target,
                    "train_seconds": classic_records[-1]["train_seconds"],
                    "seconds_to_target": time_to(classic_records, TARGET_ACCURACY),
                    "seconds_to_90": time_to(classic_records, 0.90),
                    "seconds_to_classic_final": classic_to_target},
        "fast": {"lesson": FAST_LESSON, "recipe": fast["FAST_RECIPE"], "epochs": fast_records,
                 "final_accuracy": fast_records[-1]["test_accuracy"],
                 "train_seconds": fast_records[-1]["train_seconds"],
                 "seconds_to_target": time_to(fast_records, TARGET_ACCURACY),
                 "seconds_to_90": time_to(fast_records, 0.90),
                 "seconds_to_classic_final": to_target},
        "speedup": None if to_target is None else round(classic_to_target / to_target, 2),
    }
    result["targets_met"] = targets_met(result)
    write_benchmark(f"cnn-{device.type}", result, report(result))
    return 0
