"""An experiment config (``config.yaml``) as typed run configs; imports no torch.

Settings come in two kinds, kept apart so that a result's identity holds only what
determines its numbers:

* **science** — data, model, optimisation, steps, precision: :class:`RunConfig` (with its
  :class:`ModelConfig` and :class:`TrainConfig`). It is the train/evaluate/resample rules'
  ``params`` and the identity stored in every checkpoint; changing it reruns the run.
* **execution** — device, threads, how often to save the resume state, compilation:
  :class:`ExecutionConfig`. Changing it reruns nothing and leaves checkpoints valid, so a
  run trained on a GPU node is evaluated on a laptop.

Defaults have one home, the JSON schema beside this module (``config.schema.yaml``); the
dataclasses read theirs from it. Settings that follow the experiment's shape (the
resampling path length is the context length, ...) are filled in by :func:`complete`;
:func:`check_experiment` adds what a schema cannot express. All three run before any job
starts (in the Snakefile), and every error names the key.

This module is on the Snakefile's parse path, which every cluster job repeats: keep it to
the standard library and pyyaml.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

import yaml

SCHEMA = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ValueError):
    """An invalid experiment config; the message names the key."""


_SCHEMA = yaml.safe_load(SCHEMA.read_text())


def _schema_defaults() -> dict[str, dict]:
    """``{section: {key: default}}`` for every key of a section that has a schema default."""
    schema = _SCHEMA
    return {
        section: {key: spec["default"] for key, spec in body.get("properties", {}).items() if "default" in spec}
        for section, body in schema["properties"].items()
        if body.get("type") == "object"
    }


DEFAULTS = _schema_defaults()


def _default(section: str, key: str):
    return field(default=DEFAULTS[section][key])


# --- science ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    dim: int  # D, input dimension
    n_buckets: int
    d_model: int
    n_layers: int
    n_heads: int
    d_mlp: int
    qk_init_std: float = _default("model", "qk_init_std")  # initial std of query/key weights (others 0.02)
    head: str = _default("model", "head")  # output head: "bar" or "location_scale" (lrpfn.buckets)

    def __post_init__(self):
        check_section("model", {k: v for k, v in asdict(self).items() if k != "dim"})
        check_section("", {"dim": self.dim})
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")

    @property
    def n_outputs(self) -> int:
        """Outputs per prediction: the bucket logits, and a location and a log-scale before them."""
        return self.n_buckets + (2 if self.head == "location_scale" else 0)

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.head == "bar":
            del out["head"]  # the bar head leaves the identity of runs from before the choice as it was
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """A stored model config; one without ``head`` is from before the choice: a bar head."""
        return cls(**{"head": "bar"} | dict(data))


@dataclass(frozen=True)
class TrainConfig:
    """What determines a run's weights, besides data and model."""

    steps: int
    batch_size: int
    lr: float
    warmup: float  # fraction of steps with linear warm-up
    checkpoints: int  # number of checkpoints, spaced by factors of 2 ending at `steps`
    decay: str = _default("train", "decay")  # "cosine" or "linear", from the peak down to 0 at the last step
    weight_decay: float = _default("train", "weight_decay")
    grad_clip: float = _default("train", "grad_clip")  # max global grad norm; 0 disables
    precision: str = _default("train", "precision")  # "float32" or "bfloat16" (autocast; loss in float32)
    curriculum: float = _default("train", "curriculum")  # fraction of steps over which x's active dims grow 1 -> D
    max_length: int | None = None  # longest trained sequence; None: the context length
    length_mix: str = _default("train", "length_mix")  # how lengths up to max_length share the steps

    def active_dims(self, step: int, dim: int) -> int:
        """Input dimensions in use at optimiser step ``step`` (1-based) of a run with D = ``dim``.

        Over the first ``curriculum * steps`` steps the count grows from 1 to D in D - 1 equal
        stages (the other coordinates of x are zero, so those of w do not act); after that,
        and without a curriculum, all D are in use.
        """
        span = int(self.curriculum * self.steps)
        if step >= span:
            return dim
        return 1 + (dim - 1) * step // span

    def __post_init__(self):
        check_section("train", {k: v for k, v in asdict(self).items() if v is not None})

    def lengths(self, context_length: int) -> list[int]:
        """The trained sequence lengths, shortest first: the context length alone; with
        ``max_length``, ``cycle`` doubles from the context length to it and ``longest`` is it alone."""
        if self.max_length is None:
            return [context_length]
        if self.length_mix == "longest":
            return [self.max_length]
        lengths = [context_length]
        while lengths[-1] < self.max_length:
            lengths.append(2 * lengths[-1])
        return lengths

    def batch_shape(self, step: int, context_length: int) -> tuple[int, int]:
        """(sequences, length) of optimiser step ``step`` (1-based): the lengths take the steps in
        turn, each batch holding the tokens of ``batch_size`` sequences of the context length."""
        lengths = self.lengths(context_length)
        length = lengths[(step - 1) % len(lengths)]
        return self.batch_size * context_length // length, length

    def identity(self) -> dict:
        """The fields that make a run's identity: without a ``max_length``, a run keeps the
        identity it had before there was one."""
        out = asdict(self)
        if self.max_length is None:
            del out["max_length"], out["length_mix"]
        return out


