"""Tests of gru4rec.checkpoint: round trips, atomic writes, refusal of bad files."""

from __future__ import annotations

import collections
import enum
import os
import pathlib

import numpy as np
import pytest
import torch

from gru4rec import checkpoint
from gru4rec.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    check_writable,
    load_checkpoint,
    save_checkpoint,
)


def _state_dict():
    gen = torch.Generator().manual_seed(0)
    return {
        "embedding.weight": torch.randn(5, 3, generator=gen, requires_grad=True),
        "gru.bias": torch.randn(9, generator=gen, dtype=torch.float64),
        "counts": torch.arange(4, dtype=torch.int64),
    }


METADATA = {
    "class": "GRU4RecNegSampling",
    "params": {"hidden_size": 100, "learning_rate": 0.03, "seed": None, "keep_last": False},
    "item_ids": [10, 20, 30],
    "item_ids_str": ["a", "b", "ünïcode"],
    "shape": (7, 5),
    "best": {"value": 0.4123, "epoch": 3},
}


class _Level(enum.IntEnum):
    HIGH = 2


class _Name(str):
    pass


class _Custom:
    """A class that needs arbitrary unpickling to load."""

    def __init__(self):
        self.x = 1


def _write_marker(path):
    pathlib.Path(path).write_text("executed")
    return path


