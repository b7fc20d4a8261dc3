"""The config layer: torch-free, one set of defaults, science apart from execution."""

import copy
import subprocess
import sys
from dataclasses import fields

import pytest
import yaml
from snakemake.utils import validate

from lrpfn.config import (
    SCHEMA,
    ExecutionConfig,
    TrainConfig,
    complete,
    execution_config,
    resampled_steps,
    run_config,
)

from helpers import REPO


def filled(config: dict) -> dict:
    """The config as the Snakefile sees it: schema defaults, then the derived ones."""
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return complete(config)


@pytest.fixture
def default() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_the_config_layer_imports_no_torch():
    check = "import lrpfn.config, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", check], check=True)


def test_unset_keys_take_the_schemas_defaults_and_so_do_the_dataclasses(default):
    # Strip every key that has a schema default: Snakemake's validation fills them in, and the
    # run config built from that equals the dataclasses' own defaults.
    stripped = copy.deepcopy(default)
    for key in ("decay", "weight_decay", "save_every", "device", "threads"):
        stripped["train"].pop(key, None)
    config = filled(stripped)
    assert config["train"]["device"] == "auto" == ExecutionConfig().device
    required = {
        f.name: config["train"][f.name]
        for f in fields(TrainConfig)
        if f.name in ("steps", "batch_size", "lr", "warmup", "checkpoints")
    }
    assert run_config(config, "inf", 0).train == TrainConfig(**required)
    assert execution_config(config) == ExecutionConfig()


def test_execution_settings_are_no_part_of_a_runs_identity(default):
    base = run_config(filled(default), "16", 0).to_dict()
    changed = copy.deepcopy(default)
    changed["train"].update(device="cuda", threads=8, save_every=3, compile=True)
    config = filled(changed)
    assert run_config(config, "16", 0).to_dict() == base
    assert execution_config(config) == ExecutionConfig(device="cuda", threads=8, save_every=3, compile=True)
    assert not {f.name for f in fields(ExecutionConfig)} & set(base["train"])
    # ... while a science setting is.
    changed["train"]["precision"] = "bfloat16"
    assert run_config(filled(changed), "16", 0).to_dict()["train"]["precision"] == "bfloat16"


def test_overrides_change_only_their_pool_size(default):
    default["overrides"] = {16: {"lr": 0.001}}
    config = filled(default)
    assert run_config(config, "16", 0).train.lr == 0.001
    assert run_config(config, "64", 0).train.lr == default["train"]["lr"]


def test_resampled_steps_are_the_last_checkpoints(default):
    default["train"].update(steps=1000, checkpoints=6)
    config = filled(default)
    assert resampled_steps(config) == [125, 250, 500, 1000]  # 1000 / 2^j, the last 4 of 6
    default["resample"]["checkpoints"] = 2
    assert resampled_steps(filled(default)) == [500, 1000]
