"""The command line end to end on small CSVs the tests write: train, evaluate, recommend, errors."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from interrupts import interrupt_at_marker

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


def test_an_empty_event_file_is_an_error_that_names_it(tmp_path, capsys):
    path = tmp_path / "events.csv"
    path.write_text("")
    assert main(["train", str(path), "--model", str(tmp_path / "m.trch")]) == 2
    assert _one_line_error(capsys) == (
        f"gru4rec: error: {path} is empty: it needs a header line naming the columns, then events"
    )


def test_train_quiet_prints_nothing(files, tmp_path, capsys):
    model = tmp_path / "m.trch"
    assert main(["train", str(files["train"]), "--model", str(model), *SMALL, "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert model.is_file()


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
    ("argv", "says"),
    [
        (["evaluate", "{root}/missing.csv", "--model", "{model}"], "missing.csv: no such file"),
        (["evaluate", "{test}", "--model", "{root}/missing.trch"], "missing.trch: No such file"),
        (["evaluate", "{test}", "--model", "{test}"], "not a gru4rec model file"),
        (["recommend", "{test}", "--model", "{model}", "--item-col", "product"],
         "column 'product' not in"),
        (["recommend", "{test}", "--model", "{model}", "-k", "0"], "-k must be >= 1"),
        (["train", "{train}", "--model", "{root}/x.trch", "--loss-fn", "nope", "--quiet"],
         "--loss-fn: loss_fn must be one of"),
        (["train", "{train}", "--model", "{root}/x.trch", "--estimator", "cross-entropy",
          "--num-negatives", "5"], "takes no --num-negatives"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(files, capsys, argv, says):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert says in line, line  # the error is the one this input should cause


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
    assert b"saved the model after" in seen, seen.decode(errors="replace")
    assert b"Traceback" not in seen
    est = GRU4RecNegSampling().load(model)
    assert len(est.history_) >= 2
    assert est.history_[-1]["interrupted"] is True


_WAIT_IN = """
import importlib, sys, time
module = importlib.import_module({module!r})
real = getattr(module, {name!r})

def waiting(*args, **kwargs):  # the test sends its Ctrl-C while this waits
    print("WAITING", file=sys.stderr, flush=True)
    time.sleep(120)
    return real(*args, **kwargs)