class _Exploit:
    """Unpickling this would call _write_marker: weights_only loading must not."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_write_marker, (self.path,))


def test_round_trip(tmp_path):
    sd = _state_dict()
    path = save_checkpoint(tmp_path / "model.trch", sd, METADATA)
    assert path == tmp_path / "model.trch" and path.is_file()
    loaded_sd, loaded_md = load_checkpoint(path)
    assert set(loaded_sd) == set(sd)
    for key, tensor in sd.items():
        assert torch.equal(loaded_sd[key], tensor.detach())
        assert loaded_sd[key].dtype == tensor.dtype
        assert loaded_sd[key].device.type == "cpu"
        assert not loaded_sd[key].requires_grad
    assert loaded_md == METADATA
    assert loaded_md["item_ids"] == [10, 20, 30]
    assert loaded_md["item_ids_str"] == ["a", "b", "ünïcode"]
    assert loaded_md["shape"] == (7, 5)


def test_string_path_and_parent_directories_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "m.trch"
    assert save_checkpoint(str(target), {}, {}) == target
    assert load_checkpoint(str(target)) == ({}, {})


def test_numpy_and_tensor_metadata_are_converted(tmp_path):
    md = {
        "n_items": np.int64(3),
        "lr": np.float32(0.5),
        "flag": np.bool_(True),
        "ids": np.array([5, 6, 7]),
        "raw": np.array(["x", "y"]),
        "mixed": np.array([1, "two"], dtype=object),
        "grid": np.arange(4).reshape(2, 2),
        "ordered": collections.OrderedDict(a=1),
        "tensor": torch.tensor([1.0, 2.0]),
        "enum": _Level.HIGH,
        "str_subclass": _Name("item"),
    }
    path = save_checkpoint(tmp_path / "m.trch", {}, md)
    _, loaded = load_checkpoint(path)
    assert loaded["n_items"] == 3 and type(loaded["n_items"]) is int
    assert loaded["lr"] == 0.5 and type(loaded["lr"]) is float
    assert loaded["flag"] is True
    assert loaded["ids"] == [5, 6, 7] and all(type(i) is int for i in loaded["ids"])
    assert loaded["raw"] == ["x", "y"] and all(type(s) is str for s in loaded["raw"])
    assert loaded["mixed"] == [1, "two"]
    assert loaded["grid"] == [[0, 1], [2, 3]]
    assert loaded["ordered"] == {"a": 1} and type(loaded["ordered"]) is dict
    assert torch.equal(loaded["tensor"], torch.tensor([1.0, 2.0]))
    # Subclasses of builtins would pickle by class and be refused on loading: stored as builtins.
    assert loaded["enum"] == 2 and type(loaded["enum"]) is int
    assert loaded["str_subclass"] == "item" and type(loaded["str_subclass"]) is str


@pytest.mark.parametrize(
    "bad",
    [
        {"x": _Custom()},
        {"x": {1: "int key"}},
        {"x": b"bytes"},
        {"x": {1, 2}},
        {"x": np.array([1 + 2j])},
        {"x": [object()]},
    ],
)
def test_non_plain_metadata_is_rejected_before_writing(tmp_path, bad):
    with pytest.raises(TypeError, match="metadata"):
        save_checkpoint(tmp_path / "m.trch", {}, bad)
    assert list(tmp_path.iterdir()) == []


def test_bad_state_dict_is_rejected(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "m.trch", {"w": np.zeros(2)}, {})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "m.trch", {1: torch.zeros(2)}, {})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "m.trch", {}, [("a", 1)])


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "m.trch"
    save_checkpoint(path, {"w": torch.zeros(2)}, {"v": 1})
    save_checkpoint(path, {"w": torch.ones(2)}, {"v": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["m.trch"]
    sd, md = load_checkpoint(path)
    assert torch.equal(sd["w"], torch.ones(2)) and md == {"v": 2}


def test_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "m.trch"
    save_checkpoint(path, {"w": torch.zeros(2)}, {"v": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.ones(2)}, {"v": 2})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["m.trch"]
    assert load_checkpoint(path)[1] == {"v": 1}


def test_failed_rename_removes_the_temp_file(tmp_path, monkeypatch):
    def boom(src, dst):
        raise PermissionError("no")

    monkeypatch.setattr(checkpoint.os, "replace", boom)
    with pytest.raises(PermissionError):
        save_checkpoint(tmp_path / "m.trch", {}, {})
    assert list(tmp_path.iterdir()) == []


def test_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.trch", {}, {})
    finally:
        os.umask(old)
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o644


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.trch")


def test_truncated_file_raises_checkpoint_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.trch", _state_dict(), METADATA)
    data = path.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match="m.trch"):
            load_checkpoint(path)


def test_random_bytes_raise_checkpoint_error(tmp_path):
    path = tmp_path / "random.trch"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="random.trch"):
        load_checkpoint(path)
    text = tmp_path / "text.trch"
    text.write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError, match="text.trch"):
        load_checkpoint(text)


def test_foreign_torch_files_raise_checkpoint_error(tmp_path):
    cases = {
        "state_dict_only.pt": _state_dict(),
        "other_format.pt": {"format": "something-else", "version": 1, "state_dict": {}},
        "no_format.pt": {"version": 1, "state_dict": {}, "metadata": {}},
        "tensor.pt": torch.zeros(3),
        "list.pt": [1, 2, 3],
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match="not a gru4rec checkpoint"):
            load_checkpoint(tmp_path / name)


def test_newer_or_invalid_version_raises_checkpoint_error(tmp_path):
    path = tmp_path / "future.trch"
    payload = {"format": FORMAT, "version": FORMAT_VERSION + 1, "state_dict": {}, "metadata": {}}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)
    for version in (0, "1", None, True):
        torch.save({**payload, "version": version}, path)
        with pytest.raises(CheckpointError, match="version"):
            load_checkpoint(path)


def test_malformed_payload_raises_checkpoint_error(tmp_path):
    path = tmp_path / "m.trch"
    base = {"format": FORMAT, "version": FORMAT_VERSION, "state_dict": {}, "metadata": {}}
    for bad in ({"state_dict": {"w": 1}}, {"state_dict": [1]}, {"metadata": [1]}):
        torch.save({**base, **bad}, path)
        with pytest.raises(CheckpointError, match="malformed"):
            load_checkpoint(path)


def test_pickle_payload_is_refused_not_unpickled(tmp_path):
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "state_dict": {},
        "metadata": {"x": _Custom()},
    }
    path = tmp_path / "custom.trch"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="arbitrary unpickling"):
        load_checkpoint(path)


def test_code_in_a_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "exploit.trch"
    torch.save({"format": FORMAT, "version": 1, "metadata": _Exploit(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()
    # Sanity check that the payload is live: plain unpickling would have executed it.
    torch.load(path, weights_only=False)
    assert marker.read_text() == "executed"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_are_saved_on_cpu(tmp_path):
    path = save_checkpoint(tmp_path / "m.trch", {"w": torch.ones(2, device="cuda")}, {})
    sd, _ = load_checkpoint(path)
    assert sd["w"].device.type == "cpu"
    sd, _ = load_checkpoint(path, map_location="cuda")
    assert sd["w"].device.type == "cuda"


def test_map_location_is_passed_through(tmp_path):
    path = save_checkpoint(tmp_path / "m.trch", {"w": torch.ones(2)}, {})
    sd, _ = load_checkpoint(path, map_location=torch.device("meta"))
    assert sd["w"].device.type == "meta"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_check_writable_names_the_target_and_leaves_nothing_behind(tmp_path):
    with pytest.raises(OSError, match="cannot write the model to /proc/m.trch"):
        check_writable("/proc/m.trch")  # /proc takes no new files, not even from root
    check_writable(tmp_path / "new" / "deeper" / "m.trch")  # missing folders are fine
    assert list(tmp_path.iterdir()) == []
