"""Build a benchmark data set (events.csv, train.csv, test.csv) from its public download.

Every step is a function of :mod:`gru4rec.datasets`: read the raw files into the columns
``session_id, item_id, timestamp``, apply the GRU4Rec filters (:func:`preprocess`) and split by
session start time (:func:`time_split`). Where each data set comes from, its licence and the
exact command for each: ``benchmarks/README.md``.

    python benchmarks/prepare_data.py rsc15 RAW.txt [RAW.txt ...] --out DIR --test-days 0.5
    python benchmarks/prepare_data.py diginetica train-item-views.csv --out DIR --test-days 7
    python benchmarks/prepare_data.py globo clicks_hour_*.csv.gz --out DIR \\
        --test-days 0.0833333333 --tmax 2017-10-03T02:36:19

Prints the event, session and item counts of each file it writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import benchlib  # noqa: F401  (puts the checkout on the path when the package is not installed)
import numpy as np
import pandas as pd

from gru4rec import datasets


def read_globo(paths: list[str]) -> pd.DataFrame:
    """Globo.com (G1) click files: session_id, click_article_id, click_timestamp (ms)."""
    df = datasets.read_events(
        paths, session_col="session_id", item_col="click_article_id", time_col="click_timestamp"
    )
    ms = df["timestamp"].to_numpy(dtype=np.int64)
    # Sort by session and exact time (ms), ties in file order, then keep whole seconds.
    codes, _ = pd.factorize(df["session_id"], sort=True)
    order = np.lexsort((ms, codes))
    df = df.iloc[order].reset_index(drop=True)
    df["timestamp"] = ms[order] // 1000
    return df


READERS = {
    "rsc15": datasets.read_rsc15,
    "diginetica": datasets.read_diginetica,
    "globo": read_globo,
}


def counts(df: pd.DataFrame) -> str:
    return (
        f"{len(df):,} events, {df['session_id'].nunique():,} sessions, "
        f"{df['item_id'].nunique():,} items"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(READERS))
    parser.add_argument("raw", nargs="+", help="the downloaded file(s)")
    parser.add_argument("--out", required=True, help="folder for events.csv, train.csv, test.csv")
    parser.add_argument(
        "--test-days", type=float, required=True, help="test: sessions starting in the last N days"
    )
    parser.add_argument(
        "--tmax", help="end of the window the test days count back from (default: the last event)"
    )
    parser.add_argument("--min-item-support", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    events = READERS[args.dataset](args.raw if len(args.raw) > 1 else args.raw[0])
    kept = datasets.preprocess(events, min_session_length=2, min_item_support=args.min_item_support)
    train, test = datasets.time_split(kept, test_days=args.test_days, tmax=args.tmax)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("events", events), ("train", train), ("test", test)):
        df.to_csv(out / f"{name}.csv", index=False)
        print(f"{out / name}.csv: {counts(df)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