def _kinds(section: str) -> dict[str, dict]:
    """``{kind: {title, required}}`` of a schema section that names a kind (prior, noise, features)."""
    body = _SCHEMA["properties"][section]
    kinds = {option["const"]: {"title": option["title"]} for option in body["properties"]["kind"]["oneOf"]}
    for branch in body["allOf"]:
        kinds[branch["if"]["properties"]["kind"]["const"]]["required"] = branch["then"]["required"]
    return kinds


_KINDS = {section: _kinds(section) for section in ("prior", "noise", "features")}


@dataclass(frozen=True)
class KindConfig:
    """A config section that names a kind and its parameters, typed and hashable: the true task
    prior (:class:`PriorConfig`), the noise (:class:`NoiseConfig`) or the features
    (:class:`FeaturesConfig`) of a task.

    The kinds and their parameters are declared in the schema; the parameters keep the order
    the schema's branch of the kind requires them in. The default kind is the linear,
    known-noise task of Raventós et al., whose runs keep the identity they had before the
    section existed."""

    SECTION: ClassVar[str]
    DEFAULT: ClassVar[str]
    RIDGE: ClassVar[tuple[str, str]]  # how figures name the misspecified baseline and its reference

    kind: str
    params: tuple[tuple[str, float], ...] = ()

    @property
    def parameters(self) -> dict:
        return dict(self.params)

    @property
    def is_default(self) -> bool:
        return self.kind == self.DEFAULT

    @property
    def title(self) -> str:
        """How figures name the kind ('spike-and-slab', 'unknown noise', ...): its title in the schema."""
        return _KINDS[self.SECTION][self.kind]["title"]

    @property
    def ridge_labels(self) -> tuple[str, str]:
        """How figures name the misspecified baseline and its exact reference under this kind."""
        return ("ridge", "exact, Gaussian prior") if self.is_default else self.RIDGE

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.parameters}

    @classmethod
    def from_dict(cls, section: dict | None):
        """Checks ``section`` (a config's section, None for none) against the schema; errors name the key."""
        if section is None:
            return cls(cls.DEFAULT)
        _raise_first_error(_validator(_SCHEMA["properties"][cls.SECTION]).iter_errors(section), cls.SECTION)
        kind = section["kind"]
        return cls(kind, tuple((key, section[key]) for key in _KINDS[cls.SECTION][kind]["required"]))


@dataclass(frozen=True)
class PriorConfig(KindConfig):
    """The true task prior over w (``prior``); default N(0, I_D)."""

    SECTION: ClassVar[str] = "prior"
    DEFAULT: ClassVar[str] = "gaussian"
    RIDGE: ClassVar[tuple[str, str]] = ("ridge (moment-matched)", "exact, moment-matched Gaussian")
    kind: str = "gaussian"


