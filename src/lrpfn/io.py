"""Artifact I/O: atomic writes and loads that name the file when something is wrong.

Every artifact is written to a temporary name in its destination folder and renamed into
place, so a reader (or a rerun) never sees half a file. Torch is imported only to save or load
a ``.pt`` file: the jobs that draw figures from tables never pay for it.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


class ArtifactError(RuntimeError):
    """A missing, truncated or inconsistent artifact; the message names the file."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as written:  # on disk before the rename makes it visible
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ArtifactError(f"{path}: not a readable parquet table ({err})") from err
    if columns is not None:
        missing = sorted(set(columns) - set(frame.columns))
        if missing:
            raise ArtifactError(f"{path}: missing columns {missing}")
    return frame


def save_torch(obj, path: str | os.PathLike) -> None:
    """Atomic ``torch.save``; the bytes depend only on ``obj`` (reproducible hashes)."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)  # a file object, not a name: torch would record the temporary name


def load_torch(path: str | os.PathLike, map_location="cpu"):
    """Load with ``weights_only=True``: tensors and plain containers only, never code."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except Exception as err:
        raise ArtifactError(f"{path}: cannot be loaded as a weights-only torch file ({err})") from err
