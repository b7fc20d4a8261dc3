"""The workflow on a real SLURM cluster through profiles/slurm.

A single-node cluster (tests/cluster/slurm_node.py) is started on this host for the module and
stopped at its end. Without the SLURM commands, or where the daemons cannot start (not root, no
munge), the tests are skipped with the reason; LRPFN_REQUIRE_SLURM=1 (set by .ci/run, which
installs them) turns that skip into a failure.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from cluster.slurm_node import ClusterUnavailable, SingleNodeSlurm

from lrpfn.io import load_torch

from helpers import REPO, RESULTS, TEST_CONFIG, artifact_hashes, expected_outputs, new_workdir, slow_training_config

PROFILE = REPO / "profiles/slurm"
# The whole test config: per pool size (1, 4, inf) one training run, evaluation and resampling
# at both checkpoints, the reference resampler, the resampling statistics, the in-context
# evaluation of the final checkpoint and the predictive densities, and per finite pool size a
# shorter-budget run and the evaluation of its final checkpoint go to SLURM; the task tables,
# aggregates and plots are local rules.
SLURM_JOBS = {
    "train": 3, "evaluate": 6, "resample": 6, "resample_reference": 3, "resample_stats": 3,
    "train_short": 2, "evaluate_short": 2, "evaluate_long": 3, "predictive": 3, "premise": 3,
    "coverage": 2,
}  # fmt: skip
PROFILE_SETTINGS = yaml.safe_load((PROFILE / "config.yaml").read_text())
# The profile's first status check comes after 20 s, a courtesy to a shared controller; the
# private test cluster is asked every few seconds so that the runs take minutes, not more.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "5")
# Snakemake must give up on a failed job within this many seconds.
FAILURE_BOUND_S = 300

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    required = os.environ.get("LRPFN_REQUIRE_SLURM") == "1"
    reason = None
    if shutil.which("sbatch") is None:
        reason = "sbatch is not on PATH (apt-get install slurmctld slurmd slurm-client munge)"
    else:
        node = SingleNodeSlurm(tmp_path_factory.mktemp("slurm-node"))
        try:
            node.start()
        except ClusterUnavailable as err:
            reason = f"cannot start a single-node SLURM cluster: {err}"
    if reason is not None:
        if required:
            pytest.fail(f"LRPFN_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    try:
        yield node
    finally:
        node.stop()


def snakemake_command(workdir: Path, *args: str, slurm: bool = True) -> list[str]:
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "test.yaml"),
    ]  # fmt: skip
    if slurm:
        cmd += ["--profile", str(PROFILE), *FAST_STATUS]
    else:
        cmd += ["--cores", "2"]
    return cmd + list(args)


def start(cmd: list[str], workdir: Path, log_name: str) -> tuple[subprocess.Popen, Path]:
    """Run in the background, in its own process group, output to a file in workdir."""
    log = workdir / log_name
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return process, log


def finish(process: subprocess.Popen, log: Path, timeout_s: float) -> str:
    """Wait for a process from start(); past timeout_s, end its process group and fail."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        end_group(process)
        pytest.fail(f"{' '.join(process.args[3:])} still ran after {timeout_s:.0f} s:\n{log.read_text()[-5000:]}")
    return log.read_text()


def end_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group; SIGKILL if Snakemake still waits for its jobs 30 s later."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def slurm_job_ids(output: str) -> dict[str, list[str]]:
    """SLURM job ids per rule, from Snakemake's 'submitted with SLURM jobid' lines."""
    ids = {}
    for job_id, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*?/slurm_logs/rule_(\w+)/", output):
        ids.setdefault(rule, []).append(job_id)
    return ids


def job_states(ids: list[str]) -> dict[str, str]:
    """State of each job as the controller lists it (finished jobs stay listed for MinJobAge)."""
    listed = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T", "--jobs", ",".join(ids)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("|") for line in listed.split())