@dataclass(frozen=True)
class NoiseConfig(KindConfig):
    """The observation noise of a task (``noise``); default ``noise_var`` for every task."""

    SECTION: ClassVar[str] = "noise"
    DEFAULT: ClassVar[str] = "fixed"
    RIDGE: ClassVar[tuple[str, str]] = ("ridge (noise at its mean)", "exact, noise fixed at its mean")
    kind: str = "fixed"


@dataclass(frozen=True)
class FeaturesConfig(KindConfig):
    """The map of x into the task's parameter space (``features``); default phi(x) = x."""

    SECTION: ClassVar[str] = "features"
    DEFAULT: ClassVar[str] = "identity"
    RIDGE: ClassVar[tuple[str, str]] = ("ridge in x", "exact, Gaussian on x")
    kind: str = "identity"

    def n_params(self, dim: int) -> int:
        """The dimension of a task's w for inputs of dimension ``dim``."""
        return self.parameters["n_features"] if self.kind == "fourier" else dim


@dataclass(frozen=True)
class TaskFamily:
    """What a task is: the prior of its w, its noise and the features w acts on (torch-free;
    :mod:`lrpfn.families` builds the distributions and exact predictors from it).

    The prior's kinds do not combine with unknown noise or features: each non-default prior
    has exact predictors only for the linear, known-noise task."""

    prior: PriorConfig = field(default_factory=PriorConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)

    def __post_init__(self):
        if not self.prior.is_default and not (self.noise.is_default and self.features.is_default):
            other = "noise" if not self.noise.is_default else "features"
            raise ConfigError(
                f"{other}.kind: {getattr(self, other).kind} does not combine with prior.kind: {self.prior.kind} "
                "(the exact predictors of that prior assume known noise and phi(x) = x)"
            )

    @property
    def sections(self) -> dict[str, KindConfig]:
        return {"prior": self.prior, "noise": self.noise, "features": self.features}

    @property
    def is_default(self) -> bool:
        """Linear regression with known noise and w ~ N(0, I): the Bayes predictor is ridge."""
        return all(section.is_default for section in self.sections.values())

    @property
    def ridge_labels(self) -> tuple[str, str]:
        """How figures name the misspecified baseline and its exact reference: after the
        features where there are some (ridge in x), else after the non-default section."""
        changed = [section for section in self.sections.values() if not section.is_default]
        return (changed or [self.prior])[-1].ridge_labels

    @property
    def title(self) -> str:
        """How figures name the family: the title of its one non-default section ('spike-and-slab',
        'unknown noise', 'random Fourier features', or both of the last two)."""
        titles = [section.title for section in self.sections.values() if not section.is_default]
        return ", ".join(titles) or self.prior.title

    def to_params(self) -> dict:
        """The non-default sections as a rule's params: a default family adds none, so rules of
        configs without these sections keep their params (no rerun)."""
        return {name: section.to_dict() for name, section in self.sections.items() if not section.is_default}

    @classmethod
    def from_params(cls, params) -> TaskFamily:
        """The family of a config or a rule's params (a mapping with ``get``), each section checked."""
        return cls(
            PriorConfig.from_dict(params.get("prior")),
            NoiseConfig.from_dict(params.get("noise")),
            FeaturesConfig.from_dict(params.get("features")),
        )


