#!/usr/bin/env python3
"""Keeping a model fresh, slice by slice: ``partial_fit`` against a full refit, a stale model and
a first-order Markov baseline.

Train on the first ``--train-hours``, then step through ``--slices`` slices of ``--slice-hours``
each. After each slice every model is compared on the next one (every position of every session
that starts in it, conservative ties, ranked against all items known so far):

- ``refit``: a fresh fit on every event to date (the settings of ``--preset``),
- ``partial``: the first fit, then ``partial_fit`` on the latest ``--window`` slices,
- ``stale``: the first fit, never updated (it skips items it does not know; positions whose
  target it does not know are misses),
- ``markov``: first-order transition counts over every event to date, ties by popularity.

Test events whose item no model could know yet (first seen in the test slice) are left out
for all four. Reported per slice and overall (pooled over the positions of all slices):
Recall@20, MRR@20, the share of ``partial``'s (and ``refit``'s) hits on items first seen in
the latest slice, and training seconds per update (wall and process CPU time: on a shared
machine the CPU time of one torch thread is the steadier measure of the work). One torch
thread; means over ``--seeds``.

Data: ``--data DIR`` with Globo.com's hourly ``clicks_hour_NNN.csv`` files (see README.md for
how to stage them outside the repository), or ``--data events.csv`` (session_id, item_id,
timestamp in seconds), e.g. ``../shared/data/rsc15_100k/events.csv``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from bench_accuracy import transition_ranks  # noqa: E402

from gru4rec import GRU4RecNegSampling, InteractionMatrix  # noqa: E402
from gru4rec.matrix import Vocabulary  # noqa: E402
from gru4rec.metrics import mrr_at_k, recall_at_k  # noqa: E402

PRESETS: dict[str, dict[str, Any]] = {
    # The RSC15 configuration of docs/configurations.rst, 3 epochs.
    "rsc15": dict(
        loss_fn="cross-entropy", logq=1.0, hidden_size=100, constrained_embedding=True,
        batch_size=32, dropout=0.0, dropout_hidden=0.4, learning_rate=0.2, momentum=0.2,
        num_negatives=2048, sample_alpha=0.5, clipnorm=None, max_epochs=3,
    ),
}  # fmt: skip


def load_events(path: Path, hours: str | None) -> pd.DataFrame:
    """session_id, item_id, timestamp (s) sorted by session then time."""
    if path.is_dir():
        files = sorted(path.glob("clicks_hour_*.csv*"))
        if hours:
            lo, hi = (int(h) for h in hours.split("-"))
            files = [f for f in files if lo <= int(f.name[12:15]) <= hi]
        if not files:
            sys.exit(f"no clicks_hour_*.csv files in {path}; see benchmarks/README.md")
        cols = ["session_id", "click_article_id", "click_timestamp"]
        raw = pd.concat([pd.read_csv(f, usecols=cols) for f in files], ignore_index=True)
        df = pd.DataFrame(
            {
                "session_id": raw["session_id"],
                "item_id": raw["click_article_id"],
                "timestamp": raw["click_timestamp"] // 1000,
            }
        )
    else:
        if not path.exists():
            sys.exit(benchlib.missing_data(path, "events.csv"))
        df = pd.read_csv(path, usecols=["session_id", "item_id", "timestamp"])
    df = df.sort_values(["session_id", "timestamp"], kind="stable").reset_index(drop=True)
    length = df.groupby("session_id")["item_id"].transform("size")
    return df[length >= 2].reset_index(drop=True)


def assign_slices(df: pd.DataFrame, train_hours: float, slice_hours: float) -> np.ndarray:
    """Slice of each event's session by its first click: 0 the training part, 1.. the rest."""
    start = df.groupby("session_id")["timestamp"].transform("min").to_numpy()
    t0 = start.min()
    after = (start - t0 - train_hours * 3600) / (slice_hours * 3600)
    return np.where(after < 0, 0, np.floor(after).astype(np.int64) + 1)


def known_only(df: pd.DataFrame, known: Vocabulary) -> pd.DataFrame:
    """Events of items in ``known``; sessions left with 2 or more events."""
    df = df[known.index_of(df["item_id"]) >= 0]
    length = df.groupby("session_id")["item_id"].transform("size")
    return df[length >= 2]


def model_ranks(model, test: pd.DataFrame, n_positions: int) -> np.ndarray:
    """Ranks at the ``n_positions`` test positions; items the model does not know are skipped,
    and the positions that loses count as misses (rank = inf)."""
    ours = known_only(test, model.item_vocabulary_)
    ranks = model.next_item_ranks(ours).astype(np.float64) if len(ours) else np.zeros(0)
    return np.concatenate([ranks, np.full(n_positions - len(ranks), np.inf)])


