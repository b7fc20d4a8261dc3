"""A single-node SLURM cluster on this host, for tests/test_slurm.py and for trying profiles/slurm.

Installs nothing: it needs root and the Debian packages munge, slurmctld, slurmd and slurm-client.
`start` writes /etc/slurm/slurm.conf and gres.conf (backing up files already there: job steps drop
$SLURM_CONF and read the default path), starts munged as the munge user unless one already
answers, slurmctld with a clean state and slurmd, and waits until the node is idle. `stop` ends
the daemons it started, by PID, and restores /etc/slurm. Everything else (state, spool, logs, PID
list) lives in one state folder.

    python3 tests/cluster/slurm_node.py start /tmp/slurm-node
    python3 tests/cluster/slurm_node.py stop /tmp/slurm-node
"""

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SLURM_ETC = Path("/etc/slurm")
CONFIG_FILES = ("slurm.conf", "gres.conf")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
PARTITION = "main"
# squeue must still list a finished job when Snakemake next asks (profiles/slurm checks status
# with squeue, since there is no accounting database here).
MIN_JOB_AGE_S = 3600


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be started on this host; the message says why."""


def node_name() -> str:
    return socket.gethostname().split(".")[0]  # `hostname -s`


def node_memory_mb() -> int:
    """Memory slurmd may offer: 90 % of MemTotal, so the node is never drained for having less."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 9 // 10 // 1024
    raise ClusterUnavailable("no MemTotal in /proc/meminfo")


