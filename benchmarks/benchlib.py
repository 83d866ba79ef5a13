"""Helpers shared by the benchmark scripts: data discovery, machine facts, tables, result files.

Nothing here trains a model; the scripts import it from their own folder.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS_DIR = BENCH_DIR / "results"

# The published RSC15 best configuration in the estimator's parameters (both benchmarks).
RSC15_BEST = {
    "loss_fn": "cross-entropy",
    "logq": 1.0,
    "hidden_size": 100,
    "constrained_embedding": True,
    "batch_size": 32,
    "dropout": 0.0,
    "dropout_hidden": 0.4,
    "learning_rate": 0.2,
    "momentum": 0.2,
    "num_negatives": 2048,
    "sample_alpha": 0.5,
    "clipnorm": None,
    "max_epochs": 10,
}
DOCS_BENCH_DIR = REPO_ROOT / "docs" / "benchmarks"

try:
    import gru4rec  # noqa: F401
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO_ROOT))


def default_data_dir() -> Path:
    """``$GRU4REC_SHARED_DATA/rsc15_100k`` or ``../shared/data/rsc15_100k`` beside the repo."""
    env = os.environ.get("GRU4REC_SHARED_DATA")
    base = Path(env) if env else SHARED_DATA
    return base / "rsc15_100k"


# How to build each benchmark data set from its public download (benchmarks/README.md, "Data").
PREPARE_COMMANDS = {
    "rsc15_100k": "python benchmarks/prepare_data.py rsc15 yoochoose-clicks-100k_train_full.txt "
    "yoochoose-clicks-100k_test.txt --out ../shared/data/rsc15_100k --test-days 0.5",
    "diginetica_sample": "python benchmarks/prepare_data.py diginetica "
    "sample_train-item-views.csv --out ../shared/data/diginetica_sample --test-days 7",
    "globo_g1_1day": "python benchmarks/prepare_data.py globo clicks_hour_0{24..47}.csv.gz "
    "--out ../shared/data/globo_g1_1day --test-days 0.0833333333 --tmax 2017-10-03T02:36:19",
}


def missing_data(path: Path, what: str = "train.csv and test.csv") -> str:
    """What to do when a benchmark's data is not there: the message a script prints."""
    command = PREPARE_COMMANDS.get(path.name, PREPARE_COMMANDS["rsc15_100k"])
    return (
        f"data not found: {path} (needs {what}).\n"
        "Download the raw files (sources and licences: benchmarks/README.md, 'Data') and build "
        f"it with\n    {command}\n"
        "or point the script at your own data with --data DIR (train.csv and test.csv) or "
        "--data EVENTS.csv, or set GRU4REC_SHARED_DATA to the folder holding the data sets."
    )


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(threads: int, device: str) -> dict[str, Any]:
    """What produced a measurement: processor, cores, thread count, versions, command."""
    import numpy
    import torch

    facts = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "command": command_line(),
        "load_average": load_average(),
        "git": git_revision(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def git_revision() -> str | None:
    """The checked-out commit, with ``+dirty`` when the package's files have local changes."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "gru4rec"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def load_average() -> float | None:
    """The 1-minute load average (other work on the machine slows the timings), if known."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def command_line() -> str:
    """The command that is running, with the script path relative to the repo root."""
    argv = list(sys.argv)
    try:
        argv[0] = str(Path(argv[0]).resolve().relative_to(REPO_ROOT))
    except ValueError:
        pass
    return "python " + shlex.join(argv)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(values: Sequence[float] | None, digits: int = 3) -> str:
    """``0.692`` for one value, ``0.692 ± 0.004`` for several, ``-`` for none."""
    if not values:
        return "-"
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


TABLE_COLUMNS = ("system", "config", "Recall@20", "MRR@20", "train s/epoch")


def table_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The cells of the results table, one list per measured row."""
    out = []
    for row in rows:
        out.append(
            [
                row["system"],
                row["config"],
                fmt(row.get("recall")),
                fmt(row.get("mrr")),
                fmt(row.get("s_per_epoch"), digits=2),
            ]
        )
    return out


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as one Markdown table."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for cells in table_rows(rows):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def rst_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as a reStructuredText list-table (for the docs)."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for cells in [list(TABLE_COLUMNS), *table_rows(rows)]:
        cells = ["\\-" if c == "-" else c for c in cells]  # a bare "-" would start a list
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {c}" for c in cells[1:])
    return "\n".join(lines)


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot with a file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def as_user_histories(train, test):
    """The data recast as user histories with order keys instead of times.

    Every event's timestamp becomes its position in its session (0, 1, 2, ...), as in
    sequence-numbered user-history logs, so all sessions start at the same "time". The
    training sessions are renumbered in the order in which they first appear in a log
    sorted by item (their first item), as ids assigned while reading such a dump would be:
    the ids then carry a drift that an id-ordered training would follow.
    """
    import numpy as np
    import pandas as pd

    def positions(df):
        df = df.sort_values(["session_id", "timestamp"], kind="stable")
        return df.assign(timestamp=df.groupby("session_id").cumcount().astype(np.int64))

    train, test = positions(train), positions(test)
    first = train[train["timestamp"] == 0].sort_values(["item_id", "session_id"], kind="stable")
    new_id = pd.Series(np.arange(len(first), dtype=np.int64), index=first["session_id"].to_numpy())
    train = train.assign(session_id=new_id.loc[train["session_id"]].to_numpy())
    train = train.sort_values(["session_id", "timestamp"], kind="stable").reset_index(drop=True)
    return train, test.reset_index(drop=True)


# The estimator configurations the benchmarks run (bench_accuracy, floor, profile_step).
@dataclass
class GRUConfig:
    """One estimator configuration of the benchmark."""

    system: str
    config: str
    params: dict[str, Any] = field(default_factory=dict)
    estimator: str = "GRU4RecNegSampling"


DIGINETICA_BEST = {
    "loss_fn": "bpr-max",
    "elu_param": 1.0,
    "hidden_size": 512,
    "constrained_embedding": True,
    "batch_size": 128,
    "dropout": 0.5,
    "dropout_hidden": 0.3,
    "learning_rate": 0.05,
    "momentum": 0.15,
    "num_negatives": 2048,
    "sample_alpha": 0.3,
    "bpreg": 0.9,
    "clipnorm": None,
    "max_epochs": 10,
}

GRU_CONFIGS = {
    "rsc15-best": GRUConfig(
        "gru4rec GRU4RecNegSampling",
        "RSC15 best: xe, logq 1, 100 units, batch 32, lr 0.2, mom 0.2, drop_hid 0.4, "
        "alpha 0.5, 2048 negatives, shared emb., {epochs} epochs",
        RSC15_BEST,
    ),
    "recpack-defaults": GRUConfig(
        "gru4rec GRU4RecNegSampling", "recpack defaults ({epochs} epochs)", {"max_epochs": 5}
    ),
    "diginetica-best": GRUConfig(
        "gru4rec GRU4RecNegSampling",
        "Diginetica best: bpr-max, elu 1, 512 units, batch 128, lr 0.05, mom 0.15, drop 0.5/0.3, "
        "alpha 0.3, bpreg 0.9, 2048 negatives, shared emb., {epochs} epochs",
        DIGINETICA_BEST,
    ),
}
