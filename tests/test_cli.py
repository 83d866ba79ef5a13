"""The command line end to end on small CSVs the tests write: train, evaluate, recommend, errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix
from gru4rec.cli import build_parser, main
from gru4rec.datasets import make_synthetic_sessions, time_split

REPO_ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--hidden-size", "16", "--max-epochs", "1", "--batch-size", "32", "--seed", "0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """train.csv / test.csv with string ids, and a model trained on them by the CLI."""
    root = tmp_path_factory.mktemp("cli")
    df = make_synthetic_sessions(n_sessions=400, n_items=60, seed=3)
    df["session_id"] = "s" + df["session_id"].astype(str)
    df["item_id"] = "item_" + df["item_id"].astype(str)
    train, test = time_split(df, test_days=0.05)
    paths = {"root": root, "train": root / "train.csv", "test": root / "test.csv"}
    train.to_csv(paths["train"], index=False)
    test.to_csv(paths["test"], index=False)
    (root / "models").mkdir()
    paths["model"] = root / "models" / "model.trch"
    args = ["train", str(paths["train"]), "--model", str(paths["model"]), *SMALL]
    assert main([*args, "--num-negatives", "16", "--constrained-embedding", "--quiet"]) == 0
    return paths


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gru4rec"), err
    return err[0]


def test_train_saves_a_loadable_model_with_the_given_parameters(files):
    est = GRU4RecNegSampling().load(files["model"])
    assert est.hidden_size == 16
    assert est.num_negatives == 16
    assert est.constrained_embedding is True
    assert est.max_epochs == 1 and len(est.history_) == 1
    assert str(est.item_vocabulary_.ids[0]).startswith("item_")


def test_every_constructor_parameter_is_an_option():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    dests = {action.dest for action in train._actions}
    for cls in (GRU4RecNegSampling, GRU4RecCrossEntropy):
        for name in cls().get_params():
            if name in ("session_col", "item_col", "time_col"):  # the input column options
                assert name in dests, name
            elif name == "num_threads":  # --threads, as in evaluate and recommend
                assert "threads" in dests
            else:
                assert f"param_{name}" in dests, name


def test_option_values_are_parsed_by_type(files, tmp_path):
    model = tmp_path / "m.trch"
    args = ["train", str(files["train"]), "--model", str(model), *SMALL, "--quiet"]
    assert main([*args, "--clipnorm", "none", "--keep-last", "false", "--logq", "1"]) == 0
    est = GRU4RecNegSampling().load(model)
    assert est.clipnorm is None and est.keep_last is False and est.logq == 1.0


def test_evaluate_prints_the_estimators_metrics(files, capsys):
    args = ["evaluate", str(files["test"]), "--model", str(files["model"]), "--quiet"]
    assert main([*args, "--json", "-k", "5", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    est = GRU4RecNegSampling().load(files["model"])
    test = InteractionMatrix.from_events(
        pd.read_csv(files["test"]), item_vocabulary=est.item_vocabulary_
    )
    ranks = est.next_item_ranks(test)
    assert result["predictions"] == len(ranks)
    assert result["Recall@20"] == pytest.approx(np.mean(ranks <= 20))
    assert result["MRR@5"] == pytest.approx(np.mean(np.where(ranks <= 5, 1.0 / ranks, 0.0)))

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Recall@20" in out and "MRR@20" in out


def test_recommend_writes_top_k_raw_ids_matching_predict(files, capsys):
    out = files["root"] / "recs.csv"
    args = ["recommend", str(files["test"]), "--model", str(files["model"]), "-k", "5"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    recs = pd.read_csv(out)
    assert list(recs.columns) == ["session_id", "rank", "item_id", "score"]
    sessions = pd.read_csv(files["test"])
    assert set(recs["session_id"]) == set(sessions["session_id"])
    ranks = recs.groupby("session_id")["rank"].apply(list)
    assert all(r == [1, 2, 3, 4, 5] for r in ranks)
    assert recs["item_id"].str.startswith("item_").all()
    assert (recs.groupby("session_id")["score"].diff().dropna() <= 0).all()

    est = GRU4RecNegSampling().load(files["model"])
    X = InteractionMatrix.from_events(sessions, item_vocabulary=est.item_vocabulary_)
    scores = est.predict(X).toarray()
    best = est.item_vocabulary_.to_raw(scores.argmax(axis=1))
    top1 = recs[recs["rank"] == 1].set_index("session_id")["item_id"]
    for row, session in enumerate(X.user_vocabulary.ids):
        assert top1[session] == best[row]


def test_recommend_to_stdout_without_timestamps(files, capsys, tmp_path):
    sessions = pd.read_csv(files["test"]).drop(columns="timestamp")
    path = tmp_path / "sessions.csv"
    sessions.to_csv(path, index=False)
    args = ["recommend", str(path), "--model", str(files["model"]), "-k", "2", "--quiet"]
    assert main([*args, "--time-col", "none"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "session_id,rank,item_id,score"
    assert len(lines) == 1 + 2 * sessions["session_id"].nunique()


def test_cross_entropy_estimator(files, tmp_path, capsys):
    model = tmp_path / "xe.trch"
    args = ["train", str(files["train"]), "--model", str(model), *SMALL, "--quiet"]
    assert main([*args, "--estimator", "cross-entropy"]) == 0
    assert main(["evaluate", str(files["test"]), "--model", str(model), "--quiet"]) == 0
    assert "Recall@20" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "{root}/missing.csv", "--model", "{model}"],
        ["evaluate", "{test}", "--model", "{root}/missing.trch"],
        ["evaluate", "{test}", "--model", "{test}"],  # not a model file
        ["recommend", "{test}", "--model", "{model}", "--item-col", "product"],
        ["recommend", "{test}", "--model", "{model}", "-k", "0"],
        ["train", "{train}", "--model", "{root}/x.trch", "--loss-fn", "nope", "--quiet"],
        ["train", "{train}", "--model", "{root}/x.trch", "--estimator", "cross-entropy",
         "--num-negatives", "5"],
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(files, capsys, argv):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main(argv) == 2
    assert "error" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("drop", "says"),
    [("item_id", "pass --item-col with"), ("timestamp", "--time-col none")],
)
def test_a_missing_column_names_the_option_to_pass(tmp_path, capsys, drop, says):
    path = tmp_path / "sessions.csv"
    events = make_synthetic_sessions(n_sessions=20, n_items=10, seed=0)
    events.drop(columns=drop).to_csv(path, index=False)
    assert main(["train", str(path), "--model", str(tmp_path / "m.trch"), "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert says in line and "_col=" not in line


def test_bad_option_value_is_a_one_line_usage_error(files, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", str(files["train"]), "--model", "m.trch", "--hidden-size", "abc"])
    assert exc.value.code == 2
    assert "--hidden-size" in _one_line_error(capsys)


@pytest.mark.parametrize("command", ["train", "evaluate", "recommend", "demo"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"gru4rec {command}" in capsys.readouterr().out


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def test_recommend_into_a_closed_pipe_stops_quietly(files, tmp_path):
    # As in `gru4rec recommend ... | head`: the reader is gone before the output is written.
    cmd = [sys.executable, "-m", "gru4rec", "recommend", str(files["test"]), "--model"]
    proc = subprocess.Popen(
        [*cmd, str(files["model"]), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=tmp_path,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Broken pipe" not in err and "Traceback" not in err and "error" not in err


def test_ctrl_c_during_train_saves_the_last_epoch_and_exits_130(files, tmp_path):
    import signal
    import threading

    model = tmp_path / "m.trch"
    cmd = [sys.executable, "-m", "gru4rec", "train", str(files["train"]), "--model", str(model)]
    cmd += ["--hidden-size", "8", "--batch-size", "16", "--max-epochs", "100000", "--verbose"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=_env())
    seen = bytearray()
    first_epoch = threading.Event()

    def read():
        while chunk := proc.stderr.read1(4096):
            seen.extend(chunk)
            if b"epoch=2/100000" in seen:  # an epoch completed (the bar shows the second)
                first_epoch.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first_epoch.wait(timeout=120), seen.decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        proc.kill()
    reader.join(timeout=10)
    assert b"interrupted: saved the model" in seen, seen.decode(errors="replace")
    est = GRU4RecNegSampling().load(model)
    assert len(est.history_) >= 2


def test_model_in_a_missing_directory_is_an_error_before_reading(files, capsys, tmp_path):
    argv = ["train", str(tmp_path / "absent.csv"), "--model", str(tmp_path / "no" / "m.trch")]
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert "does not exist" in line and "--model" in line
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_model_in_an_unwritable_directory_is_an_error_before_reading(capsys, tmp_path):
    argv = ["train", str(tmp_path / "absent.csv"), "--model", "/proc/m.trch"]
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert line.startswith("gru4rec: error: --model /proc/m.trch:") and ".tmp" not in line


def test_bad_parameter_is_rejected_before_the_data_is_read(tmp_path, capsys):
    argv = ["train", str(tmp_path / "absent.csv"), "--model", str(tmp_path / "m.trch")]
    assert main([*argv, "--learning-rate", "-1"]) == 2
    assert "--learning-rate" in _one_line_error(capsys)


def test_quiet_wins_over_verbose(files, tmp_path, capsys):
    model = tmp_path / "m.trch"
    args = ["train", str(files["train"]), "--model", str(model), *SMALL]
    assert main([*args, "--verbose", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert GRU4RecNegSampling().load(model).verbose is False


def test_threads_option_reaches_the_estimator(files, tmp_path):
    model = tmp_path / "m.trch"
    args = ["train", str(files["train"]), "--model", str(model), *SMALL, "--quiet"]
    assert GRU4RecNegSampling().num_threads == 1  # the same default as --threads
    assert main([*args, "--threads", "none"]) == 0
    assert GRU4RecNegSampling().load(model).num_threads is None


def test_recommend_exclude_seen(files, tmp_path):
    out = tmp_path / "recs.csv"
    args = ["recommend", str(files["test"]), "--model", str(files["model"]), "-k", "5"]
    assert main([*args, "--out", str(out), "--quiet", "--exclude-seen"]) == 0
    recs = pd.read_csv(out)
    seen = pd.read_csv(files["test"])[["session_id", "item_id"]].drop_duplicates()
    both = recs.merge(seen, on=["session_id", "item_id"])
    assert len(both) == 0 and len(recs) == 5 * seen["session_id"].nunique()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("command", ["train", "evaluate", "recommend", "demo"])
def test_help_says_each_default_once_and_never_none(command):
    parser = _subparsers()[command]
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
    formatter = parser._get_formatter()
    for action in parser._actions:
        text = formatter._expand_help(action) if action.help else ""
        assert "(default: None)" not in text, text
        assert text.count("default") <= (0 if action.required else 1), text


def test_demo_takes_trains_option_names():
    parsers = _subparsers()
    names = {s for a in parsers["train"]._actions for s in a.option_strings}
    demo = {s for a in parsers["demo"]._actions for s in a.option_strings}
    only_demo = demo - names
    assert only_demo == {"--sessions", "--items", "--test-share"}, only_demo
    assert {"--loss-fn", "--num-negatives", "--max-epochs", "--sep", "--quiet"} <= demo


def test_demo_runs_with_trains_options(capsys):
    argv = ["demo", "--sessions", "500", "--items", "100", "--max-epochs", "1"]
    assert main([*argv, "--hidden-size", "8", "--num-negatives", "16", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "GRU4Rec" in out and "popularity" in out


@pytest.mark.parametrize(
    ("times", "message"),
    [([1, 2, 3, 4, 5, 6], "no test session"), ([0] * 6, "same time")],
)
def test_demo_on_a_file_too_small_to_split_says_so(tmp_path, capsys, times, message):
    path = tmp_path / "tiny.csv"
    pd.DataFrame(
        {"session_id": [1, 1, 2, 2, 3, 3], "item_id": list("abacbc"), "timestamp": times}
    ).to_csv(path, index=False)
    assert main(["demo", str(path), "--max-epochs", "1", "--quiet"]) == 2
    assert message in _one_line_error(capsys)


# -- without a time column, training visits sessions in a random order -----------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [([], "random"), (["--session-order", "time"], "time"), (["--time-col", "timestamp"], "time")],
)
def test_cli_without_time_column_trains_in_random_order(tmp_path, extra, expected):
    df = make_synthetic_sessions(n_sessions=300, n_items=60, seed=3)
    path = tmp_path / "events.csv"
    if "--time-col" in extra:
        df.to_csv(path, index=False)
    else:
        df.drop(columns="timestamp").to_csv(path, index=False)
        extra = ["--time-col", "none", *extra]
    model = tmp_path / "model.trch"
    args = ["train", str(path), "--model", str(model), "--hidden-size", "8", "--max-epochs", "1"]
    assert main([*args, "--quiet", *extra]) == 0
    assert GRU4RecNegSampling().load(model).session_order == expected


def test_a_data_file_in_place_of_the_command_suggests_the_commands(files, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(files["train"])])
    assert exc.value.code == 2
    assert f"gru4rec demo {files['train']}" in _one_line_error(capsys)
