"""The config layer: torch-free, one set of defaults, science apart from execution."""

import copy
import re
import subprocess
import sys
from dataclasses import fields, replace

import pytest
import yaml
from snakemake.utils import update_config, validate

from lrpfn import layout
from lrpfn.config import (
    SCHEMA,
    ConfigError,
    ExecutionConfig,
    ModelConfig,
    PriorConfig,
    RunConfig,
    TrainConfig,
    check_experiment,
    complete,
    execution_config,
    prepare,
    resampled_steps,
    run_config,
    runs,
    task_prior,
)

from helpers import REPO, TEST_CONFIG


def filled(config: dict) -> dict:
    """The config as the Snakefile sees it: schema defaults and checks, then the derived defaults."""
    return prepare(copy.deepcopy(config))


@pytest.fixture
def default() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_the_config_layer_imports_no_torch():
    check = "import lrpfn.config, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", check], check=True)


def test_unset_keys_take_the_schemas_defaults_and_so_do_the_dataclasses(default):
    # Strip every key that has a schema default: prepare fills them in, and the run config
    # built from that equals the dataclasses' own defaults.
    stripped = copy.deepcopy(default)
    for key in ("decay", "weight_decay", "save_every", "device", "threads"):
        stripped["train"].pop(key, None)
    config = filled(stripped)
    assert config["train"]["device"] == "auto" == ExecutionConfig().device
    # The keys without a schema default (max_length, where the config sets it).
    required = {
        f.name: config["train"][f.name]
        for f in fields(TrainConfig)
        if f.name in ("steps", "batch_size", "lr", "warmup", "checkpoints", "max_length") and f.name in config["train"]
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


def test_extra_seeds_train_only_at_their_pool_size(default):
    default["extra_seeds"] = {"inf": [1, 2]}
    config = filled(default)
    assert runs(config) == [(m, 0) for m in ("1", "4", "16", "64", "256", "1024")] + [("inf", s) for s in (0, 1, 2)]
    files = layout.outputs(config)
    assert "runs/Minf_seed2/step_0014000.pt" in files and "runs/M16_seed1/step_0014000.pt" not in files
    assert run_config(config, "inf", 2).seed == 2


@pytest.mark.parametrize(
    "extra, message",
    [({"32": [1]}, "extra_seeds.32: pool size 32 is not in pool_sizes"), ({"inf": [0, 1]}, r"seeds \[0\] are already")],
)
def test_extra_seeds_name_a_pool_size_and_new_seeds(default, extra, message):
    default["extra_seeds"] = extra
    with pytest.raises(ConfigError, match=message):
        filled(default)


def test_resampled_steps_are_the_last_checkpoints(default):
    default["train"].update(steps=1000, checkpoints=6)
    config = filled(default)
    assert resampled_steps(config) == [125, 250, 500, 1000]  # 1000 / 2^j, the last 4 of 6
    default["resample"]["checkpoints"] = 2
    assert resampled_steps(filled(default)) == [500, 1000]


# --- one validation path: prepare ----------------------------------------------------------------


def snakemake_filled(config: dict) -> dict:
    """The config as the Snakefile used to see it: Snakemake's schema validation (which fills
    the schema's defaults), then the derived defaults and the checks across keys."""
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    complete(config)
    check_experiment(config)
    return config


def merged_test_config(default: dict) -> dict:
    """configs/test.yaml merged over config.yaml, as the workflow tests' Snakemake runs see it."""
    update_config(default, copy.deepcopy(TEST_CONFIG))
    return default


@pytest.mark.parametrize("which", ["default", "test merged over default", "test alone"])
def test_prepare_fills_the_schema_defaults_as_snakemakes_validation_did(default, which):
    config = {
        "default": default,
        "test merged over default": merged_test_config(copy.deepcopy(default)),
        "test alone": copy.deepcopy(TEST_CONFIG),
    }[which]
    assert filled(config) == snakemake_filled(config)
    # ... also where every key with a schema default is unset.
    stripped = copy.deepcopy(config)
    for key in ("decay", "weight_decay", "save_every", "device", "threads"):
        stripped["train"].pop(key, None)
    assert filled(stripped) == snakemake_filled(stripped)
    assert filled(stripped)["train"]["device"] == "auto"


def test_prepare_fills_in_place_and_returns_the_config(default):
    config = copy.deepcopy(default)
    assert prepare(config) is config
    assert config == snakemake_filled(default)


@pytest.mark.parametrize(
    ("prior", "key"),
    [
        ({"kind": "laplace"}, "prior.kind"),
        ({"kind": "spike_slab", "p_zero": 1, "slab_var": 1}, "prior.p_zero"),
        ({"kind": "spike_slab", "p_zero": 0.5, "slab_var": 0}, "prior.slab_var"),
    ],
)
def test_check_experiment_alone_refuses_what_the_schema_refuses(default, prior, key):
    # A complete config, valid but for its prior, checked without any schema validation before.
    config = filled(default)
    config["prior"] = prior
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}: "):
        check_experiment(config)
    # ... and prepare refuses it the same way.
    config = copy.deepcopy(default)
    config["prior"] = prior
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}: "):
        prepare(config)


