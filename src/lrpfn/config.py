"""An experiment config (``config.yaml``) as typed run configs.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks keys, types and ranges;
:func:`check_experiment` adds the checks a schema cannot express. Both run before any
job starts and name the offending key.
"""

from __future__ import annotations

import math
from dataclasses import fields

from .model import ModelConfig
from .train import RunConfig, TrainConfig


class ConfigError(ValueError):
    """An invalid experiment config; the message names the key."""


def format_pool_size(pool_size: float | int | str) -> str:
    """Pool size as it appears in file names and tables: '64' or 'inf'."""
    value = parse_pool_size(pool_size)
    return "inf" if math.isinf(value) else str(int(value))


def parse_pool_size(text: float | int | str) -> float:
    value = float(text)
    if not (math.isinf(value) or (value >= 1 and value == int(value))):
        raise ConfigError(f"pool_sizes: {text!r} is neither a positive integer nor inf")
    return value


def pool_sizes(config: dict) -> list[str]:
    """The configured pool sizes, formatted, sorted ascending (inf last)."""
    return [format_pool_size(m) for m in sorted(parse_pool_size(m) for m in config["pool_sizes"])]


def finite_pool_sizes(config: dict) -> list[str]:
    return [m for m in pool_sizes(config) if m != "inf"]


def _train_settings(config: dict, pool_size: str) -> dict:
    names = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in config["train"].items() if k in names}
    overrides = {format_pool_size(k): v for k, v in config.get("overrides", {}).items()}
    settings.update(overrides.get(pool_size, {}))
    return settings


def run_config(config: dict, pool_size: str, seed: int) -> RunConfig:
    """The :class:`RunConfig` of one training job."""
    settings = _train_settings(config, format_pool_size(pool_size))
    return RunConfig(
        dim=config["dim"],
        context_length=config["context_length"],
        noise_var=float(config["noise_var"]),
        pool_size=parse_pool_size(pool_size),
        seed=int(seed),
        model=ModelConfig(dim=config["dim"], **config["model"]),
        train=TrainConfig(**settings),
    )


def check_experiment(config: dict) -> None:
    """Checks beyond the schema; raises :class:`ConfigError` naming the key."""
    model = config["model"]
    if model["d_model"] % model["n_heads"]:
        raise ConfigError(f"model.n_heads: {model['n_heads']} does not divide model.d_model={model['d_model']}")
    sizes = [format_pool_size(m) for m in config["pool_sizes"]]
    for key in config.get("overrides", {}):
        try:
            name = format_pool_size(key)
        except (ConfigError, ValueError):
            raise ConfigError(f"overrides.{key}: not a pool size") from None
        if name not in sizes:
            raise ConfigError(f"overrides.{key}: pool size {key} is not in pool_sizes {sizes}")
    if config["train"]["checkpoints"] > config["train"]["steps"]:
        raise ConfigError(
            f"train.checkpoints: {config['train']['checkpoints']} checkpoints need at least as many steps "
            f"(train.steps={config['train']['steps']})"
        )
    resample = config["resample"]
    if resample["path_length"] > config["context_length"] and not resample.get("allow_extrapolation", False):
        raise ConfigError(
            f"resample.path_length: {resample['path_length']} points exceed the trained context_length="
            f"{config['context_length']}; set resample.allow_extrapolation: true to resample past it"
        )
    if resample["prefix_length"] >= resample["path_length"]:
        raise ConfigError(
            f"resample.prefix_length: {resample['prefix_length']} leaves no step to resample "
            f"within resample.path_length={resample['path_length']}"
        )
    if resample["prefix_length"] > config["context_length"]:
        raise ConfigError(f"resample.prefix_length: {resample['prefix_length']} exceeds context_length={config['context_length']}")
    if resample["checkpoints"] > config["train"]["checkpoints"]:
        raise ConfigError(
            f"resample.checkpoints: {resample['checkpoints']} exceeds the {config['train']['checkpoints']} train.checkpoints"
        )
    for pool_size in sizes:
        for seed in config["seeds"]:
            try:
                run_config(config, pool_size, seed)
            except ValueError as err:
                raise ConfigError(f"pool size {pool_size}, seed {seed}: {err}") from err