def slurm_conf(state: Path, node: str, cpus: int, memory_mb: int) -> str:
    return f"""\
# Single-node test cluster written by tests/cluster/slurm_node.py; restored on stop.
ClusterName=lrpfn-test
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
# No cgroups in a container: track processes by their parent and bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
DefMemPerCPU=1000
MailProg=/bin/true
MinJobAge={MIN_JOB_AGE_S}
ReturnToService=2
KillWait=5
InactiveLimit=0
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def gres_conf(node: str) -> str:
    # A GPU gres needs a character device; /dev/null stands in for /dev/nvidia0.
    return f"NodeName={node} Name=gpu File=/dev/null\n"


def run(*cmd: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def munge_answers() -> bool:
    try:
        credential = run("munge", "-n").stdout
        return subprocess.run(["unmunge"], input=credential, capture_output=True, text=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def controller_answers() -> bool:
    try:
        return "is UP" in run("scontrol", "ping").stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


def node_state() -> str:
    try:
        return run("sinfo", "--noheader", "--Node", "--format=%t").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def cancel_jobs(timeout_s: float = 30) -> None:
    """Cancel the jobs still pending or running (all of them are ours: the cluster is private)."""
    try:
        active = run("squeue", "--noheader", "--format=%i").stdout.split()
        if active:
            run("scancel", *active)
        deadline = time.monotonic() + timeout_s
        while active and time.monotonic() < deadline:
            time.sleep(0.5)
            active = run("squeue", "--noheader", "--format=%i").stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        pass  # the controller is gone: stopping slurmd ends the jobs


def log_tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return f"({path.name}: no log)"
    return f"{path.name}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class SingleNodeSlurm:
    """munged (if needed), slurmctld and slurmd on this host; `state` holds everything they write."""

    def __init__(self, state: Path):
        self.state = Path(state).resolve()
        self.record = self.state / "started.json"  # PIDs and config backups, for stop()

    def start(self, timeout_s: float = 60) -> None:
        for program in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol"):
            if shutil.which(program) is None:
                raise ClusterUnavailable(
                    f"{program} is not on PATH (apt-get install munge slurmctld slurmd slurm-client)"
                )
        if os.geteuid() != 0:
            raise ClusterUnavailable("starting slurmd and writing /etc/slurm needs root")
        if controller_answers():
            raise ClusterUnavailable("a slurmctld already answers on this host; stop it first")
        self.state.mkdir(parents=True, exist_ok=True)
        started = {"pids": {}, "backups": {}}
        self._save(started)
        try:
            self._write_config(started)
            if not munge_answers():
                started["pids"]["munged"] = self._start_munged()
                self._save(started)
                self._wait(munge_answers, timeout_s, "munged does not answer")
            started["pids"]["slurmctld"] = self._spawn("slurmctld", "slurmctld", "-D", "-c", "-i")
            self._save(started)
            self._wait(controller_answers, timeout_s, "slurmctld does not answer")
            started["pids"]["slurmd"] = self._spawn("slurmd", "slurmd", "-D")
            self._save(started)
            self._wait(lambda: node_state() == "idle", timeout_s, "the node is not idle")
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        """End what start() started (slurmd, slurmctld, munged, in that order) and restore /etc/slurm."""
        if not self.record.is_file():
            return
        started = json.loads(self.record.read_text())
        if "slurmd" in started["pids"]:
            cancel_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            pid = started["pids"].get(name)
            if pid is not None:
                terminate(pid)
        for name, backup in started["backups"].items():
            target = SLURM_ETC / name
            if backup is None:
                target.unlink(missing_ok=True)
            else:
                shutil.move(backup, target)
        self.record.unlink()

    def _save(self, started: dict) -> None:
        self.record.write_text(json.dumps(started, indent=2))

    def _write_config(self, started: dict) -> None:
        node = node_name()
        for sub in ("ctld", "spool"):
            shutil.rmtree(self.state / sub, ignore_errors=True)  # a clean controller state
            (self.state / sub).mkdir()
        cpus = len(os.sched_getaffinity(0))
        texts = {
            "slurm.conf": slurm_conf(self.state, node, cpus, node_memory_mb()),
            "gres.conf": gres_conf(node),
        }
        SLURM_ETC.mkdir(parents=True, exist_ok=True)
        for name in CONFIG_FILES:
            target = SLURM_ETC / name
            backup = None
            if target.exists():
                backup = str(self.state / f"{name}.orig")
                shutil.copy2(target, backup)
            started["backups"][name] = backup
            self._save(started)
            target.write_text(texts[name])

    def _start_munged(self) -> int:
        munge = pwd.getpwnam("munge")
        if not MUNGE_KEY.is_file():  # the Debian package makes one; a bare image may lack it
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            MUNGE_KEY.write_bytes(os.urandom(1024))
            os.chown(MUNGE_KEY, munge.pw_uid, munge.pw_gid)
            os.chmod(MUNGE_KEY, 0o400)
        for folder in (MUNGE_RUN, Path("/var/lib/munge"), Path("/var/log/munge")):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, munge.pw_uid, munge.pw_gid)
        MUNGE_RUN.chmod(0o755)
        return self._spawn("munged", "munged", "--foreground", user="munge")

    def _spawn(self, name: str, *cmd: str, user: str | None = None) -> int:
        """Start a daemon in the foreground (so its PID is ours to stop) with output to the state folder."""
        with open(self.state / f"{name}.out", "ab") as out:
            process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, user=user, start_new_session=True
            )
        time.sleep(0.5)
        if process.poll() is not None:
            raise ClusterUnavailable(f"{name} exited with status {process.returncode}\n{self.diagnostics()}")
        return process.pid

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"{what} after {timeout_s:.0f} s\n{self.diagnostics()}")
            time.sleep(0.5)

    def diagnostics(self) -> str:
        logs = ["munged.out", "slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out"]
        return "\n".join(log_tail(self.state / name) for name in logs)


def terminate(pid: int, timeout_s: float = 20) -> None:
    """SIGTERM, then SIGKILL if the process is still there after timeout_s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    alive(pid)


def alive(pid: int) -> bool:
    """True while the process runs; reaps it when it is our exited child."""
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass  # not our child (started by an earlier `start` command): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    cluster = SingleNodeSlurm(Path(argv[1]))
    try:
        cluster.start() if argv[0] == "start" else cluster.stop()
    except ClusterUnavailable as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
