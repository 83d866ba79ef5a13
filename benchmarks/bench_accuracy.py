"""Accuracy and training speed of GRU4Rec configurations and baselines on a session data set.

Trains each configuration on the training events and predicts the next item at every position of
every test session (hidden state from zero per session), ranking the target against all training
items with conservative ties; reports Recall@20, MRR@20 and the median training seconds per epoch
(from ``est.history_``; evaluation excluded). Prints one Markdown table and writes it, a JSON of
every number and a PNG of test Recall@20 per epoch under ``benchmarks/results/<name>/``.

    python benchmarks/bench_accuracy.py                       # ../shared/data/rsc15_100k
    python benchmarks/bench_accuracy.py --data DIR            # DIR/train.csv + DIR/test.csv
    python benchmarks/bench_accuracy.py --data events.csv --test-days 1
    python benchmarks/bench_accuracy.py --only rsc15-best --epochs 2 --seeds 3
    python benchmarks/bench_accuracy.py --with-recpack        # recpack 0.3.6 in its own venv
    python benchmarks/bench_accuracy.py --with-recbole        # RecBole 1.2.1 in its own venv
    python benchmarks/bench_accuracy.py --official DIR --only rsc15-best --only diginetica-best \
        --epochs 2 --seeds 3 --no-curves                      # side by side with the official code
    python benchmarks/bench_accuracy.py --speed --publish     # + throughput plots, copy to docs/

``--official DIR`` also trains the official GRU4Rec (PyTorch) on the same data with the same
configuration and thread count, alternating with ours seed by seed, in a virtual environment of its
own (numpy < 2, pandas < 3, torch 2.13.0), and prints both epoch times and their ratio. DIR is a
checkout of https://github.com/hidasib/GRU4Rec_PyTorch_Official (the folder holding
``gru4rec_pytorch.py``); it is never part of this repository.

``--with-recbole`` also trains RecBole 1.2.1's GRU4Rec on the same split (its training prefixes
written as RecBole atomic files, read through its ``benchmark_filename``), one thread, in a
virtual environment of its own (recbole 1.2.1, setuptools < 81, numpy < 2, pandas < 3, torch
2.13.0): once with RecBole's defaults (5 epochs, ``--seeds`` seeds) and once as close to RSC15
best as it allows (10 epochs, ``--recbole-seeds`` seeds, default 1: an epoch takes about a hundred
times ours). ``recbole_worker.py`` scores it with the protocol above and also reports RecBole's own
evaluator. If the install fails, RecBole is skipped with a message.

Event CSVs have a header with ``session_id,item_id,timestamp``. When the data is missing the script
says what to do and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib
import numpy as np
import pandas as pd

RECPACK_PINS = ["recpack==0.3.6", "numpy<2", "pandas<3", "torch==2.13.0"]
OFFICIAL_PINS = ["numpy<2", "pandas<3", "torch==2.13.0"]
# RecBole 1.2.1 imports pkg_resources (setuptools < 81) and predates NumPy 2 and pandas 3.
RECBOLE_PINS = ["recbole==1.2.1", "setuptools<81", "numpy<2", "pandas<3", "torch==2.13.0"]
OFFICIAL_URL = "https://github.com/hidasib/GRU4Rec_PyTorch_Official"
K = 20


GRUConfig = benchlib.GRUConfig
RSC15_BEST = benchlib.RSC15_BEST
DIGINETICA_BEST = benchlib.DIGINETICA_BEST
GRU_CONFIGS = benchlib.GRU_CONFIGS


def official_params(params: dict[str, Any]) -> dict[str, Any]:
    """The official GRU4Rec's parameters for one of our configurations (its paramfiles' names)."""
    return {
        "loss": params["loss_fn"],
        "constrained_embedding": params["constrained_embedding"],
        "embedding": 0,
        "elu_param": params.get("elu_param", 0.0),
        "layers": [params["hidden_size"]],
        "n_epochs": params["max_epochs"],
        "batch_size": params["batch_size"],
        "dropout_p_embed": params["dropout"],
        "dropout_p_hidden": params["dropout_hidden"],
        "learning_rate": params["learning_rate"],
        "momentum": params["momentum"],
        "n_sample": params["num_negatives"],
        "sample_alpha": params["sample_alpha"],
        "bpreg": params.get("bpreg", 0.0),
        "logq": params.get("logq", 0.0),
    }


# The configurations the official code can run (it has cross-entropy and bpr-max only).
OFFICIAL_CONFIGS = ("rsc15-best", "diginetica-best")

BASELINES = {
    "transitions": "first-order item transition counts (ties by popularity)",
    "popularity": "popularity (training counts)",
}
DEFAULT_CONFIGS = ["rsc15-best", "recpack-defaults", "transitions", "popularity"]
ALL_CONFIGS = [*GRU_CONFIGS, *BASELINES]


# -- data ---------------------------------------------------------------------------------------


def _new_row(key: str, system: str, config: str, **extra: Any) -> dict[str, Any]:
    """An empty result row: per-seed lists filled by the runs."""
    lists = ("recall", "mrr", "s_per_epoch", "epoch_seconds", "fit_seconds", "eval_seconds")
    return {
        "key": key,
        "system": system,
        "config": config,
        **extra,
        **{name: [] for name in lists},
        "curves": [],
    }


def _run_worker(
    label: str,
    row: dict[str, Any],
    python: Path,
    worker: Path,
    files: tuple[Path, Path, Path],
    extra: list[Any],
    env: dict[str, str],
) -> dict[str, Any] | None:
    """Run a peer's worker in its own venv on (train, test, out) and record its result in
    ``row``; None, with a message, when the worker fails."""
    train_csv, test_csv, out = files
    cmd = [str(python), str(worker), "--train", str(train_csv), "--test", str(test_csv)]
    cmd += ["--out", str(out), *map(str, extra)]
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        print(f"skipped {label}: worker failed: {lines[-1] if lines else '?'}", file=sys.stderr)
        return None
    return _record_worker_result(row, out)


def _record_worker_result(row: dict[str, Any], path: Path) -> dict[str, Any]:
    """Append one seed's result, written by a worker process to ``path``, to ``row``."""
    res = json.loads(path.read_text())
    for key in ("recall", "mrr", "epoch_seconds", "fit_seconds", "eval_seconds"):
        row[key].append(res[key])
    row["s_per_epoch"].append(statistics.median(res["epoch_seconds"]))
    row["n_predictions"] = res["n_predictions"]
    return res