@dataclass(frozen=True)
class RunConfig:
    """One training run's identity: everything that determines its checkpoints' numbers."""

    dim: int
    context_length: int
    noise_var: float
    pool_size: float  # math.inf for the true prior
    seed: int
    model: ModelConfig
    train: TrainConfig
    border_seed: int = 0
    prior: PriorConfig = field(default_factory=PriorConfig)  # the true task prior over w
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # noise_var is its mean
    features: FeaturesConfig = field(default_factory=FeaturesConfig)

    def __post_init__(self):
        TaskFamily(self.prior, self.noise, self.features)  # refuses a prior that does not combine
        longest, k = self.train.max_length, self.context_length
        if longest is None:
            return
        if longest < k:
            raise ValueError(f"train.max_length: {longest} is shorter than context_length={k}")
        if self.train.length_mix == "cycle" and longest != k * 2 ** round(math.log2(longest / k)):
            raise ValueError(
                f"train.max_length: {longest} is not context_length={k} times a power of 2, which the "
                "cycle of doubling lengths needs (or set train.length_mix: longest)"
            )
        for length in self.train.lengths(k):
            if self.train.batch_size * k % length:
                raise ValueError(
                    f"train.batch_size: {self.train.batch_size} sequences of {k} pairs do not make whole "
                    f"sequences of {length} (train.max_length={longest}) at equal tokens per step"
                )

    @property
    def family(self) -> TaskFamily:
        return TaskFamily(self.prior, self.noise, self.features)

    @property
    def n_params(self) -> int:
        """The dimension of a task's w: D, or the number of features."""
        return self.features.n_params(self.dim)

    @property
    def max_length(self) -> int:
        """The longest trained sequence: positions from it on were never trained on."""
        return self.train.max_length or self.context_length

    def to_dict(self) -> dict:
        out = asdict(self)
        out["model"] = self.model.to_dict()
        out["train"] = self.train.identity()
        out["pool_size"] = str(self.pool_size)  # 'inf' survives JSON and weights-only loading
        for name, section in self.family.sections.items():
            del out[name]  # a default section leaves the identity of earlier runs as it was
            if not section.is_default:
                out[name] = section.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        data = dict(data)
        data["pool_size"] = float(data["pool_size"])
        data["model"] = ModelConfig.from_dict(data["model"])
        data["train"] = TrainConfig(**data["train"])
        data["prior"] = PriorConfig.from_dict(data.get("prior"))
        data["noise"] = NoiseConfig.from_dict(data.get("noise"))
        data["features"] = FeaturesConfig.from_dict(data.get("features"))
        return cls(**data)


# --- execution -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionConfig:
    """How a run is executed; never part of a result's identity."""

    device: str = _default("train", "device")  # "cpu", "cuda", "cuda:N" or "auto" (a GPU when present)
    threads: int = _default("train", "threads")
    save_every: int = _default("train", "save_every")  # steps between resume states
    compile: bool = _default("train", "compile")  # torch.compile the forward pass

    def __post_init__(self):
        check_section("train", asdict(self))


SCIENCE_KEYS = frozenset(f.name for f in fields(TrainConfig))
EXECUTION_KEYS = frozenset(f.name for f in fields(ExecutionConfig))


# --- schedule --------------------------------------------------------------------------


def checkpoint_steps(config: TrainConfig) -> list[int]:
    """Log-spaced checkpoint steps: ``steps / 2^j`` for j = checkpoints-1 .. 0 (deduplicated)."""
    steps = {max(1, round(config.steps / 2**j)) for j in range(config.checkpoints)}
    return sorted(steps)


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}.pt"


# --- pool sizes ------------------------------------------------------------------------


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


def run_seeds(config: dict, pool_size: str) -> list[int]:
    """The seeds trained at ``pool_size``: ``seeds``, then the size's ``extra_seeds``. The first
    of ``seeds`` is trained at every size: the figures of one run show it."""
    extra = {format_pool_size(k): v for k, v in config.get("extra_seeds", {}).items()}
    return [int(s) for s in config["seeds"]] + [int(s) for s in extra.get(format_pool_size(pool_size), [])]


def runs(config: dict) -> list[tuple[str, int]]:
    """Every run of the experiment, (pool size, seed), pool sizes ascending."""
    return [(m, seed) for m in pool_sizes(config) for seed in run_seeds(config, m)]


# --- the task prior --------------------------------------------------------------------

MAX_SPIKE_SLAB_DIM = 10  # spike-and-slab is a mixture of 2^dim components