def markov_ranks(history: pd.DataFrame, test: pd.DataFrame, known: Vocabulary) -> np.ndarray:
    train_s = InteractionMatrix.from_events(history, item_vocabulary=known).session_arrays()
    test_s = InteractionMatrix.from_events(test, item_vocabulary=known).session_arrays()
    last = np.ones(test_s.n_events, dtype=bool)
    last[test_s.offsets[1:] - 1] = False
    pos = np.flatnonzero(last)
    return transition_ranks(train_s, len(known), test_s.items[pos], test_s.items[pos + 1])


def run_seed(df: pd.DataFrame, slices: np.ndarray, args, seed: int) -> list[dict[str, Any]]:
    params = {**PRESETS[args.preset], **args.param, "seed": seed, "device": "cpu"}
    params.setdefault("num_threads", 1)
    rows = []
    train = df[slices == 0]
    t = time.perf_counter()
    first = GRU4RecNegSampling(**params).fit(train)
    fit_seconds = time.perf_counter() - t
    stale = copy.deepcopy(first)  # the first fit, never updated
    decays = args.count_decay
    names = ["partial" if len(decays) == 1 else f"partial (count_decay={d:g})" for d in decays]
    partials = {name: copy.deepcopy(first) for name in names}
    partial = partials[names[0]]
    first_seen = pd.Series(slices[df.index], index=df.index).groupby(df["item_id"]).min()
    for s in range(1, args.slices + 1):
        new = df[slices == s]
        history = df[slices <= s]
        if len(new) == 0:
            continue
        window = df[(slices > s - args.window) & (slices <= s)]
        seconds, cpu = {"stale": 0.0, "markov": 0.0}, {"stale": 0.0, "markov": 0.0}
        for (name, model), decay in zip(partials.items(), decays, strict=True):
            t, c = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.partial_fit(window, epochs=args.update_epochs, count_decay=decay)
            seconds[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
        refit = None
        if not args.no_refit:
            t, c = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                refit = GRU4RecNegSampling(**params).fit(history)
            seconds["refit"] = time.perf_counter() - t
            cpu["refit"] = time.process_time() - c
        test = df[slices == s + 1]
        known = partial.item_vocabulary_
        test = known_only(test, known)
        n = int(len(test) - test["session_id"].nunique())
        if n == 0:
            continue
        ranks = {name: model_ranks(model, test, n) for name, model in partials.items()}
        ranks |= {
            "stale": model_ranks(stale, test, n),
            "markov": markov_ranks(history, test, known).astype(np.float64),
        }
        if refit is not None:
            ranks["refit"] = model_ranks(refit, test, n)
        # Targets in position order, to tell hits on the latest slice's new items.
        by_session = test.sort_values("session_id", kind="stable")
        later = by_session.groupby("session_id", sort=False).cumcount().to_numpy() > 0
        targets = by_session["item_id"].to_numpy()[later]
        fresh = first_seen.reindex(targets).to_numpy() == s
        for name, r in ranks.items():
            hits = r <= 20
            rows.append(
                {
                    "seed": seed,
                    "slice": s,
                    "method": name,
                    "positions": n,
                    "recall": recall_at_k(np.minimum(r, 1e18).astype(np.int64), 20),
                    "mrr": mrr_at_k(np.minimum(r, 1e18).astype(np.int64), 20),
                    "hits": int(hits.sum()),
                    "rr_sum": float(np.where(hits, 1.0 / r, 0.0).sum()),
                    # The stale model cannot know them (and its positions skip them).
                    "new_item_hits": 0 if name == "stale" else int((hits & fresh).sum()),
                    "seconds": seconds[name],
                    "cpu_seconds": cpu[name],
                    "load_average": benchlib.load_average(),
                    "n_items": int(partial.n_items_),
                    "first_fit_seconds": fit_seconds,
                }
            )
        print(
            f"seed {seed} slice {s}: "
            + "  ".join(
                f"{r['method']} {r['recall']:.3f}/{r['mrr']:.3f} ({r['seconds']:.1f}s)"
                for r in rows[-len(ranks) :]
            ),
            flush=True,
        )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    frame = pd.DataFrame(rows)
    out = []
    for method in pd.unique(frame["method"]):
        m = frame[frame["method"] == method]
        per_seed = m.groupby("seed").agg(
            hits=("hits", "sum"),
            rr=("rr_sum", "sum"),
            n=("positions", "sum"),
            new=("new_item_hits", "sum"),
            seconds=("seconds", "sum"),
            cpu=("cpu_seconds", "sum"),
        )
        recall = per_seed["hits"] / per_seed["n"]
        mrr = per_seed["rr"] / per_seed["n"]
        out.append(
            {
                "method": method,
                "Recall@20": benchlib.fmt(list(recall), 4),
                "MRR@20": benchlib.fmt(list(mrr), 4),
                "hits on new items": benchlib.fmt(
                    list(per_seed["new"] / per_seed["hits"].clip(lower=1)), 3
                ),
                "train s (all updates)": benchlib.fmt(list(per_seed["seconds"]), 1),
                "train CPU s": benchlib.fmt(list(per_seed["cpu"]), 1),
                "_recall": float(recall.mean()),
                "_mrr": float(mrr.mean()),
                "_seconds": float(per_seed["seconds"].mean()),
                "_cpu": float(per_seed["cpu"].mean()),
            }
        )
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    if not benchlib.have_matplotlib():
        return False
    plt = benchlib.pyplot()
    frame = pd.DataFrame(rows)
    mean = frame.groupby(["method", "slice"])[["recall", "mrr", "cpu_seconds"]].mean().reset_index()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    methods = list(pd.unique(frame["method"]))
    for method in methods:
        m = mean[mean["method"] == method]
        style = dict(marker="o", label=method, color=f"C{methods.index(method)}")
        axes[0].plot(m["slice"], m["recall"], **style)
        axes[1].plot(m["slice"], m["mrr"], **style)
        if method == "refit" or method.startswith("partial"):
            axes[2].plot(m["slice"], m["cpu_seconds"], **style)
    for ax, name in zip(
        axes, ("Recall@20", "MRR@20", "training CPU seconds per update"), strict=True
    ):
        ax.set_xlabel("slice (evaluated on the next one)")
        ax.set_title(name)
        ax.legend()
    axes[2].set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="hourly Globo folder or events.csv")
    p.add_argument("--hours", help="Globo hour files to read, e.g. 0-95")
    p.add_argument("--train-hours", type=float, default=24.0)
    p.add_argument("--slice-hours", type=float, default=6.0)
    p.add_argument("--slices", type=int, default=8, help="updates (each evaluated on the next)")
    p.add_argument("--window", type=int, default=1, help="latest slices partial_fit trains on")
    p.add_argument("--update-epochs", type=int, default=None, help="default: max_epochs")
    p.add_argument(
        "--count-decay",
        type=float,
        nargs="+",
        default=[1.0],
        help="partial_fit's count_decay; several values update one model each, side by side",
    )
    p.add_argument("--preset", default="rsc15", choices=sorted(PRESETS))
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model parameter (Python literal), repeatable",
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. +seeds-1")
    p.add_argument("--no-refit", action="store_true", help="skip the refits (tuning runs)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/rolling"))
    p.add_argument("--name", default="rolling")
    args = p.parse_args(argv)

    parsed = {}
    for item in args.param:
        key, _, value = item.partition("=")
        try:
            parsed[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed[key] = value
    args.param = parsed
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    df = load_events(args.data, args.hours)
    slices = assign_slices(df, args.train_hours, args.slice_hours)
    print(
        f"{len(df)} events, {df['session_id'].nunique()} sessions, {df['item_id'].nunique()} "
        f"items; training part {int((slices == 0).sum())} events",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows.extend(run_seed(df, slices, args, seed))
    summary = summarise(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = benchlib.machine_facts(1, "cpu")
    meta["command"] = benchlib.command_line()
    meta["params"] = {**PRESETS[args.preset], **args.param}
    benchlib.write_json(
        args.out / f"{args.name}.json", {"meta": meta, "rows": rows, "summary": summary}
    )
    table = markdown([{k: v for k, v in r.items() if not k.startswith("_")} for r in summary])
    (args.out / f"{args.name}.md").write_text(table + "\n")
    print(table)
    by = {r["method"]: r for r in summary}
    for name in [m for m in by if m.startswith("partial") and "refit" in by]:
        p, r = by[name], by["refit"]
        print(
            f"{name} - refit: Recall@20 {p['_recall'] - r['_recall']:+.4f}, MRR@20 "
            f"{p['_mrr'] - r['_mrr']:+.4f}; training time ratio partial/refit "
            f"{p['_seconds'] / r['_seconds']:.3f} (wall), {p['_cpu'] / r['_cpu']:.3f} (CPU)"
        )
    title = f"{args.data.name}: {args.slice_hours:g}-hour slices, {args.seeds} seeds"
    plot(rows, args.out / f"{args.name}.png", title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
