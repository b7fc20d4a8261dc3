"""Faults under the workflow: reproducible artifacts, a killed job, stale and corrupt inputs."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from helpers import (
    RESULTS,
    artifact_hashes,
    expected_outputs,
    new_workdir,
    slow_training_config,
    snakemake,
    snakemake_command,
)

pytestmark = pytest.mark.workflow


@pytest.mark.skipif(
    os.environ.get("LRPFN_REQUIRE_SLURM") == "1",
    reason="the SLURM run of tests/test_slurm.py is a second clean run of this config, byte for byte compared there",
)
def test_two_clean_runs_write_identical_tables_and_checkpoints(pipeline, tmp_path_factory):
    again = new_workdir(tmp_path_factory, "pipeline-again")
    snakemake(again)
    first, second = artifact_hashes(pipeline), artifact_hashes(again)
    assert sorted(first) == sorted(f for f in expected_outputs() if f.endswith((".parquet", ".pt")))
    assert first.keys() == second.keys()
    differing = [k for k in first if first[k] != second[k]]
    assert not differing


# --- a training job killed mid-way ------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the job's process through /proc")
def test_training_job_killed_by_sigkill_resumes_under_snakemake_to_identical_weights(tmp_path_factory):
    config = slow_training_config()
    target = f"{RESULTS}/runs/Minf_seed0/log.parquet"
    final = f"{RESULTS}/runs/Minf_seed0/step_{config['train']['steps']:07d}.pt"

    clean = new_workdir(tmp_path_factory, "uninterrupted", config)
    snakemake(clean, target)

    killed = new_workdir(tmp_path_factory, "killed", config)
    resume = killed / RESULTS / "runs/Minf_seed0/resume.pt"
    process = subprocess.Popen(
        snakemake_command(killed, target), cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not resume.exists():
            assert process.poll() is None, (
                f"snakemake ended before the first resume state:\n{process.stderr.read()[-3000:]}"
            )
            assert time.monotonic() < deadline, "no resume state within 300 s"
            time.sleep(0.05)
        jobs = [p for p in descendants(process.pid) if "train.py" in cmdline(p)]
        assert jobs, "the training job's process was not found"
        for pid in jobs:
            os.kill(pid, signal.SIGKILL)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0, "snakemake must report the killed job"
    assert not (killed / final).exists()
    assert resume.exists()  # not an output of the job: the workflow manager leaves it

    snakemake(killed, target)
    log = (killed / RESULTS / "logs/train/Minf_seed0.log").read_text()
    assert "resuming" in log, log[-2000:]
    ours = torch.load(killed / final, weights_only=True)["model_state"]
    reference = torch.load(clean / final, weights_only=True)["model_state"]
    assert all(torch.equal(ours[k], reference[k]) for k in reference)
    assert not resume.exists()


# --- stale and corrupt inputs -------------------------------------------------------------


@pytest.fixture
def built(pipeline, tmp_path) -> Path:
    """A private copy of the finished test pipeline, free to damage."""
    workdir = tmp_path / "built"
    shutil.copytree(pipeline, workdir, symlinks=True)
    return workdir


def test_evaluating_a_checkpoint_of_another_config_names_the_file_and_the_key(built):
    config = yaml.safe_load((built / "test.yaml").read_text())
    config["train"]["lr"] = 0.01
    (built / "test.yaml").write_text(yaml.safe_dump(config))
    target = f"{RESULTS}/eval/M4_seed0/step_0000040.parquet"
    # Only modification times count, so the old checkpoint looks current and is offered to evaluate.
    result = snakemake(built, target, "--rerun-triggers", "mtime", "--forcerun", "evaluate", check=False)
    assert result.returncode != 0
    log = (built / RESULTS / "logs/eval/M4_seed0_step0000040.log").read_text()
    assert "step_0000040.pt: written by another run config" in log and "train.lr: 0.003 != 0.01" in log, log[-2000:]


CORRUPTIONS = [
    # (file to damage, target that reads it, job log, text the error must contain)
    ("tasks/pool_M4.parquet", "runs/M4_seed0/log.parquet", "logs/train/M4_seed0.log",
     "pool_M4.parquet: not a readable parquet table"),
    ("runs/M4_seed0/step_0000040.pt", "eval/M4_seed0/step_0000040.parquet", "logs/eval/M4_seed0_step0000040.log",
     "step_0000040.pt: cannot be loaded as a weights-only torch file"),
    ("tasks/eval_true.parquet", "eval/M4_seed0/step_0000040.parquet", "logs/eval/M4_seed0_step0000040.log",
     "eval_true.parquet: not a readable parquet table"),
]  # fmt: skip


@pytest.mark.parametrize("damaged, target, log, expected", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_truncated_artifact_fails_its_job_naming_the_file(built, damaged, target, log, expected):
    path = built / RESULTS / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    output = built / RESULTS / target
    output.unlink()
    # The damaged file is newer than its producer's inputs, so only its consumers rerun.
    result = snakemake(built, str(output.relative_to(built)), "--rerun-triggers", "mtime", check=False)
    assert result.returncode != 0
    text = (built / RESULTS / log).read_text()
    assert expected in text, f"{text[-2000:]}\n--- snakemake:\n{result.stderr[-3000:]}"
    assert not output.exists()
    assert not list((built / RESULTS).rglob("*.tmp"))