def task_prior(config: dict) -> PriorConfig:
    """The true task prior of an experiment (N(0, I_D) without a ``prior`` section)."""
    return PriorConfig.from_dict(config.get("prior"))


def task_family(config: dict) -> TaskFamily:
    """The task family of an experiment: its prior, noise and features sections."""
    return TaskFamily.from_params(config)


# --- validation --------------------------------------------------------------------------


def _validator(schema: dict):
    import jsonschema  # on the parse path only when a config is checked

    return jsonschema.Draft202012Validator(schema)


def _raise_first_error(errors, prefix: str = "") -> None:
    """A :class:`ConfigError` naming the key of the most relevant schema violation, if any."""
    import jsonschema

    error = jsonschema.exceptions.best_match(errors)
    if error is None:
        return
    path = ".".join(str(part) for part in [*([prefix] if prefix else []), *error.absolute_path])
    message = error.message
    section = path.split(".")[0]
    if list(error.absolute_path)[-1:] == ["kind"] and error.validator == "oneOf" and section in _KINDS:
        message = f"unknown {section} kind {error.instance!r} (known: {', '.join(sorted(_KINDS[section]))})"
    elif "propertyNames" in error.absolute_schema_path:
        # A key the kind does not take: the failing check is the key name's (its value is the key).
        allowed = error.validator_value if error.validator == "enum" else error.validator_value["enum"]
        path = f"{path}.{error.instance}" if path else str(error.instance)
        message = f"not a parameter of this kind (it takes {allowed})"
    elif error.validator == "required":
        key = message.split("'")[1]
        path = f"{path}.{key}" if path else key
    raise ConfigError(f"{path or '<config>'}: {message}")


def _fill_defaults(config: dict) -> None:
    """The schema's defaults, in place: top-level keys, then the keys of each section present."""
    for key, spec in _SCHEMA["properties"].items():
        if "default" in spec:
            config.setdefault(key, copy.deepcopy(spec["default"]))
    for section, defaults in DEFAULTS.items():
        if isinstance(config.get(section), dict):
            for key, value in defaults.items():
                config[section].setdefault(key, copy.deepcopy(value))


def check_section(section: str, values: dict) -> None:
    """Types and ranges of ``values`` against the schema's properties of ``section`` ('' for
    the top level): the typed configs hold the same ranges as the experiment config."""
    properties = _SCHEMA["properties"] if not section else _SCHEMA["properties"][section]["properties"]
    _raise_first_error(_validator({"type": "object", "properties": properties}).iter_errors(values), section)


def validate_schema(config: dict) -> None:
    """Types and ranges of every key against the schema; raises :class:`ConfigError` naming the key."""
    _raise_first_error(_validator(_SCHEMA).iter_errors(config))


def prepare(config: dict) -> dict:
    """The one validation path of an experiment config, in place: the schema's defaults and
    checks, the defaults that follow the experiment (:func:`complete`) and the checks across
    keys (:func:`check_experiment`). Returns ``config``."""
    _fill_defaults(config)
    validate_schema(config)
    complete(config)
    check_experiment(config)
    return config


# --- experiment -> run configs ---------------------------------------------------------


def train_config(config: dict, pool_size: str) -> TrainConfig:
    """The science of ``train``, with the pool size's ``overrides`` merged over it."""
    settings = {k: v for k, v in config["train"].items() if k in SCIENCE_KEYS}
    overrides = {format_pool_size(k): v for k, v in config.get("overrides", {}).items()}
    settings.update(overrides.get(format_pool_size(pool_size), {}))
    if settings.get("max_length") == config["context_length"]:
        settings["max_length"] = None  # the context length, however it is said: one identity
    if settings.get("max_length") is None:
        settings.pop("length_mix", None)
    return TrainConfig(**settings)