setattr(module, {name!r}, waiting)
from gru4rec.cli import main
sys.exit(main({argv!r}))
"""


def _interrupt_cli_in(module: str, name: str, argv: list[str]) -> tuple[int, str]:
    """Run the command line in a new process, send it a real SIGINT while it is inside
    ``module.name`` (a marker on stderr says so); its exit status and stderr."""
    code = _WAIT_IN.format(module=module, name=name, argv=argv)
    status, _, err = interrupt_at_marker([sys.executable, "-c", code], _env())
    return status, err


@pytest.mark.parametrize(
    "where",
    [("gru4rec.trainer", "train_epoch"), ("gru4rec.datasets", "read_events")],
    ids=["first-epoch", "start-up"],
)
def test_ctrl_c_before_the_first_epoch_completes_leaves_the_model_file_alone(
    files, tmp_path, where
):
    """Interrupted in its first epoch or while reading its data, ``train`` writes nothing: the
    good model already in the file keeps its bytes, and the status is 3, not 130."""
    model = tmp_path / "m.trch"
    model.write_bytes(files["model"].read_bytes())
    before = model.read_bytes()
    argv = ["train", str(files["train"]), "--model", str(model), *SMALL]
    status, err = _interrupt_cli_in(*where, argv)
    assert status == 3, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert f"no model was saved; {model} is unchanged" in err
    assert model.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.trch"]  # no temporary file left


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


def test_recommend_exclude_seen_prints_no_warning(files, tmp_path):
    # In a process of its own: torch warns of a read-only array once per process.
    cmd = [sys.executable, "-m", "gru4rec", "recommend", str(files["test"]), "--exclude-seen"]
    cmd += ["--model", str(files["model"]), "--out", str(tmp_path / "recs.csv"), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


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
    ("times", "items", "message"),
    [
        ([1, 2, 3, 4, 5, 6], "ababcd", "no test session"),  # the test session's items are new
        ([0] * 6, "abacbc", "same time"),
    ],
)
def test_demo_on_a_file_too_small_to_split_says_so(tmp_path, capsys, times, items, message):
    path = tmp_path / "tiny.csv"
    pd.DataFrame(
        {"session_id": [1, 1, 2, 2, 3, 3], "item_id": list(items), "timestamp": times}
    ).to_csv(path, index=False)
    assert main(["demo", str(path), "--max-epochs", "1", "--quiet"]) == 2
    assert message in _one_line_error(capsys)


TINY = ["--hidden-size", "8", "--num-negatives", "4", "--batch-size", "4", "--max-epochs", "1"]


@pytest.mark.parametrize(("sessions", "items"), [(200, 50), (100, 1000), (150, 1000), (350, 1000)])
def test_demo_runs_on_its_own_data_of_any_size(capsys, sessions, items):
    # A long generated session can outlast the later session starts by more than the test
    # share of the whole span: the share is measured over the session starts.
    argv = ["demo", "--sessions", str(sessions), "--items", str(items), *TINY, "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "GRU4Rec" in capsys.readouterr().out


def test_demo_on_few_generated_sessions_widens_the_test_set_or_asks_for_more(capsys):
    argv = ["demo", "--items", "50", *TINY, "--quiet", "--seed", "0", "--sessions"]
    assert main([*argv, "9"]) == 0  # the last tenth holds no session that can be tested
    assert "the test set is the last" in capsys.readouterr().err
    assert main([*argv, "1"]) == 2
    assert "use more --sessions" in _one_line_error(capsys)


def test_demo_on_sessions_that_all_start_at_the_same_time_suggests_time_col_none(tmp_path, capsys):
    # User histories keyed by position: every session starts at 0, whatever the test share.
    rng = np.random.default_rng(0)
    path = tmp_path / "histories.csv"
    pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(150), 4),
            "item_id": rng.integers(0, 40, 600),
            "position": np.tile(np.arange(4), 150),
        }
    ).to_csv(path, index=False)
    argv = ["demo", str(path), "--session-col", "user_id", *TINY, "--quiet"]
    assert main([*argv, "--time-col", "position"]) == 2
    line = _one_line_error(capsys)
    assert "start at the same time" in line and "--time-col none" in line
    assert "--test-share" not in line
    assert main([*argv, "--time-col", "none"]) == 0


@pytest.mark.parametrize("share", ["0", "1", "-0.5"])
def test_demo_test_share_outside_0_1_is_an_error(capsys, share):
    assert main(["demo", "--test-share", share, "--quiet"]) == 2
    assert "--test-share" in _one_line_error(capsys)


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


# -- reading ids for a saved model, and files it cannot score -------------------------------------


@pytest.fixture(scope="module")
def int_model(tmp_path_factory) -> dict[str, Path]:
    """histories.csv (user_id,item_id,position; int item ids 0..39) and a model fitted on it."""
    root = tmp_path_factory.mktemp("ints")
    rng = np.random.default_rng(0)
    histories = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(150), 4),
            "item_id": rng.integers(0, 40, 600),
            "position": np.tile(np.arange(4), 150),
        }
    )
    paths = {"root": root, "histories": root / "histories.csv", "model": root / "m.trch"}
    histories.to_csv(paths["histories"], index=False)
    args = ["train", str(paths["histories"]), "--model", str(paths["model"]), *TINY, "--quiet"]
    assert main([*args, *HISTORY_COLUMNS]) == 0
    return paths


HISTORY_COLUMNS = ["--session-col", "user_id", "--time-col", "position"]


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_recommend_and_evaluate_drop_one_new_item_of_an_int_id_file(int_model, tmp_path, capsys):
    # One non-numeric id makes the file's column strings; the numbers must still match.
    path = _write(
        tmp_path / "new.csv", "user_id,item_id,position\n1,3,0\n1,4,1\n2,5,0\n2,NEW-ITEM,1\n"
    )
    model = ["--model", str(int_model["model"]), *HISTORY_COLUMNS, "--quiet"]
    assert main(["recommend", path, *model, "-k", "2"]) == 0
    captured = capsys.readouterr()
    recs = pd.read_csv(io.StringIO(captured.out))
    assert recs["user_id"].tolist() == [1, 1, 2, 2]
    assert "dropped 1 of 4 events whose item is unknown to the model" in captured.err
    assert main(["evaluate", path, *model, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == 1  # 3 -> 4


def test_a_model_of_string_ids_reads_an_all_number_file_as_strings(tmp_path, capsys):
    # Fitted on ids that look like numbers but are strings, as a file with one other id gives.
    df = make_synthetic_sessions(n_sessions=100, n_items=30, seed=1)
    df["item_id"] = df["item_id"].astype(str)
    model = tmp_path / "str.trch"
    GRU4RecNegSampling(hidden_size=8, num_negatives=4, max_epochs=1, seed=0).fit(df).save(model)
    path = tmp_path / "numbers.csv"
    df.head(12).to_csv(path, index=False)
    assert main(["recommend", str(path), "--model", str(model), "-k", "3", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    recs = pd.read_csv(io.StringIO(captured.out), dtype={"item_id": str})
    assert set(recs["session_id"]) == set(df.head(12)["session_id"])
    assert main(["evaluate", str(path), "--model", str(model), "--quiet", "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["predictions"]
        == 12 - df.head(12)["session_id"].nunique()
    )


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        (np.array([1.0, 2.5, 4.0, 7.0]), "1,2.5,4\n"),  # float ids: 1 and 4 match 1.0 and 4.0
        (np.array([1, 2, 4, 7]), "0001,2.0,4\n"),  # int ids: the same numbers
    ],
)
def test_numeric_model_ids_match_the_same_numbers_however_spelled(tmp_path, capsys, ids, text):
    df = pd.DataFrame(
        {"session_id": np.repeat(np.arange(20), 4), "item_id": np.tile(ids, 20)}
    ).assign(timestamp=np.arange(80))
    model = tmp_path / "m.trch"
    GRU4RecNegSampling(hidden_size=8, num_negatives=2, max_epochs=1, seed=0).fit(df).save(model)
    items = text.strip().split(",")
    rows = "".join(f"s,{item},{t}\n" for t, item in enumerate(items))
    path = _write(tmp_path / "s.csv", "session_id,item_id,timestamp\n" + rows)
    assert main(["evaluate", path, "--model", str(model), "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["predictions"] == 2 and "warning" not in captured.err


def test_recommend_of_sessions_with_no_known_item_follows_the_python_rule(
    int_model, tmp_path, capsys
):
    """One rule for both: a session with no known item is recommended from the empty state,
    as ``recommend`` in Python does, with a warning; rows come in the file's session order."""
    text = "user_id,item_id,position\n7,998,0\n1,3,0\n1,4,1\n2,999,0\n2,997,1\n"
    path = _write(tmp_path / "cold.csv", text)
    argv = ["recommend", path, "--model", str(int_model["model"]), *HISTORY_COLUMNS, "--quiet"]
    assert main([*argv, "-k", "3"]) == 0
    captured = capsys.readouterr()
    recs = pd.read_csv(io.StringIO(captured.out))
    assert recs["user_id"].tolist() == [7, 7, 7, 1, 1, 1, 2, 2, 2]
    assert recs["rank"].tolist() == [1, 2, 3] * 3
    assert "2 of 3 session(s) have no item known to the model" in captured.err
    assert "empty state" in captured.err
    est = GRU4RecNegSampling().load(int_model["model"])
    with pytest.warns(UserWarning, match="unknown"):
        ids, scores = est.recommend([[998], [3, 4], [999, 997]], k=3)
    for row, user in enumerate([7, 1, 2]):
        mine = recs[recs["user_id"] == user]
        assert mine["item_id"].tolist() == ids[row].tolist()
        np.testing.assert_allclose(mine["score"], scores[row], rtol=1e-5)
    # No session with a known item at all.
    _write(tmp_path / "cold.csv", "user_id,item_id,position\n1,998,0\n2,999,0\n2,997,1\n")
    out = tmp_path / "recs.csv"
    assert main([*argv, "--out", str(out), "-k", "2"]) == 0
    recs = pd.read_csv(out)
    assert list(recs.columns) == ["user_id", "rank", "item_id", "score"]
    assert recs["user_id"].tolist() == [1, 1, 2, 2]
    assert recs["item_id"].tolist() == ids[0][:2].tolist() * 2


