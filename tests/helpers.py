"""Running the workflow from tests: the test config in a temporary folder."""

import copy
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lrpfn import layout
from lrpfn.config import prepare

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = yaml.safe_load((REPO / "configs/test.yaml").read_text())
RESULTS = TEST_CONFIG["results"]


def overlay_config(name: str) -> dict:
    """configs/<name> over the test config (top-level keys replaced), in the test config's results folder."""
    overlay = yaml.safe_load((REPO / "configs" / name).read_text())
    config = copy.deepcopy(TEST_CONFIG)
    config.update({key: value for key, value in overlay.items() if key != "results"})
    return config


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
    return fill_workdir(tmp_path_factory.mktemp(name), config)


def fill_workdir(workdir: Path, config: dict = TEST_CONFIG) -> Path:
    """config.yaml and ``config`` as test.yaml in the folder ``workdir`` (made if missing)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    (workdir / "test.yaml").write_text(yaml.safe_dump(config))
    return workdir


def experiment(config: dict = TEST_CONFIG) -> dict:
    """``config`` over config.yaml, as the workflow reads it (merged, defaults, checked)."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return out

    return prepare(merge(yaml.safe_load((REPO / "config.yaml").read_text()), copy.deepcopy(config)))


def expected_outputs(config: dict = TEST_CONFIG) -> list[str]:
    """Every file the pipeline writes on ``config``, relative to its results folder."""
    return layout.outputs(experiment(config))


def slow_training_config() -> dict:
    """The test config with a training run long enough to interrupt: 1600 steps, a resume
    state every 50."""
    config = yaml.safe_load(yaml.safe_dump(TEST_CONFIG))
    config["train"].update(steps=1600, batch_size=128, save_every=50, checkpoints=2)
    return config


def artifact_hashes(workdir: Path) -> dict[str, str]:
    """sha256 of every table and checkpoint under the results folder, by relative path."""
    root = workdir / RESULTS
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.suffix in (".parquet", ".pt")
    }