def run_config(config: dict, pool_size: str, seed: int) -> RunConfig:
    """The :class:`RunConfig` (identity) of one training job."""
    return RunConfig(
        dim=config["dim"],
        context_length=config["context_length"],
        noise_var=float(config["noise_var"]),
        pool_size=parse_pool_size(pool_size),
        seed=int(seed),
        model=ModelConfig(dim=config["dim"], **config["model"]),
        train=train_config(config, pool_size),
        **task_family(config).sections,
    )


def trained_length(config: dict) -> int:
    """The longest trained sequence of an experiment: ``train.max_length``, else the context length."""
    return config["train"].get("max_length") or config["context_length"]


def short_budget_steps(config: dict) -> int | None:
    """Steps of the shorter-budget runs (``thresholds.short_budget`` of ``train.steps``), or None."""
    fraction = config.get("thresholds", {}).get("short_budget")
    return None if fraction is None else round(fraction * config["train"]["steps"])


def short_run_config(config: dict, pool_size: str, seed: int) -> RunConfig | None:
    """The shorter-budget run of a pool size and seed (its own full schedule), or None when
    the config compares checkpoints instead."""
    steps = short_budget_steps(config)
    if steps is None:
        return None
    run = run_config(config, pool_size, seed)
    return replace(run, train=replace(run.train, steps=steps))


def execution_config(config: dict) -> ExecutionConfig:
    """How training jobs run: the execution keys of ``train``."""
    return ExecutionConfig(**{k: v for k, v in config["train"].items() if k in EXECUTION_KEYS})


def shared_checkpoint_steps(config: dict) -> list[int]:
    """The checkpoint steps of every run (overrides cannot change steps or checkpoints)."""
    return checkpoint_steps(train_config(config, pool_sizes(config)[0]))


def resample_path_lengths(config: dict) -> list[int]:
    """The distinct resampling path lengths: ``path_length``, then the final checkpoint's when longer."""
    resample = config["resample"]
    return sorted({resample["path_length"], resample["final_path_length"]})


def coverage_pool_sizes(config: dict) -> list[str]:
    """The pool sizes whose runs get the coverage read-out (``premise.coverage_pool_sizes``), formatted."""
    return [format_pool_size(m) for m in config["premise"]["coverage_pool_sizes"]]


def resampled_steps(config: dict) -> list[int]:
    """The checkpoint steps that are resampled: the last ``resample.checkpoints`` of every run."""
    return shared_checkpoint_steps(config)[-config["resample"]["checkpoints"] :]


def premise_steps(config: dict) -> list[int]:
    """The checkpoint steps with the martingale read-out: the last ``premise.checkpoints`` of
    the resampled ones."""
    return resampled_steps(config)[-config["premise"]["checkpoints"] :]


# --- defaults that follow the experiment, and checks beyond the schema -----------------


