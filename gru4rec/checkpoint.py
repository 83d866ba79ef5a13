"""Checkpoint files: a state_dict plus plain-Python metadata, written atomically, loaded safely.

A checkpoint is one ``torch.save`` file holding::

    {"format": FORMAT, "version": FORMAT_VERSION, "state_dict": {...}, "metadata": {...}}

Everything in it is a tensor or plain Python data, so it loads with
``torch.load(weights_only=True)``: a file that would need arbitrary unpickling is refused rather
than executed. Tensors are stored on the CPU, so a model trained on CUDA loads on a machine
without one.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "check_writable",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "gru4rec-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file is not a checkpoint this version of gru4rec can load."""


def _plain(value: Any, where: str) -> Any:
    """Recursively convert ``value`` to data that ``torch.load(weights_only=True)`` accepts.

    numpy scalars become Python scalars and numpy arrays become (nested) lists, since raw item ids
    may be strings as well as ints; tensors are detached and moved to the CPU; dict and Mapping
    subclasses become dicts.
    """
    if isinstance(value, np.generic):
        value = value.item()  # np.float64 subclasses float but would pickle as a numpy object
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO":
            raise TypeError(f"metadata{where}: unsupported array dtype {value.dtype}")
        return _plain(value.tolist(), where)
    if value is None:
        return None
    # Exact builtins only: subclasses (numpy scalars, enums, str subclasses) would be pickled by
    # class and refused by weights_only loading.
    for plain_type in (bool, int, float, str):
        if isinstance(value, plain_type):
            return plain_type(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, list | tuple):
        converted = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if isinstance(value, tuple) else converted
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise TypeError(f"metadata{where}: keys must be str, got {key!r}")
            out[key] = _plain(v, f"{where}[{key!r}]")
        return out
    raise TypeError(
        f"metadata{where}: {type(value).__name__} is not plain data (None, bool, int, float, str, "
        "list, tuple, dict with str keys, numpy scalars/arrays or tensors)"
    )


def _fsync_dir(directory: pathlib.Path) -> None:
    # Make the rename itself durable; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _crc32_on() -> Iterator[None]:
    """Checksums in the file even where they were turned off (torch >= 2.5 can): loading
    verifies them."""
    get = getattr(torch.serialization, "get_crc32_options", None)
    if get is None or get():
        yield
        return
    torch.serialization.set_crc32_options(True)
    try:
        yield
    finally:
        torch.serialization.set_crc32_options(False)


def save_checkpoint(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
) -> pathlib.Path:
    """Write a checkpoint atomically.

    The payload is written to a hidden temporary file in the target directory, flushed to disk,
    then renamed over ``path`` with ``os.replace``: readers see either the old file or the complete
    new one, never a partial write. The temporary file is removed when anything fails. Missing
    parent directories are created.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    state_dict : mapping of str to Tensor
        Model weights; detached and moved to the CPU.
    metadata : mapping of str to plain data
        Anything needed to rebuild the model (parameters, item ids, ...). Allowed: None, bool,
        int, float, str, lists, tuples and dicts with str keys, nested; numpy scalars are
        converted to Python scalars, numpy arrays to (nested) lists, tensors are moved to the CPU.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If ``state_dict`` holds a non-tensor or a non-str key, or ``metadata`` holds a value that
        is not plain data (the message says where).
    """
    path = pathlib.Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict must map str to Tensor, got {key!r}: {type(tensor)}")
        tensors[key] = tensor.detach().cpu()
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "state_dict": tensors,
        "metadata": _plain(metadata, ""),
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    # os.open with 0o666 honours the umask, unlike mkstemp's 0o600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh, _crc32_on():
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _looks_pickled(fh: Any) -> bool:
    fh.seek(0)
    return fh.read(1) == b"\x80"  # the PROTO opcode that starts pickles of protocol >= 2


def _check_crcs(fh: Any, path: pathlib.Path) -> None:
    """Raise CheckpointError when an entry's bytes do not match the checksum written with
    them: damage that torch.load would otherwise load as wrong weights."""
    try:
        with zipfile.ZipFile(fh) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt archive): {exc}"
        ) from exc
    if bad is not None:
        raise CheckpointError(
            f"{path}: corrupt: the bytes of its entry {bad!r} do not match the checksum "
            "written with them (the file was damaged after it was saved)"
        )


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise OSError, naming ``path``, when :func:`save_checkpoint` could not write it:
    checked before a long training, not after it. Creates no missing folder."""
    path = pathlib.Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # save_checkpoint creates the missing ones below it
    probe = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot write the model to {os.fspath(path)}: {exc.strerror}"
        ) from exc


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device | None = "cpu",
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Loads with ``torch.load(weights_only=True)``, so only tensors and plain Python data are ever
    reconstructed; nothing in the file can run code.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.
    map_location : str, torch.device or None, default="cpu"
        Where to put the tensors (see ``torch.load``).

    Returns
    -------
    state_dict : dict of str to Tensor
    metadata : dict

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        If the file is truncated, corrupt or not a torch file; holds objects that need arbitrary
        unpickling; is a torch file of another kind; or was written by a newer format version.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as fh:  # missing file: FileNotFoundError, as for any open()
        if fh.read(4) != b"PK\x03\x04":  # torch's files are zip archives
            raise CheckpointError(
                f"{path}: not a gru4rec model file"
                + (
                    " (it holds a pickle: a pickled estimator loads with pickle.load)"
                    if _looks_pickled(fh)
                    else " (truncated, corrupt or not a torch file)"
                )
            )
        _check_crcs(fh, path)
        fh.seek(0)
        try:
            with warnings.catch_warnings():
                # torch's advice on unpickling does not apply: nothing here is unpickled.
                warnings.simplefilter("ignore")
                payload = torch.load(fh, map_location=map_location, weights_only=True)
        except Exception as exc:
            if "weights_only" in str(exc) or "Weights only load failed" in str(exc):
                raise CheckpointError(
                    f"{path}: not a gru4rec model file: it holds Python objects that only "
                    "arbitrary unpickling could rebuild, which gru4rec never does (a "
                    "gru4rec file holds tensors and plain data)"
                ) from exc
            raise CheckpointError(
                f"{path}: not a readable checkpoint (truncated, corrupt or not a torch file): "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gru4rec checkpoint (format key is not {FORMAT!r})")
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: invalid checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this gru4rec supports "
            f"({FORMAT_VERSION}); upgrade gru4rec to load it"
        )
    state_dict = payload.get("state_dict")
    metadata = payload.get("metadata")
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise CheckpointError(f"{path}: malformed checkpoint: state_dict is not str -> Tensor")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: malformed checkpoint: metadata is not a dict")
    return state_dict, metadata