def test_check_experiment_names_an_unknown_prior_kind(default):
    config = filled(default)
    config["prior"] = {"kind": "laplace"}
    with pytest.raises(ConfigError, match=r"^prior\.kind: unknown prior kind 'laplace'"):
        check_experiment(config)


def test_check_experiment_accepts_a_valid_prior(default):
    config = filled(default)
    config["prior"] = {"kind": "spike_slab", "p_zero": 0.5, "slab_var": 2.0}
    check_experiment(config)
    assert task_prior(config) == PriorConfig("spike_slab", (("p_zero", 0.5), ("slab_var", 2.0)))


@pytest.mark.parametrize("device", ["cuda:1", "cuda:0", "cuda", "cpu", "auto"])
def test_a_numbered_cuda_device_passes_the_schema(default, device):
    before = execution_config(filled(default))
    default["train"]["device"] = device
    config = filled(default)
    assert execution_config(config) == replace(before, device=device)
    assert ExecutionConfig(device=device).device == device


@pytest.mark.parametrize("device", ["mps", "cuda:", "cuda:x", "cuda1", "cuda:0:1"])
def test_the_schema_refuses_other_devices(default, device):
    default["train"]["device"] = device
    with pytest.raises(ConfigError, match=r"^train\.device: "):
        filled(default)


# --- the task prior as a typed config ------------------------------------------------------------

PRIORS = [
    {"kind": "gaussian"},
    {"kind": "spike_slab", "p_zero": 0.5, "slab_var": 2.0},
    {"kind": "mixture", "n_components": 3, "separation": 2.0, "cluster_var": 0.25, "seed": 7},
]


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: p["kind"])
def test_prior_config_round_trips_through_its_dict(prior):
    config = PriorConfig.from_dict(prior)
    assert config.kind == prior["kind"]
    assert config.to_dict() == prior
    assert PriorConfig.from_dict(config.to_dict()) == config
    assert config.parameters == {k: v for k, v in prior.items() if k != "kind"}


def test_prior_config_takes_its_parameters_in_the_schemas_order():
    # The same prior written in another key order is the same config (and the same hash).
    written = {"slab_var": 2.0, "kind": "spike_slab", "p_zero": 0.5}
    assert PriorConfig.from_dict(written) == PriorConfig.from_dict(PRIORS[1])
    assert list(PriorConfig.from_dict(written).to_dict()) == ["kind", "p_zero", "slab_var"]


def test_prior_config_is_hashable():
    a, b = (PriorConfig.from_dict(dict(PRIORS[1])) for _ in range(2))
    assert a is not b and a == b and hash(a) == hash(b)
    by_config = {PriorConfig.from_dict(p): p["kind"] for p in PRIORS}
    assert len(by_config) == len(PRIORS)
    assert by_config[b] == "spike_slab"
    assert {PriorConfig(), PriorConfig.from_dict(None), PriorConfig.from_dict({"kind": "gaussian"})} == {PriorConfig()}


def test_the_default_prior_is_gaussian_and_leaves_a_runs_identity_as_it_was(default):
    assert PriorConfig.from_dict(None) == PriorConfig() == task_prior(default)
    assert PriorConfig().is_default
    config = filled(default)
    run = run_config(config, "16", 0)
    assert run.prior == PriorConfig()
    assert "prior" not in run.to_dict()
    assert RunConfig.from_dict(run.to_dict()) == run


