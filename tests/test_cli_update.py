"""``gru4rec update``: load a model, train it further on new events, save it."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from tiny import assert_same_weights, weights

from gru4rec import GRU4RecNegSampling
from gru4rec.cli import build_parser, main
from gru4rec.datasets import make_synthetic_sessions

SMALL = ["--hidden-size", "8", "--max-epochs", "1", "--batch-size", "16", "--seed", "0"]


@pytest.fixture()
def days(tmp_path):
    df = make_synthetic_sessions(n_sessions=200, n_items=40, seed=5)
    df["item_id"] = "item_" + df["item_id"].astype(str)
    cut = df.groupby("session_id")["timestamp"].transform("min").quantile(0.6)
    start = df.groupby("session_id")["timestamp"].transform("min")
    yesterday, today = df[start < cut].copy(), df[start >= cut].copy()
    # Today brings an article nobody has read before.
    today.loc[today.index[1::7], "item_id"] = "item_new"
    paths = {"yesterday": tmp_path / "yesterday.csv", "today": tmp_path / "today.csv"}
    yesterday.to_csv(paths["yesterday"], index=False)
    today.to_csv(paths["today"], index=False)
    paths["model"] = tmp_path / "yesterday.trch"
    argv = ["train", str(paths["yesterday"]), "--model", str(paths["model"]), *SMALL]
    assert main([*argv, "--num-negatives", "8", "--quiet"]) == 0
    paths["today_df"] = today
    return paths


def test_update_equals_partial_fit_and_grows_the_catalogue(days, tmp_path, capsys):
    out = tmp_path / "today.trch"
    argv = ["update", str(days["today"]), "--model", str(days["model"]), "--out", str(out)]
    assert main([*argv, "--epochs", "2"]) == 0
    said = capsys.readouterr().out
    assert "1 new items" in said and str(out) in said
    updated = GRU4RecNegSampling().load(out)
    assert updated.item_vocabulary_.ids[-1] == "item_new"
    assert updated.training_state_.updates == 1
    # The same update in Python, from the same file.
    expected = GRU4RecNegSampling().load(days["model"])
    expected.partial_fit(pd.read_csv(days["today"]), epochs=2)
    np.testing.assert_array_equal(updated.item_vocabulary_.ids, expected.item_vocabulary_.ids)
    assert_same_weights(weights(updated), weights(expected))
    # The file it started from is untouched.
    assert GRU4RecNegSampling().load(days["model"]).training_state_.updates == 0


def test_update_in_place_and_bad_input(days, tmp_path, capsys):
    model = str(days["model"])
    assert main(["update", str(days["today"]), "--model", model, "--out", model, "--quiet"]) == 0
    assert GRU4RecNegSampling().load(model).training_state_.updates == 1
    capsys.readouterr()
    missing = str(tmp_path / "no" / "such.trch")
    assert main(["update", str(days["today"]), "--model", model, "--out", missing]) == 2
    assert "--out" in capsys.readouterr().err
    ints = days["today_df"].assign(item_id=np.arange(len(days["today_df"])))
    ints.to_csv(tmp_path / "ints.csv", index=False)
    argv = ["update", str(tmp_path / "ints.csv"), "--model", model, "--out", model]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "ints.csv" in err and "numbers" in err and "strings" in err
    assert GRU4RecNegSampling().load(model).training_state_.updates == 1


def test_update_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["update", "--help"])
    assert exc.value.code == 0
    assert "gru4rec update" in capsys.readouterr().out


def test_update_help_says_each_default_once_and_never_none():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["update"]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"update {action.option_strings or action.dest}: no help text"
        text = formatter._expand_help(action)
        assert "(default: None)" not in text, text
        assert text.count("default") <= (0 if action.required else 1), text