def job_details(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "--details", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout


def detail(details: str, key: str) -> str | None:
    match = re.search(rf"\b{key}=(\S+)", details)
    return match.group(1) if match else None


# --- one run's chain: SLURM against local -----------------------------------------------


@pytest.fixture(scope="module")
def runs(cluster, pipeline, tmp_path_factory) -> dict:
    """The whole test config through SLURM, and the same config run locally (``pipeline``)."""
    slurm_dir = new_workdir(tmp_path_factory, "slurm")
    slurm = start(snakemake_command(slurm_dir), slurm_dir, "snakemake.log")
    output = finish(*slurm, timeout_s=1200)
    assert slurm[0].returncode == 0, output[-5000:]
    return {"local": pipeline, "slurm": slurm_dir, "output": output}


def test_every_remote_job_runs_as_a_completed_slurm_job(runs):
    ids = slurm_job_ids(runs["output"])
    assert {rule: len(jobs) for rule, jobs in ids.items()} == SLURM_JOBS
    all_ids = [job for jobs in ids.values() for job in jobs]
    assert set(job_states(all_ids).values()) == {"COMPLETED"}, job_states(all_ids)


def test_slurm_outputs_equal_the_local_run(runs):
    """A second clean run of the test config, through another executor: every table and
    checkpoint equal to the local run's, byte for byte (what tests/test_faults.py asserts of two
    local runs where no cluster runs)."""
    local, slurm = runs["local"] / RESULTS, runs["slurm"] / RESULTS
    assert artifact_hashes(runs["slurm"]) == artifact_hashes(runs["local"])
    tables = sorted(p.relative_to(local) for p in local.rglob("*.parquet"))
    assert tables == sorted(p.relative_to(slurm) for p in slurm.rglob("*.parquet"))
    assert tables == sorted(Path(f) for f in expected_outputs() if f.endswith(".parquet"))
    for name in tables:
        frames = pd.read_parquet(slurm / name), pd.read_parquet(local / name)
        pd.testing.assert_frame_equal(*frames, check_exact=True, obj=str(name))
    checkpoints = sorted(p.relative_to(local) for p in local.rglob("*.pt"))
    assert checkpoints == sorted(Path(f) for f in expected_outputs() if f.endswith(".pt"))
    assert checkpoints == sorted(p.relative_to(slurm) for p in slurm.rglob("*.pt"))
    for name in checkpoints:
        ours, theirs = load_torch(slurm / name), load_torch(local / name)
        assert ours["step"] == theirs["step"] and ours["run"] == theirs["run"]
        assert torch.equal(ours["borders"], theirs["borders"]), name
        assert ours["model_state"].keys() == theirs["model_state"].keys()
        for key, tensor in ours["model_state"].items():
            assert torch.equal(tensor, theirs["model_state"][key]), f"{name}: {key}"


def test_jobs_get_the_resources_of_rule_and_profile(runs):
    ids = slurm_job_ids(runs["output"])
    train = job_details(ids["train"][0])
    # The profile's set-resources sets the train runtime; the rule sets mem_mb=4000 and one thread.
    hours, minutes = divmod(PROFILE_SETTINGS["set-resources"]["train"]["runtime"], 60)
    assert detail(train, "TimeLimit") == f"{hours:02d}:{minutes:02d}:00"
    assert detail(train, "MinMemoryNode") == "4000M"
    assert detail(train, "NumCPUs") == "1"
    # train.device is cpu in configs/test.yaml: no GPU asked for or given.
    assert detail(train, "TresPerJob") is None and detail(train, "JOB_GRES") in (None, "(null)")
    evaluate = job_details(ids["evaluate"][0])  # rule evaluate: runtime=20, mem_mb=2000
    assert detail(evaluate, "TimeLimit") == "00:20:00" and detail(evaluate, "MinMemoryNode") == "2000M"


# --- GPU request and failure ------------------------------------------------------------


def test_cuda_training_asks_slurm_for_a_gpu(cluster, tmp_path_factory):
    config = {**TEST_CONFIG, "train": {**TEST_CONFIG["train"], "device": "cuda"}}
    workdir = new_workdir(tmp_path_factory, "cuda", config)
    # The job itself may fail (CPU-only torch); what matters is what was asked and allocated.
    command = snakemake_command(workdir, "--retries", "0", f"{RESULTS}/runs/M1_seed0/log.parquet")
    output = finish(*start(command, workdir, "snakemake.log"), timeout_s=FAILURE_BOUND_S)
    ids = slurm_job_ids(output)
    assert len(ids.get("train", [])) == 1, output[-5000:]
    details = job_details(ids["train"][0])
    assert detail(details, "TresPerJob") == "gres:gpu:1"  # sbatch --gpus=1
    assert detail(details, "JOB_GRES") == "gpu:1"  # and the node's GPU was allocated to it


def test_a_failing_job_ends_the_run_with_an_error(cluster, tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "failing")
    # The config is valid and the pool file exists (so no job rebuilds it), but it is no table:
    # only the train job, on the cluster, can notice.
    pool = workdir / RESULTS / "tasks/pool_M4.parquet"
    pool.parent.mkdir(parents=True)
    pool.write_bytes(b"not a parquet table")
    process, log = start(snakemake_command(workdir, f"{RESULTS}/runs/M4_seed0/log.parquet"), workdir, "snakemake.log")
    output = finish(process, log, timeout_s=FAILURE_BOUND_S)
    assert process.returncode != 0
    assert "Error in rule train" in output
    # The job ran on the cluster, failed for the planted reason, and was retried as the profile says.
    ids = slurm_job_ids(output)["train"]
    assert len(ids) == 1 + PROFILE_SETTINGS["retries"]
    assert set(job_states(ids).values()) == {"FAILED"}
    train_log = (workdir / RESULTS / "logs/train/M4_seed0.log").read_text()
    assert "pool_M4.parquet: not a readable parquet table" in train_log
    assert not list((workdir / RESULTS / "runs").rglob("*.pt"))


# --- a training job cancelled with scancel ----------------------------------------------


def running_jobs(comment: str) -> list[str]:
    """Ids of the running jobs whose comment is ``comment`` (the plugin's rule_<rule>_wildcards_<values>)."""
    listed = subprocess.run(
        ["squeue", "--states=RUNNING", "--noheader", "--format=%i|%k"], capture_output=True, text=True, check=True
    ).stdout
    return [job_id for job_id, job_comment in (line.split("|", 1) for line in listed.split()) if job_comment == comment]


def test_a_cancelled_training_job_is_resubmitted_and_resumes_to_identical_weights(cluster, tmp_path_factory):
    # About 20 s of training on one CPU with a resume state every 50 of its 1600 steps, so that
    # the job is surely running when its first resume state appears.
    config = slow_training_config()
    run = f"{RESULTS}/runs/Minf_seed0"  # the true prior: no pool table, so the train job is the only job
    final = f"{run}/step_{config['train']['steps']:07d}.pt"

    clean = new_workdir(tmp_path_factory, "uninterrupted", config)
    output = finish(
        *start(snakemake_command(clean, f"{run}/log.parquet", slurm=False), clean, "snakemake.log"), timeout_s=300
    )
    assert (clean / final).is_file(), output[-5000:]

    workdir = new_workdir(tmp_path_factory, "cancelled", config)
    resume = workdir / run / "resume.pt"
    process, log = start(snakemake_command(workdir, f"{run}/log.parquet"), workdir, "snakemake.log")
    try:
        deadline = time.monotonic() + 300
        while not resume.exists():
            assert process.poll() is None, f"snakemake ended before the first resume state:\n{log.read_text()[-5000:]}"
            assert time.monotonic() < deadline, f"no resume state within 300 s:\n{log.read_text()[-5000:]}"
            time.sleep(0.05)
        cancelled = running_jobs("rule_train_wildcards_inf_0")
        assert len(cancelled) == 1, cancelled
        subprocess.run(["scancel", cancelled[0]], check=True, timeout=30)
        # A cancelled job is a failed job to the plugin (squeue state CANCELLED, one of its failure
        # states), so Snakemake submits it again under the profile's `retries: 1`: the same
        # snakemake call ends with success, no second call is needed.
        output = finish(process, log, timeout_s=600)
    finally:
        end_group(process)
    assert process.returncode == 0, output[-5000:]
    ids = slurm_job_ids(output)["train"]
    assert len(ids) == 1 + PROFILE_SETTINGS["retries"] and ids[0] == cancelled[0], (ids, cancelled)
    assert job_states(ids) == {ids[0]: "CANCELLED", ids[1]: "COMPLETED"}
    # The job log is the resubmitted job's (log_to opens it for writing): it started from the
    # resume state the cancelled job left, not from step 0.
    train_log = (workdir / RESULTS / "logs/train/Minf_seed0.log").read_text()
    resumed = re.search(r"resuming \S+ from step (\d+)", train_log)
    assert resumed and 0 < int(resumed.group(1)) < config["train"]["steps"], train_log[-2000:]
    assert not resume.exists()
    ours = load_torch(workdir / final)["model_state"]
    reference = load_torch(clean / final)["model_state"]
    assert ours.keys() == reference.keys()
    for key, tensor in reference.items():
        assert torch.equal(ours[key], tensor), key
