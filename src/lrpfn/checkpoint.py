"""Checkpoints: weights, model config, output head (its borders), step and run, loadable weights-only.

A checkpoint written before the head was a choice stores only ``borders``: it loads as a bar head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .buckets import BarDistribution, from_spec
from .io import ArtifactError, load_torch, save_torch
from .model import PFN, ModelConfig

_KEYS = ("model_state", "model_config", "borders", "step", "run")


@dataclass
class Checkpoint:
    model: PFN
    bar: BarDistribution
    step: int
    run: dict  # RunConfig.to_dict() of the run that wrote it


def checkpoint_payload(model: PFN, bar: BarDistribution, run, step: int) -> dict:
    """What a checkpoint file holds; tensors are copies, safe to keep while training goes on."""
    return {
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_config": model.config.to_dict(),
        **bar.spec(),
        "step": step,
        "run": run.to_dict(),
    }


def save_checkpoint(path: str | Path, payload: dict) -> None:
    save_torch(payload, path)


def config_differences(found: dict, expected: dict, prefix: str = "") -> list[str]:
    """Keys (dotted) where two nested config dicts differ, as 'key: found != expected'."""
    out = []
    for key in sorted(set(found) | set(expected), key=str):
        a, b = found.get(key, "<missing>"), expected.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} != {b!r}")
    return out


def load_checkpoint(
    path: str | Path, device="cpu", expect: ModelConfig | None = None, run: dict | None = None
) -> Checkpoint:
    """Load a checkpoint (weights-only); errors name the file and what is wrong with it.

    ``expect`` checks the model config, ``run`` the whole run config (``RunConfig.to_dict()``):
    a checkpoint left over from another config is refused instead of silently evaluated.
    """
    state = load_torch(path, map_location=device)
    missing = [k for k in _KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ArtifactError(f"{path}: not a checkpoint, missing {missing}")
    try:
        config = ModelConfig.from_dict(state["model_config"])
    except (TypeError, ValueError) as err:
        raise ArtifactError(f"{path}: invalid model config ({err})") from err
    if expect is not None and config != expect:
        raise ArtifactError(f"{path}: model config {config} differs from the expected {expect}")
    if run is not None and (diff := config_differences(state["run"], run)):
        raise ArtifactError(f"{path}: written by another run config (found != expected: {'; '.join(diff)})")
    model = PFN(config)
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as err:
        raise ArtifactError(f"{path}: weights do not match the model config ({err})") from err
    try:
        bar = from_spec(state)
    except (KeyError, ValueError) as err:
        raise ArtifactError(f"{path}: invalid output head ({err!r})") from err
    if bar.kind != config.head or bar.n_outputs != config.n_outputs:
        raise ArtifactError(
            f"{path}: a {bar.kind} head of {bar.n_buckets} buckets, but the model has a {config.head} head of "
            f"{config.n_buckets}"
        )
    model.to(device).eval()
    return Checkpoint(model=model, bar=bar.to(device), step=int(state["step"]), run=state["run"])