@pytest.mark.parametrize("prior", PRIORS[1:], ids=lambda p: p["kind"])
def test_a_runs_prior_is_part_of_its_identity_and_round_trips(default, prior):
    base = run_config(filled(default), "16", 0)
    default["prior"] = copy.deepcopy(prior)
    run = run_config(filled(default), "16", 0)
    assert run.prior == PriorConfig.from_dict(prior)
    assert not run.prior.is_default
    assert run.to_dict()["prior"] == prior
    assert run.to_dict() != base.to_dict()
    assert RunConfig.from_dict(run.to_dict()) == run


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: TrainConfig(steps=10, batch_size=8, lr=1e-3, warmup=0.0, checkpoints=1), "train.checkpoints"),
        (lambda: TrainConfig(steps=10, batch_size=8, lr=0.0, warmup=0.0, checkpoints=2), "train.lr"),
        (lambda: ModelConfig(dim=2, n_buckets=1, d_model=8, n_layers=1, n_heads=1, d_mlp=8), "model.n_buckets"),
        (lambda: ModelConfig(dim=0, n_buckets=8, d_model=8, n_layers=1, n_heads=1, d_mlp=8), "dim"),
        (lambda: ExecutionConfig(device="tpu"), "train.device"),
        (lambda: ExecutionConfig(threads=0), "train.threads"),
    ],
    ids=["one checkpoint", "zero lr", "one bucket", "dim 0", "device tpu", "no threads"],
)
def test_the_typed_configs_hold_the_schemas_ranges(build, key):
    """A typed config built directly refuses what the schema refuses, naming the same key."""
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}:"):
        build()
    assert ExecutionConfig(device="cuda:1").device == "cuda:1"


def test_a_max_length_equal_to_the_context_or_absent_leaves_a_runs_identity_as_it_was(default):
    default["train"].pop("max_length", None)
    base = run_config(filled(default), "16", 0)
    assert "max_length" not in base.to_dict()["train"] and "length_mix" not in base.to_dict()["train"]
    assert base.max_length == default["context_length"]
    same = copy.deepcopy(default)
    same["train"]["max_length"] = default["context_length"]
    assert run_config(filled(same), "16", 0) == base
    longer = copy.deepcopy(default)
    longer["train"]["max_length"] = 64
    run = run_config(filled(longer), "16", 0)
    assert run.to_dict()["train"]["max_length"] == 64 and run.to_dict()["train"]["length_mix"] == "cycle"
    assert run.max_length == 64 and RunConfig.from_dict(run.to_dict()) == run
    assert filled(longer)["eval"]["extrapolate_to"] == 128  # twice the longest trained length


def test_the_length_mix_keeps_the_tokens_of_every_step():
    train = TrainConfig(steps=10, batch_size=64, lr=1e-3, warmup=0.0, checkpoints=2, max_length=64)
    assert train.lengths(16) == [16, 32, 64]
    shapes = [train.batch_shape(step, 16) for step in range(1, 7)]
    assert shapes == [(64, 16), (32, 32), (16, 64)] * 2
    longest = replace(train, length_mix="longest")
    assert longest.lengths(16) == [64] and longest.batch_shape(5, 16) == (16, 64)
    assert TrainConfig(steps=10, batch_size=64, lr=1e-3, warmup=0.0, checkpoints=2).batch_shape(3, 16) == (64, 16)


@pytest.mark.parametrize(
    "train, message",
    [
        ({"max_length": 8}, "train.max_length: 8 is shorter than context_length=16"),
        ({"max_length": 48}, "train.max_length: 48 is not context_length=16 times a power of 2"),
        ({"max_length": 48, "length_mix": "longest"}, "train.batch_size: 64 sequences of 16 pairs do not make"),
        ({"max_length": 64, "length_mix": "all"}, "train.length_mix: 'all' is not one of"),
    ],
)
def test_bad_max_lengths_are_refused_naming_the_key(default, train, message):
    default["train"].update(train)
    with pytest.raises(ConfigError, match=re.escape(message)):
        filled(default)


def test_resampled_paths_may_reach_the_longest_trained_length(default):
    default["train"]["max_length"] = 64
    default["resample"] = default.get("resample", {}) | {"path_length": 64}
    assert filled(default)["resample"]["path_length"] == 64
    default["resample"]["path_length"] = 65
    with pytest.raises(ConfigError, match="exceed the longest trained length 64"):
        filled(default)