def load_data(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """(train events, test events, data name), or None when the data is missing."""
    from gru4rec import datasets

    path = Path(args.data) if args.data else benchlib.default_data_dir()
    if path.is_dir():
        train_csv, test_csv = path / "train.csv", path / "test.csv"
        if not (train_csv.is_file() and test_csv.is_file()):
            print(benchlib.missing_data(path), file=sys.stderr)
            return None
        train = datasets.read_events(train_csv)
        test = datasets.read_events(test_csv)
        return train, test, path.name
    if path.is_file():
        events = datasets.read_events(path)
        train, test = datasets.time_split(events, test_days=args.test_days)
        return train, test, path.name.split(".")[0]
    print(benchlib.missing_data(path), file=sys.stderr)
    return None


def next_item_pairs(sessions) -> tuple[np.ndarray, np.ndarray]:
    """(current item, next item) at every position of every session of a SessionArrays."""
    has_next = np.ones(sessions.n_events, dtype=bool)
    has_next[sessions.offsets[1:] - 1] = False
    pos = np.flatnonzero(has_next)
    return sessions.items[pos], sessions.items[pos + 1]


# -- baselines ----------------------------------------------------------------------------------


def popularity_ranks(train_items: np.ndarray, n_items: int, targets: np.ndarray) -> np.ndarray:
    """Conservative rank of each target when every item scores its training count."""
    counts = np.bincount(train_items, minlength=n_items)
    sorted_counts = np.sort(counts)
    return n_items - np.searchsorted(sorted_counts, counts[targets], side="left")


def transition_ranks(
    train_sessions, n_items: int, current: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """Conservative rank of each target when items score how often they followed ``current``.

    The score of ``j`` after ``i`` is the number of times ``j`` directly followed ``i`` in a
    training session; items with equal counts (in particular the many never seen after ``i``) are
    ordered by training popularity, and what is still tied counts against the target.
    """
    prev, nxt = next_item_pairs(train_sessions)
    # Dense popularity rank: equal counts share a rank, so remaining ties stay conservative.
    _, pop = np.unique(np.bincount(train_sessions.items, minlength=n_items), return_inverse=True)
    n_at_least = n_items - np.searchsorted(np.sort(pop), pop[targets], side="left")
    if len(prev) == 0:
        return n_at_least
    keys, counts = np.unique(prev * n_items + nxt, return_counts=True)
    rows, cols = keys // n_items, keys % n_items
    query = current * n_items + targets
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    score = np.where(keys[at] == query, counts[at], 0)
    # Every (row, count, popularity rank) entry as one sorted integer key: counting the entries
    # of row i that beat or tie the target is a difference of two binary searches.
    top = int(counts.max()) + 1
    if float(n_items) * n_items * top >= 2.0**62:
        raise ValueError("catalogue too large for the transition baseline's integer keys")
    entry = np.sort((rows * top + counts) * n_items + pop[cols])
    row_start = current * top * n_items
    beaten = np.searchsorted(entry, row_start + top * n_items) - np.searchsorted(
        entry, row_start + score * n_items + pop[targets]
    )
    # A target never seen after its item: every item of the row ranks ahead, and so does every
    # unseen item at least as popular.
    by_pop = np.sort(rows * n_items + pop[cols])
    row_total = np.searchsorted(by_pop, (current + 1) * n_items) - np.searchsorted(
        by_pop, current * n_items
    )
    row_pop = np.searchsorted(by_pop, (current + 1) * n_items) - np.searchsorted(
        by_pop, current * n_items + pop[targets]
    )
    return np.where(score > 0, beaten, row_total + n_at_least - row_pop)


def run_baseline(name: str, X, T) -> dict[str, Any]:
    from gru4rec.metrics import mrr_at_k, recall_at_k

    train_sessions = X.session_arrays()
    current, targets = next_item_pairs(T.session_arrays())
    start = time.perf_counter()
    if name == "popularity":
        ranks = popularity_ranks(train_sessions.items, X.shape[1], targets)
    else:
        ranks = transition_ranks(train_sessions, X.shape[1], current, targets)
    return {
        "key": name,
        "system": "baseline",
        "config": BASELINES[name],
        "recall": [recall_at_k(ranks, K)],
        "mrr": [mrr_at_k(ranks, K)],
        "s_per_epoch": None,
        "seconds": time.perf_counter() - start,
        "n_predictions": int(len(ranks)),
    }


# -- our estimator ------------------------------------------------------------------------------


def gru_row(key: str, args: argparse.Namespace) -> dict[str, Any]:
    """An empty result row for our configuration ``key`` (its parameters under ``params``)."""
    import gru4rec

    cfg = GRU_CONFIGS[key]
    cls = getattr(gru4rec, cfg.estimator)
    params = dict(cfg.params)
    if args.epochs is not None:
        params["max_epochs"] = args.epochs
    epochs = params.get("max_epochs", cls().max_epochs)
    return _new_row(key, cfg.system, cfg.config.format(epochs=epochs), params=params, load=[])


def run_gru_seed(row: dict[str, Any], X, T, validation, seed: int, args) -> None:
    """Train and evaluate our configuration of ``row`` once; append the numbers to ``row``."""
    import gru4rec
    from gru4rec.metrics import mrr_at_k, recall_at_k

    key = row["key"]
    cls = getattr(gru4rec, GRU_CONFIGS[key].estimator)
    run_params = {**row["params"], "seed": seed, "device": args.device, "verbose": args.verbose}
    if validation is not None:
        # Test Recall@20 after every epoch, for the curve plot only: keep_last=True keeps the
        # last epoch's model, so the test data never selects anything.
        run_params.update(keep_last=True, stopping_criterion="next_item_recall")
    est = cls(**run_params)
    start = time.perf_counter()
    est.fit(X, validation_data=validation)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ranks = est.next_item_ranks(T)
    eval_seconds = time.perf_counter() - start
    seconds = [h["seconds"] for h in est.history_]
    row["recall"].append(recall_at_k(ranks, K))
    row["mrr"].append(mrr_at_k(ranks, K))
    row["s_per_epoch"].append(statistics.median(seconds))
    row["epoch_seconds"].append(seconds)
    row["fit_seconds"].append(fit_seconds)
    row["eval_seconds"].append(eval_seconds)
    row["curves"].append([h.get("next_item_recall") for h in est.history_])
    row["load"].append(benchlib.load_average())
    row["n_predictions"] = int(len(ranks))
    print(
        f"  {key} seed {seed}: Recall@{K} {row['recall'][-1]:.4f} MRR@{K} {row['mrr'][-1]:.4f}"
        f" {row['s_per_epoch'][-1]:.2f} s/epoch (fit {fit_seconds:.1f} s, "
        f"eval {eval_seconds:.1f} s; load {row['load'][-1]})",
        file=sys.stderr,
    )


def run_gru(key: str, X, T, validation, args: argparse.Namespace) -> dict[str, Any]:
    row = gru_row(key, args)
    for seed in range(args.seeds):
        run_gru_seed(row, X, T, validation, seed, args)
    return row


# -- recpack, in its own virtual environment ----------------------------------------------------


def cache_dir() -> Path:
    """$GRU4REC_BENCH_CACHE, else $XDG_CACHE_HOME/gru4rec-bench, else ~/.cache/gru4rec-bench."""
    if os.environ.get("GRU4REC_BENCH_CACHE"):
        return Path(os.environ["GRU4REC_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "gru4rec-bench"


def pinned_python(name: str, pins: list[str]) -> Path | None:
    """The interpreter of a venv ``name`` holding ``pins`` (created on first use), or None."""
    env_dir = cache_dir() / name
    python = env_dir / "bin" / "python"
    marker = env_dir / ".installed"
    if marker.is_file() and python.is_file() and marker.read_text().split() == pins:
        return python
    print(f"creating the venv {env_dir} (once) ...", file=sys.stderr)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *pins],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=1800,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        last = detail.strip().splitlines()[-1] if detail.strip() else str(exc)
        print(f"skipped {name}: could not install {' '.join(pins)}: {last}", file=sys.stderr)
        return None
    marker.write_text(" ".join(pins) + "\n")
    return python


def recpack_python() -> Path | None:
    """The interpreter of a venv holding recpack 0.3.6 (created on first use), or None."""
    return pinned_python("recpack-0.3.6", RECPACK_PINS)


def run_recpack(train: pd.DataFrame, test: pd.DataFrame, args: argparse.Namespace):
    python = recpack_python()
    if python is None:
        return None
    worker = benchlib.BENCH_DIR / "recpack_worker.py"
    epochs = args.epochs if args.epochs is not None else 5
    row = _new_row("recpack", "recpack 0.3.6 GRU4RecNegSampling", f"defaults ({epochs} epochs)")
    with tempfile.TemporaryDirectory(prefix="gru4rec-bench-") as tmp:
        train_csv, test_csv = Path(tmp) / "train.csv", Path(tmp) / "test.csv"
        train.to_csv(train_csv, index=False)
        test.to_csv(test_csv, index=False)
        for seed in range(args.seeds):
            out = Path(tmp) / f"recpack_{seed}.json"
            extra = ["--seed", seed, "--threads", args.threads, "--epochs", epochs]
            env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
            res = _run_worker(
                "recpack", row, python, worker, (train_csv, test_csv, out), extra, env
            )
            if res is None:
                return None
            row["curves"].append([c["recall"] for c in res["curve"]])
            row["max_gap_vs_predict"] = res["max_gap_vs_predict"]
            print(
                f"  recpack seed {seed}: Recall@{K} {res['recall']:.4f} MRR@{K} {res['mrr']:.4f} "
                f"{row['s_per_epoch'][-1]:.2f} s/epoch",
                file=sys.stderr,
            )
    return row


# -- RecBole, in its own virtual environment ---------------------------------------------------


@dataclass
class RecBoleConfig:
    """One RecBole GRU4Rec configuration: settings over RecBole's defaults, epochs, seeds."""

    config: str
    settings: dict[str, Any]
    epochs: int
    pairs_with: str | None = None  # our configuration its epoch time is compared with


RECBOLE_CONFIGS = {
    # RecBole trains 300 epochs with early stopping on a validation split by default; here the
    # epochs are those of our recpack-defaults row and the last epoch's model is scored.
    "recbole-defaults": RecBoleConfig(
        "RecBole defaults: CE (full softmax), 64-dim emb., 128 units, dropout 0.3 on the emb., "
        "Adam lr 0.001, batch 2048, {epochs} epochs",
        {},
        5,
    ),
    # As close to RSC15 best as RecBole allows: its output layer is the input embedding (shared,
    # 100 = units), its only dropout is on the input embeddings (RSC15 best's 0.4 is on the
    # hidden state), its CE is the full softmax, and it offers no Adagrad with momentum.
    "recbole-rsc15": RecBoleConfig(
        "closest to RSC15 best: CE (full softmax), 100-dim shared emb., 100 units, batch 32, "
        "dropout 0.4 on the emb., Adam lr 0.001, {epochs} epochs",
        {"embedding_size": 100, "hidden_size": 100, "train_batch_size": 32, "dropout_prob": 0.4},
        10,
        "rsc15-best",
    ),
}


def run_recbole(train: pd.DataFrame, test: pd.DataFrame, args: argparse.Namespace) -> list:
    """RecBole 1.2.1's GRU4Rec on the same split, its defaults and its closest to RSC15 best."""
    python = pinned_python("recbole-1.2.1", RECBOLE_PINS)
    if python is None:
        return []
    rows = []
    worker = benchlib.BENCH_DIR / "recbole_worker.py"
    with tempfile.TemporaryDirectory(prefix="gru4rec-bench-") as tmp:
        train_csv, test_csv = Path(tmp) / "train.csv", Path(tmp) / "test.csv"
        train.to_csv(train_csv, index=False)
        test.to_csv(test_csv, index=False)
        for key, cfg in RECBOLE_CONFIGS.items():
            epochs = args.epochs if args.epochs is not None else cfg.epochs
            seeds = args.seeds if cfg.pairs_with is None else min(args.seeds, args.recbole_seeds)
            label = cfg.config.format(epochs=epochs)
            if seeds < args.seeds:
                label += f", {seeds} seed{'s' if seeds > 1 else ''} only"
            row = _new_row(
                key,
                "RecBole 1.2.1 GRU4Rec",
                label,
                params=cfg.settings,
                load=[],
                pairs_with=cfg.pairs_with,
                own_eval=[],
            )
            for seed in range(seeds):
                out = Path(tmp) / f"{key}_{seed}.json"
                workdir = Path(tmp) / f"{key}_{seed}"
                workdir.mkdir()
                extra = ["--config", json.dumps(cfg.settings), "--epochs", epochs, "--seed", seed]
                extra += ["--threads", args.threads, "--workdir", workdir]
                env = {"OMP_NUM_THREADS": str(args.threads)}
                files = (train_csv, test_csv, out)
                res = _run_worker(f"RecBole {key}", row, python, worker, files, extra, env)
                if res is None:
                    break
                row["curves"].append([c["recall"] for c in res["curve"]])
                row["load"].append(benchlib.load_average())
                row["own_eval"].append(res["recbole_own_eval"])
                row["n_prefixes_over_50"] = res["n_prefixes_over_50"]
                print(
                    f"  RecBole {key} seed {seed}: Recall@{K} {res['recall']:.4f} "
                    f"MRR@{K} {res['mrr']:.4f} {row['s_per_epoch'][-1]:.2f} s/epoch "
                    f"(fit {res['fit_seconds']:.0f} s; its own evaluator: "
                    f"{res['recbole_own_eval']}; load {row['load'][-1]})",
                    file=sys.stderr,
                )
            if row["recall"]:
                rows.append(row)
    return rows


# -- the official GRU4Rec, in its own virtual environment ---------------------------------------


def official_dir(args: argparse.Namespace) -> Path | None:
    """The checkout given with --official, or None (with a message saying where to get it)."""
    if not args.official:
        print(
            f"official GRU4Rec not run: give --official DIR, a checkout of {OFFICIAL_URL} "
            "(e.g. git clone it beside this repository)",
            file=sys.stderr,
        )
        return None
    path = Path(args.official).expanduser().resolve()
    if not (path / "gru4rec_pytorch.py").is_file():
        print(
            f"official GRU4Rec not run: {path} has no gru4rec_pytorch.py (a checkout of "
            f"{OFFICIAL_URL} is needed)",
            file=sys.stderr,
        )
        return None
    return path


class OfficialRunner:
    """Runs the official GRU4Rec on the benchmark's data, one (configuration, seed) at a time."""

    def __init__(self, path: Path, python: Path, train: pd.DataFrame, test: pd.DataFrame, tmp):
        self.path, self.python = path, python
        self.train_csv, self.test_csv = Path(tmp) / "train.csv", Path(tmp) / "test.csv"
        self.tmp = Path(tmp)
        train.to_csv(self.train_csv, index=False)
        test.to_csv(self.test_csv, index=False)

    def row(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        config = GRU_CONFIGS[key].config.format(epochs=params["max_epochs"])
        return _new_row(
            key, "official GRU4Rec (PyTorch)", config, params=official_params(params), load=[]
        )

    def run_seed(self, row: dict[str, Any], seed: int, args: argparse.Namespace) -> bool:
        out = self.tmp / f"official_{row['key']}_{seed}.json"
        cmd = [
            str(self.python),
            str(benchlib.BENCH_DIR / "official_worker.py"),
            "--official",
            str(self.path),
            "--train",
            str(self.train_csv),
            "--test",
            str(self.test_csv),
            "--out",
            str(out),
            "--params",
            json.dumps(row["params"]),
            "--seed",
            str(seed),
            "--threads",
            str(args.threads),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            print(f"official run failed: {lines[-1] if lines else '?'}", file=sys.stderr)
            return False
        res = _record_worker_result(row, out)
        row["load"].append(benchlib.load_average())
        print(
            f"  official {row['key']} seed {seed}: Recall@{K} {res['recall']:.4f} "
            f"MRR@{K} {res['mrr']:.4f} {row['s_per_epoch'][-1]:.2f} s/epoch "
            f"(load {row['load'][-1]})",
            file=sys.stderr,
        )
        return True


# -- outputs ------------------------------------------------------------------------------------


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    curved = [
        r for r in rows if r.get("curves") and any(c and c[0] is not None for c in r["curves"])
    ]
    if not curved or not benchlib.have_matplotlib():
        return False
    plt = benchlib.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for r in curved:
        curves = np.array([c for c in r["curves"] if c], dtype=float)
        mean = curves.mean(axis=0)
        epochs = np.arange(1, len(mean) + 1)
        label = f"{r['system']}: {r['key']}"
        ax.plot(epochs, mean, marker="o", label=label)
        if len(curves) > 1:
            ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), alpha=0.2)
    for r in rows:
        if r["system"] == "baseline":
            ax.axhline(r["recall"][0], linestyle="--", linewidth=1, color="grey")
            ax.annotate(r["key"], (1, r["recall"][0]), fontsize=8, color="grey", va="bottom")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test Recall@{K} (every position)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def machine_text(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    load = m.get("load_average")
    loads = meta.get("run_loads")
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch thread(s), device "
        f"{m['device']}, torch {m['torch']}"
        + ("" if load is None else f", load average {load:.1f} at the end of the run")
        + (f" ({min(loads):.1f}-{max(loads):.1f} after each training run)" if loads else "")
        + f"; measured {meta['date']}"
        + (f" at commit {m['git']}" if m.get("git") else "")
        + f", seeds: {meta['seeds']}"
    )


def describe(meta: dict[str, Any]) -> str:
    d = meta["data"]
    return (
        f"Data: {d['name']} ({d['train_events']} training events, {d['n_items']} items; "
        f"{d['n_predictions']} test predictions). Machine: {machine_text(meta)}. "
        f"Command: `{meta['machine']['command']}`"
    )


def time_ratios(
    rows: list[dict[str, Any]], floors: dict[str, dict[str, float]] | None = None
) -> list[str]:
    """One line per configuration measured side by side with another implementation in this run.

    Only ratios between times measured in the same run are given, never against a figure from
    elsewhere. ``floors`` (:func:`floor.epoch_floor` per configuration, timed in the same run)
    adds the time of the step's matrix products alone and the ratio that time would give.
    """
    ours = {r["key"]: r for r in rows if r["system"].startswith("gru4rec") and r["s_per_epoch"]}
    lines = []
    for r in rows:
        if r["system"].startswith("official") and r["s_per_epoch"] and r["key"] in ours:
            mine, theirs = ours[r["key"]], r
        elif r["key"] == "recpack" and r["s_per_epoch"] and "recpack-defaults" in ours:
            mine, theirs = ours["recpack-defaults"], r
        elif r.get("pairs_with") in ours and r["s_per_epoch"]:
            mine, theirs = ours[r["pairs_with"]], r
        else:
            continue
        a = statistics.median(mine["s_per_epoch"])
        b = statistics.median(theirs["s_per_epoch"])
        lines.append(
            f"- {mine['key']}: gru4rec {a:.2f} s/epoch, {theirs['system']} {b:.2f} s/epoch: "
            f"{b / a:.1f}x as fast (medians over {len(mine['s_per_epoch'])} + "
            f"{len(theirs['s_per_epoch'])} runs, side by side)"
        )
        floor = (floors or {}).get(mine["key"])
        if floor and theirs["system"].startswith("official"):
            lines[-1] += (
                f"; the step's matrix products alone take {floor['ours']:.2f} s/epoch here "
                f"(at most {b / floor['ours']:.1f}x with nothing else left)"
            )
    return lines


def publish(out_dir: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Copy the table and plots to docs/benchmarks/ and the table into the README."""
    docs = benchlib.DOCS_BENCH_DIR
    docs.mkdir(parents=True, exist_ok=True)
    for png in sorted(out_dir.glob("*.png")):
        shutil.copy2(png, docs / png.name)
    table = "\n".join([benchlib.markdown_table(rows), "", *time_ratios(rows, meta.get("floors"))])
    note = describe(meta)
    (docs / "latest.md").write_text(table + "\n\n" + note + "\n")
    d = meta["data"]
    rst = [
        benchlib.rst_table(rows),
        "",
        *time_ratios(rows, meta.get("floors")),
        "",
        f"Data: ``{d['name']}`` ({d['train_events']} training events, {d['n_items']} items; "
        f"{d['n_predictions']} test predictions). Machine: {machine_text(meta)}. Produced by::",
        "",
        f"   {meta['machine']['command']}",
        "",
    ]
    (docs / "latest.inc").write_text("\n".join(rst))
    readme = benchlib.REPO_ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{table}\n\n{note}\n{end}{tail}")
    print(f"published to {docs} and README.md", file=sys.stderr)


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="folder with train.csv/test.csv, or one events CSV")
    parser.add_argument(
        "--test-days", type=float, default=1.0, help="test span when --data is one events CSV"
    )
    parser.add_argument("--name", help="results folder name (default: the data's name)")
    parser.add_argument(
        "--user-histories",
        action="store_true",
        help="recast the data as order-keyed user histories (positions as times, ids numbered "
        "in item-dump order; benchlib.as_user_histories)",
    )
    parser.add_argument("--epochs", type=int, help="override every configuration's epochs")
    parser.add_argument(
        "--seeds", type=int, default=1, help="runs per configuration (seeds 0..N-1)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=ALL_CONFIGS,
        help=f"run only these (repeatable); default: {', '.join(DEFAULT_CONFIGS)}",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--with-recpack", action="store_true", help="also run recpack 0.3.6")
    parser.add_argument(
        "--with-recbole",
        action="store_true",
        help="also run RecBole 1.2.1's GRU4Rec: its defaults and its closest to RSC15 best",
    )
    parser.add_argument(
        "--recbole-seeds",
        type=int,
        default=1,
        help="seeds of RecBole's RSC15-like configuration, about 100x slower per epoch than "
        "ours (default 1; its defaults run --seeds)",
    )
    parser.add_argument(
        "--official",
        metavar="DIR",
        help=f"also run the official GRU4Rec from DIR, a checkout of {OFFICIAL_URL}",
    )
    parser.add_argument("--no-curves", action="store_true", help="skip per-epoch test Recall")
    parser.add_argument("--speed", action="store_true", help="also run bench_speed's sweeps")
    parser.add_argument("--publish", action="store_true", help="copy results to docs/ + README")
    parser.add_argument("--verbose", action="store_true", help="progress bars while training")
    parser.add_argument(
        "--from-results",
        metavar="NAME",
        help="run nothing: print (and with --publish, publish) results/NAME/results.json again",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.recbole_seeds < 1:
        parser.error("--recbole-seeds must be >= 1")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from gru4rec import InteractionMatrix, datasets

    if args.from_results:
        out_dir = benchlib.RESULTS_DIR / args.from_results
        saved = json.loads((out_dir / "results.json").read_text())
        rows = saved.pop("rows")
        saved.pop("time_ratios", None)
        print(
            "\n".join([benchlib.markdown_table(rows), "", *time_ratios(rows, saved.get("floors"))])
        )
        if args.publish:
            publish(out_dir, saved, rows)
        return 0
    torch.set_num_threads(args.threads)
    loaded = load_data(args)
    if loaded is None:
        return 2
    train, test, data_name = loaded
    if args.user_histories:
        train, test = benchlib.as_user_histories(train, test)
        data_name += "_user_histories"
    name = args.name or data_name
    out_dir = benchlib.RESULTS_DIR / name
    out_dir.mkdir(parents=True, exist_ok=True)

    X = InteractionMatrix.from_events(train)
    T = InteractionMatrix.from_events(test, item_vocabulary=X.item_vocabulary)
    validation = None if args.no_curves else datasets.last_item_split(T)
    selected = args.only or DEFAULT_CONFIGS
    print(
        f"{name}: train {X.num_interactions} events / {X.num_active_users} sessions / "
        f"{X.shape[1]} items; test {T.num_interactions} events / {T.num_active_users} sessions; "
        f"{args.threads} torch thread(s); load average {benchlib.load_average()}; "
        f"running {', '.join(selected)}",
        file=sys.stderr,
    )
    rows = []
    official = [k for k in selected if k in OFFICIAL_CONFIGS]
    path = official_dir(args) if official else None
    python = pinned_python("official-gru4rec", OFFICIAL_PINS) if path else None
    with tempfile.TemporaryDirectory(prefix="gru4rec-bench-") as tmp:
        runner = OfficialRunner(path, python, train, test, tmp) if python else None
        for key in selected:
            if key not in GRU_CONFIGS:
                continue
            if runner is None or key not in OFFICIAL_CONFIGS:
                rows.append(run_gru(key, X, T, validation, args))
                continue
            # Back to back, alternating which goes first, so that a change in the machine's
            # load hits both sides alike.
            mine = gru_row(key, args)
            theirs = runner.row(key, mine["params"])
            for seed in range(args.seeds):
                for side in (0, 1) if seed % 2 == 0 else (1, 0):
                    if side == 0:
                        run_gru_seed(mine, X, T, validation, seed, args)
                    else:
                        runner.run_seed(theirs, seed, args)
            rows.append(mine)
            if theirs["recall"]:
                rows.append(theirs)
    if args.with_recpack:
        row = run_recpack(train, test, args)
        if row is not None:
            rows.append(row)
    if args.with_recbole:
        rows.extend(run_recbole(train, test, args))
    for key in selected:
        if key in BASELINES:
            rows.append(run_baseline(key, X, T))

    floors = {}
    if args.threads == 1 and args.device == "cpu":
        import floor

        timed = {r["key"] for r in rows if r["system"].startswith("official") and r["s_per_epoch"]}
        for r in rows:
            if r["system"].startswith("gru4rec") and r["key"] in timed:
                floors[r["key"]] = floor.epoch_floor(X, r["params"])
    machine = benchlib.machine_facts(args.threads, args.device)
    n_predictions = next((r["n_predictions"] for r in rows if "n_predictions" in r), 0)
    run_loads = [x for r in rows for x in r.get("load", []) if x is not None]
    meta = {
        "run_loads": run_loads,
        "name": name,
        "date": time.strftime("%Y-%m-%d"),
        "seeds": args.seeds,
        "floors": floors,
        "machine": machine,
        "data": {
            "name": data_name,
            "train_events": X.num_interactions,
            "train_sessions": X.num_active_users,
            "n_items": X.shape[1],
            "test_events": T.num_interactions,
            "test_sessions": T.num_active_users,
            "n_predictions": n_predictions,
        },
    }
    table = benchlib.markdown_table(rows)
    ratios = time_ratios(rows, floors)
    print("\n".join([table, "", *ratios]))
    (out_dir / "table.md").write_text("\n".join([table, "", *ratios, "", describe(meta)]) + "\n")
    benchlib.write_json(out_dir / "results.json", {**meta, "time_ratios": ratios, "rows": rows})
    if plot_curves(rows, out_dir / "curves.png", f"{name}: test Recall@{K} per epoch"):
        print(f"wrote {out_dir / 'curves.png'}", file=sys.stderr)
    if args.speed:
        import bench_speed

        bench_speed.run(out_dir, threads=args.threads, device=args.device)
    if args.publish:
        publish(out_dir, meta, rows)
    print(f"wrote {out_dir / 'table.md'} and {out_dir / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