def complete(config: dict) -> dict:
    """Fill in place the settings whose defaults follow the experiment's shape; returns ``config``.

    * ``resample.path_length``: the ``context_length``;
    * ``resample.final_path_length`` (the final checkpoint's): the longest trained length;
    * ``resample.prefix_length``: P observed pairs, P the dimension of w (D, or the number of
      features: where least squares becomes determined), at most one less than the path length;
    * ``resample.checkpoints``: the last 4 checkpoints, or all of them when there are fewer;
    * ``resample.plot_dims``: 3, or P when P < 3;
    * ``eval.extrapolate_to``: twice the longest trained length (``train.max_length``, else
      ``context_length``);
    * ``predictive.prompt_lengths``: no pair, D pairs, half and all but one of the context.
    * ``premise.prompt_lengths``: D pairs and all but one of the context;
    * ``premise.coverage_prefix_lengths``: D pairs (at most one less than the path length)
      and half the context;
    * ``premise.coverage_pool_sizes``: 1 and inf, those of ``pool_sizes``;
    * ``premise.coverage_tasks``: 1000 new tasks, or the evaluation set's size when smaller;
    * ``premise.checkpoints``: the martingale read-out at the last 2 resampled checkpoints.

    A value the user set stays, and :func:`check_experiment` judges it.
    """
    k = config["context_length"]
    config["eval"].setdefault("extrapolate_to", 2 * trained_length(config))
    lengths = sorted({0, min(config["dim"], k - 1), k // 2, k - 1})
    config.setdefault("predictive", {}).setdefault("prompt_lengths", lengths)
    premise = config.setdefault("premise", {})
    premise.setdefault("prompt_lengths", sorted({min(config["dim"], k - 1), k - 1}))
    premise.setdefault("coverage_prefix_lengths", sorted({max(1, min(config["dim"], k - 1)), max(1, k // 2)}))
    premise.setdefault("coverage_pool_sizes", [m for m in ("1", "inf") if m in pool_sizes(config)])
    premise.setdefault("coverage_tasks", min(1000, config["eval"]["n_sequences"]))
    resample = config["resample"]
    resample.setdefault("path_length", config["context_length"])
    resample.setdefault("final_path_length", max(trained_length(config), resample["path_length"]))
    n_params = FeaturesConfig.from_dict(config.get("features")).n_params(config["dim"])
    resample.setdefault("prefix_length", max(1, min(n_params, resample["path_length"] - 1)))
    resample.setdefault("checkpoints", min(4, len(shared_checkpoint_steps(config))))
    premise.setdefault("checkpoints", min(2, resample["checkpoints"]))
    resample.setdefault("plot_dims", min(3, n_params))
    return config


def _check_pool_size(key: str, value, sizes: list[str]) -> None:
    """``value`` (at ``key``) names one of the experiment's pool sizes ``sizes``."""
    try:
        name = format_pool_size(value)
    except (ConfigError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a pool size") from None
    if name not in sizes:
        raise ConfigError(f"{key}: pool size {value} is not in pool_sizes {sizes}")


def check_experiment(config: dict) -> None:
    """Checks across keys, on a :func:`complete` config, after the schema's (run again here, so
    that a direct call refuses what the schema does); raises :class:`ConfigError` naming the keys."""
    validate_schema(config)
    task_family(config)  # a prior that does not combine with the noise or the features
    if config.get("prior", {}).get("kind") == "spike_slab" and config["dim"] > MAX_SPIKE_SLAB_DIM:
        raise ConfigError(
            f"prior.kind: spike_slab is a mixture of 2^dim components; dim={config['dim']} exceeds {MAX_SPIKE_SLAB_DIM}"
        )
    model = config["model"]
    if model["d_model"] % model["n_heads"]:
        raise ConfigError(f"model.n_heads: {model['n_heads']} does not divide model.d_model={model['d_model']}")
    sizes = [format_pool_size(m) for m in config["pool_sizes"]]
    for key in config.get("overrides", {}):
        _check_pool_size(f"overrides.{key}", key, sizes)
    for key, extra in config.get("extra_seeds", {}).items():
        _check_pool_size(f"extra_seeds.{key}", key, sizes)
        if repeated := sorted(set(extra) & set(config["seeds"])):
            raise ConfigError(f"extra_seeds.{key}: seeds {repeated} are already in seeds {config['seeds']}")
    train = config["train"]
    if train["checkpoints"] > train["steps"]:
        raise ConfigError(
            f"train.checkpoints: {train['checkpoints']} checkpoints need at least as many steps "
            f"(train.steps={train['steps']})"
        )
    resample, context_length, longest = config["resample"], config["context_length"], trained_length(config)
    if longest < context_length:
        raise ConfigError(f"train.max_length: {longest} is shorter than context_length={context_length}")
    for key in ("path_length", "final_path_length"):
        if resample[key] > longest and not resample.get("allow_extrapolation", False):
            raise ConfigError(
                f"resample.{key}: {resample[key]} points exceed the longest trained length "
                f"{longest}; set resample.allow_extrapolation: true to resample past it"
            )
    if resample["final_path_length"] < resample["path_length"]:
        raise ConfigError(
            f"resample.final_path_length: {resample['final_path_length']} points are fewer than "
            f"resample.path_length={resample['path_length']}"
        )
    if resample["n_prefixes"] > 0:
        if resample["prefix_length"] >= resample["path_length"]:
            raise ConfigError(
                f"resample.prefix_length: {resample['prefix_length']} leaves no step to resample "
                f"within resample.path_length={resample['path_length']}"
            )
        if resample["prefix_length"] > context_length:
            raise ConfigError(
                f"resample.prefix_length: {resample['prefix_length']} exceeds context_length={context_length}"
            )
    if config["eval"]["extrapolate_to"] < longest:
        raise ConfigError(
            f"eval.extrapolate_to: {config['eval']['extrapolate_to']} positions are fewer than the longest "
            f"trained length {longest}"
        )
    predictive = config["predictive"]
    if max(predictive["prompt_lengths"]) >= context_length:
        raise ConfigError(
            f"predictive.prompt_lengths: {max(predictive['prompt_lengths'])} pairs leave no query within "
            f"context_length={context_length}"
        )
    if predictive.get("n_prompts", 1) > config["eval"]["n_sequences"]:
        raise ConfigError(
            f"predictive.n_prompts: {predictive['n_prompts']} prompts from an evaluation set of "
            f"eval.n_sequences={config['eval']['n_sequences']}"
        )
    premise = config["premise"]
    if max(premise["prompt_lengths"]) >= context_length:
        raise ConfigError(
            f"premise.prompt_lengths: {max(premise['prompt_lengths'])} pairs leave no query within "
            f"context_length={context_length}"
        )
    for key in ("prompts", "coverage_tasks"):
        if premise[key] > config["eval"]["n_sequences"]:
            raise ConfigError(
                f"premise.{key}: {premise[key]} from an evaluation set of "
                f"eval.n_sequences={config['eval']['n_sequences']}"
            )
    if max(premise["coverage_prefix_lengths"]) >= min(resample["path_length"], context_length + 1):
        raise ConfigError(
            f"premise.coverage_prefix_lengths: {max(premise['coverage_prefix_lengths'])} pairs leave no step "
            f"within resample.path_length={resample['path_length']} (or exceed context_length={context_length})"
        )
    for size in premise["coverage_pool_sizes"]:
        _check_pool_size("premise.coverage_pool_sizes", size, sizes)
    if resample["n_prefixes"] > config["eval"]["n_sequences"]:
        raise ConfigError(
            f"resample.n_prefixes: {resample['n_prefixes']} prefixes from an evaluation set of "
            f"eval.n_sequences={config['eval']['n_sequences']}"
        )
    n_checkpoints = len(shared_checkpoint_steps(config))
    if resample["checkpoints"] > n_checkpoints:
        raise ConfigError(
            f"resample.checkpoints: {resample['checkpoints']} exceeds the {n_checkpoints} checkpoints of "
            f"train.checkpoints={train['checkpoints']}, train.steps={train['steps']}"
        )
    if config["premise"]["checkpoints"] > resample["checkpoints"]:
        raise ConfigError(
            f"premise.checkpoints: {config['premise']['checkpoints']} exceeds the "
            f"resample.checkpoints={resample['checkpoints']} checkpoints that are resampled"
        )
    short_steps = short_budget_steps(config)
    if short_steps is not None and short_steps < train["checkpoints"]:
        raise ConfigError(
            f"thresholds.short_budget: {config['thresholds']['short_budget']} of train.steps={train['steps']} "
            f"leaves fewer steps than train.checkpoints={train['checkpoints']}"
        )
    n_params = FeaturesConfig.from_dict(config.get("features")).n_params(config["dim"])
    if resample["plot_dims"] > n_params:
        raise ConfigError(f"resample.plot_dims: {resample['plot_dims']} exceeds the {n_params} dimensions of w")
    try:
        execution_config(config)
    except ValueError as err:
        raise ConfigError(f"train: {err}") from err
    for pool_size, seed in runs(config):
        try:
            run_config(config, pool_size, seed)
        except ValueError as err:
            raise ConfigError(f"pool size {pool_size}, seed {seed}: {err}") from err
