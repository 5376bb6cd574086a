"""A one-node Slurm cluster on localhost for the executor tests (Debian's slurm-wlm, run as root).

Installs the packages when missing, writes its own slurm.conf in a temporary folder (clients find it
through SLURM_CONF), starts munged (unless one already answers), slurmctld and slurmd, and stops
exactly the daemons it started, by PID. ``start`` returns the reason when Slurm cannot run here."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


def _run(*cmd: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)


def install() -> str | None:
    """None when the daemons are installed (or were just installed), else why not."""
    if all(shutil.which(b) or Path("/usr/sbin", b).exists() for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Slurm is not installed and this is not a root Debian/Ubuntu machine (apt-get as root is needed)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = _run("apt-get", "install", "-y", "--no-install-recommends", *PACKAGES, timeout=600, env=env)
    if r.returncode != 0:
        _run("apt-get", "update", timeout=600, env=env)
        r = _run("apt-get", "install", "-y", "--no-install-recommends", *PACKAGES, timeout=600, env=env)
    return None if r.returncode == 0 else f"apt-get install {' '.join(PACKAGES)} failed: {r.stderr.strip()[-500:]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.pids: dict[str, int] = {}

    def _write_conf(self) -> None:
        host = socket.gethostname().split(".")[0]
        for d in ("spool/ctld", "spool/d", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        cpus = max(2, os.cpu_count() or 2)
        self.conf.write_text("\n".join([
            "ClusterName=scfmtest", f"SlurmctldHost={host}(127.0.0.1)", "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",  # two jobs side by side
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "SlurmUser=root", "ReturnToService=2", "SchedulerType=sched/backfill",
            "KillWait=5",  # SIGTERM to SIGKILL of a job past its limit (default 30 s): quicker time-out tests
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",  # beside any other cluster on this host
            f"SlurmctldPidFile={self.root}/slurmctld.pid", f"SlurmdPidFile={self.root}/slurmd.pid",
            f"StateSaveLocation={self.root}/spool/ctld", f"SlurmdSpoolDir={self.root}/spool/d",
            f"SlurmctldLogFile={self.root}/log/slurmctld.log", f"SlurmdLogFile={self.root}/log/slurmd.log",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=20000 State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))

    def _start_daemon(self, name: str, cmd: list[str], pidfile: Path) -> None:
        r = _run(*cmd)
        if r.returncode != 0:
            raise RuntimeError(f"{name} did not start: {(r.stderr or r.stdout).strip()[-500:]}")
        for _ in range(100):
            if pidfile.is_file() and pidfile.read_text().strip():
                self.pids[name] = int(pidfile.read_text().split()[0])
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} wrote no PID file {pidfile}")

    def start(self) -> str | None:
        """None when the cluster answers with an idle node, else why it could not start."""
        if (why := install()) is not None:
            return why
        self._write_conf()
        os.environ["SLURM_CONF"] = str(self.conf)
        try:
            if not MUNGE_SOCKET.exists() or _run("munge", "-n").returncode != 0:
                Path("/run/munge").mkdir(parents=True, exist_ok=True)
                shutil.chown("/run/munge", "munge", "munge")
                self._start_daemon("munged", ["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"],
                                   Path("/run/munge/munged.pid"))
            self._start_daemon("slurmctld", ["/usr/sbin/slurmctld", "-f", str(self.conf)], self.root / "slurmctld.pid")
            self._start_daemon("slurmd", ["/usr/sbin/slurmd", "-f", str(self.conf)], self.root / "slurmd.pid")
        except (RuntimeError, OSError, subprocess.TimeoutExpired, LookupError) as exc:
            self.stop()
            return str(exc)
        for _ in range(300):
            r = _run("sinfo", "-h", "-o", "%T")
            if r.returncode == 0 and r.stdout.strip() in ("idle", "mixed"):
                return None
            time.sleep(0.1)
        log = (self.root / "log" / "slurmctld.log")
        self.stop()
        return f"the Slurm node never became idle (sinfo: {r.stdout.strip() or r.stderr.strip()}); see {log}"

    def stop(self) -> None:
        """Stop exactly the daemons this object started, newest first, and wait for them to exit."""
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        os.environ.pop("SLURM_CONF", None)
