"""Running the workflow from tests: the test config in a temporary folder."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = yaml.safe_load((REPO / "configs/test.yaml").read_text())
RESULTS = TEST_CONFIG["results"]


def snakemake_command(workdir: Path, *args: str, config: Path | None = None) -> list[str]:
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(config or workdir / "test.yaml"),
        "--cores", "2",
        *args,
    ]  # fmt: skip


def snakemake(workdir: Path, *args: str, config: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        snakemake_command(workdir, *args, config=config), capture_output=True, text=True, cwd=workdir
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from the 'Job stats' table of a dry run."""
    counts = {}
    text = result.stdout + result.stderr
    table = text.split("Job stats:", 1)[1] if "Job stats:" in text else ""
    for line in table.splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def planned_wildcards(result: subprocess.CompletedProcess, *rules: str) -> list[dict[str, str]]:
    """The wildcards of every job of ``rules`` that a dry run plans."""
    text = result.stdout + result.stderr
    out = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if match and match.group(1) in rules:
            found = re.search(r"wildcards: (.*)", block)
            out.append(dict(item.split("=", 1) for item in found.group(1).split(", ")) if found else {})
    return out


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def new_workdir(tmp_path_factory, name: str, config: dict = TEST_CONFIG) -> Path:
    workdir = tmp_path_factory.mktemp(name)
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    (workdir / "test.yaml").write_text(yaml.safe_dump(config))
    return workdir


def expected_outputs() -> list[str]:
    """Every file the test config's pipeline writes, relative to its results folder."""
    steps = [20, 40]  # 40 steps, 2 checkpoints
    files = [f"tasks/pool_M{m}.parquet" for m in (1, 4)]
    files += [f"tasks/eval{long}_{t}.parquet" for t in ("M1", "M4", "true") for long in ("", "_long")]
    for m in ("1", "4", "inf"):
        files.append(f"runs/M{m}_seed0/log.parquet")
        files += [f"runs/M{m}_seed0/step_{s:07d}.pt" for s in steps]
        files += [f"eval/M{m}_seed0/step_{s:07d}{kind}.parquet" for s in steps for kind in ("", "_sequences")]
        files.append(f"eval/M{m}_seed0/step_{steps[-1]:07d}_in_context.parquet")
        files += [f"predictive/M{m}_seed0{kind}.parquet" for kind in ("", "_density")]
        files += [f"resample/M{m}_seed0/step_{s:07d}.parquet" for s in steps]
        files += [f"resample/M{m}_reference.parquet", f"resample/M{m}_seed0_stats.parquet"]
    for m in ("1", "4"):  # shorter-budget runs (thresholds.short_budget: 0.5): 20 steps, checkpoints at 10 and 20
        files += [f"short_budget/runs/M{m}_seed0/step_{s:07d}.pt" for s in (10, 20)]
        files.append(f"short_budget/runs/M{m}_seed0/log.parquet")
        files += [f"short_budget/eval/M{m}_seed0/step_0000020{kind}.parquet" for kind in ("", "_sequences")]
    tables = (
        "metrics",
        "summary",
        "sequences",
        "closeness",
        "budget_effect",
        "thresholds",
        "train_log",
        "resample_stats",
        "posterior_marginals",
        "in_context",
        "predictive",
    )
    files += [f"tables/{t}.parquet" for t in tables]
    figures = [
        "mask",
        "task_diversity",
        "losses",
        "posterior",
        "in_context",
        *(
            f"{name}_M{m}"
            for name in ("implied_prior", "posterior_marginals", "predictive_density")
            for m in ("1", "4", "inf")
        ),
    ]
    files += [f"figures/{f}.{e}" for f in figures for e in ("png", "pdf")]
    return files


def slow_training_config() -> dict:
    """The test config with a training run long enough to interrupt: 1600 steps, a resume
    state every 50."""
    config = yaml.safe_load(yaml.safe_dump(TEST_CONFIG))
    config["train"].update(steps=1600, batch_size=128, save_every=50, checkpoints=2)
    return config
