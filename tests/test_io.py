import os
import pickle

import pandas as pd
import pytest
import torch

from lrpfn.io import ArtifactError, atomic_path, load_torch, read_parquet, save_torch, write_parquet


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "table.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_in_one_step(tmp_path):
    target = tmp_path / "t.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), target)
    write_parquet(pd.DataFrame({"a": [2]}), target)
    assert read_parquet(target).a.tolist() == [2]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_corrupt_parquet_names_the_file(tmp_path):
    path = tmp_path / "broken.parquet"
    write_parquet(pd.DataFrame({"a": range(100)}), path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ArtifactError, match=r"broken\.parquet.*not a readable parquet"):
        read_parquet(path)
    with pytest.raises(ArtifactError, match=r"missing\.parquet: file not found"):
        read_parquet(tmp_path / "missing.parquet")


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), path)
    with pytest.raises(ArtifactError, match=r"t.parquet: missing columns \['b'\]"):
        read_parquet(path, columns=["a", "b"])


def test_truncated_torch_file_names_the_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_torch({"w": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"ckpt\.pt"):
        load_torch(path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickled_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model_state": _RunsCode()}, f)
    with pytest.raises(ArtifactError, match=r"evil\.pt.*weights-only"):
        load_torch(path)
    assert not (tmp_path / "pwned").exists()