def test_evaluate_with_no_known_item_says_so(int_model, tmp_path, capsys):
    path = _write(tmp_path / "cold.csv", "user_id,item_id,position\n1,998,0\n1,999,1\n")
    argv = ["evaluate", path, "--model", str(int_model["model"]), *HISTORY_COLUMNS, "--quiet"]
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert "cold.csv: none of its 2 item ids is known to the model" in line
    assert "user" not in line and "type" not in line


def test_evaluate_counts_only_the_sessions_it_scores(int_model, tmp_path, capsys):
    # Sessions 1 and 2 have two events; 3 has one, and 4 two of which one is unknown.
    path = _write(
        tmp_path / "s.csv",
        "user_id,item_id,position\n1,3,0\n1,4,1\n2,5,0\n2,6,1\n3,7,0\n4,8,0\n4,999,1\n",
    )
    argv = ["evaluate", path, "--model", str(int_model["model"]), *HISTORY_COLUMNS, "--quiet"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["predictions"], result["sessions"], result["sessions_too_short"]) == (2, 2, 2)
    assert main(argv) == 0
    assert "2 predictions (every position) in 2 sessions (2 more" in capsys.readouterr().out


def test_errors_name_the_file_not_the_python_argument(int_model, tmp_path, capsys):
    singles = _write(tmp_path / "singles.csv", "user_id,item_id,position\n1,3,0\n2,4,0\n")
    model = str(tmp_path / "e.trch")
    assert main(["train", singles, "--model", model, *HISTORY_COLUMNS, *TINY, "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"gru4rec: error: {singles} has no session with 2 or more events")
    empty = _write(tmp_path / "empty.csv", "user_id,item_id,position\n")
    argv = ["recommend", empty, "--model", str(int_model["model"]), *HISTORY_COLUMNS]
    assert main(argv) == 2
    assert _one_line_error(capsys) == f"gru4rec: error: {empty} holds no events (only a header)"
    missing = str(tmp_path / "missing.csv")
    assert main(["recommend", missing, "--model", str(int_model["model"])]) == 2
    assert _one_line_error(capsys) == f"gru4rec: error: {missing}: no such file"
    semi = _write(tmp_path / "semi.csv", "session_id;item_id;timestamp\n1;2;3\n")
    assert main(["recommend", semi, "--model", str(int_model["model"])]) == 2
    line = _one_line_error(capsys)
    assert "(pass --sep ';')" in line and "sep=" not in line


def test_validation_file_of_no_known_item_or_no_pair_says_so(int_model, tmp_path, capsys):
    argv = ["train", str(int_model["histories"]), "--model", str(tmp_path / "v.trch")]
    argv += [*HISTORY_COLUMNS, *TINY, "--quiet", "--validation"]
    cold = _write(tmp_path / "cold.csv", "user_id,item_id,position\n1,998,0\n1,999,1\n")
    assert main([*argv, cold]) == 2
    assert "cold.csv: none of its 2 item ids is known to the training data" in _one_line_error(
        capsys
    )
    singles = _write(tmp_path / "singles.csv", "user_id,item_id,position\n1,3,0\n2,4,0\n")
    assert main([*argv, singles]) == 2
    line = _one_line_error(capsys)
    assert "singles.csv: no session has 2 or more events" in line and "validation_out" not in line


def test_demo_with_a_test_set_of_few_predictions_warns(capsys):
    argv = ["demo", "--sessions", "200", "--items", "50", "--test-share", "0.05", *TINY]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert re.search(r"the test set gives only \d+ predictions, too few", err), err
    assert main(["demo", "--sessions", "3000", "--items", "100", *TINY]) == 0
    assert "too few" not in capsys.readouterr().err
