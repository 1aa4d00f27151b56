"""A real single-node SLURM cluster for tests: munged, slurmctld and slurmd from Debian's
``munge`` and ``slurm-wlm`` packages, as plain foreground child processes of the test (no systemd),
on 127.0.0.1 only, with every file (key, state, spool, logs, sockets) under one temporary folder.

No cgroups are available on the machines this runs on, so processes are tracked with
``proctrack/linuxproc`` and tasks are not confined (``task/none``); the node's ``RealMemory`` is set
so that ``--mem`` requests are accepted. Without accounting (no slurmdbd) a finished job only
disappears from ``squeue``: callers poll ``squeue`` and then check the job's *outputs*, because
SLURM reports a job that failed silently as well as one that succeeded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def missing_binaries():
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def install_binaries(timeout=300):
    """``apt-get install slurm-wlm munge`` (root only); return the apt output's tail on failure."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} timed out after {timeout} s"
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {(proc.stdout + proc.stderr)[-500:]}"
    return None


def _exe(name):
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(ports):
    """Local addresses (``ip:port``) of the TCP sockets listening on ``ports``, from /proc/net/tcp*."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] != "0A" or int(port, 16) not in ports:  # 0A = LISTEN
                continue
            if width == 8:
                ip = socket.inet_ntoa(bytes.fromhex(address)[::-1])
            else:
                raw = bytes.fromhex(address)
                ip = socket.inet_ntop(
                    socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                )
            found.add(f"{ip}:{int(port, 16)}")
    return found


SLURM_CONF = """\
ClusterName=dcequant-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=2
KillWait=5
Waittime=0
NodeName={host} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`env` is the environment for the
    SLURM client commands (``SLURM_CONF``, and ``LOGNAME``, which Nipype's SLURM plugin needs)."""

    def __init__(self, root, cpus=2, memory_mb=8000):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.cpus, self.memory_mb = cpus, memory_mb
        self.ports = (_free_port(), _free_port())
        self.procs = []
        self.env = {
            **os.environ,
            "SLURM_CONF": str(self.root / "slurm.conf"),
            "LOGNAME": os.environ.get("LOGNAME") or os.environ.get("USER") or "root",
        }

    def _spawn(self, name, args):
        log = open(self.root / f"{name}.stdout", "w")
        proc = subprocess.Popen(
            [_exe(name), *args], stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.procs.append((name, proc, log))
        return proc

    def start(self, timeout=30):
        if not socket.gethostbyname(self.host).startswith("127."):
            raise RuntimeError(
                f"hostname {self.host} resolves to {socket.gethostbyname(self.host)}, not loopback"
            )
        munge = self.root / "munge"
        for folder in (munge, self.root / "state", self.root / "spool"):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.chmod(munge, 0o700)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        (self.root / "slurm.conf").write_text(
            SLURM_CONF.format(
                host=self.host,
                root=self.root,
                ctld_port=self.ports[0],
                slurmd_port=self.ports[1],
                cpus=self.cpus,
                memory_mb=self.memory_mb,
            )
        )
        self._spawn(
            "munged",
            [
                "-F",
                "--force",
                f"--socket={munge}/munge.socket",
                f"--key-file={key}",
                f"--pid-file={munge}/munged.pid",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/munged.seed",
            ],
        )
        self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged socket")
        self._spawn("slurmctld", ["-D", "-i", "-f", str(self.root / "slurm.conf")])
        self._spawn("slurmd", ["-D", "-N", self.host, "-f", str(self.root / "slurm.conf")])
        self._wait(self._node_idle, timeout, "an idle node")
        listening = listening_addresses(set(self.ports))
        outside = sorted(a for a in listening if not a.startswith("127."))
        if outside or len(listening) < 2:
            raise RuntimeError(f"SLURM daemons listen on {sorted(listening)}; expected loopback only")
        return self

    def _node_idle(self):
        for name, proc, _ in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
        out = self.run(["sinfo", "-h", "-o", "%t"], check=False)
        return out.strip() == "idle"

    def _wait(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise RuntimeError(f"no {what} after {timeout} s; slurmctld log: {self.log_tail('slurmctld')}")

    def log_tail(self, name, n=1500):
        texts = []
        for path in (
            self.root / f"{name}.log",
            self.root / f"{name}.stdout",
            self.root / "munge" / f"{name}.log",
        ):
            if path.exists():
                texts.append(path.read_text(errors="replace")[-n:])
        return "\n".join(texts)

    def run(self, cmd, check=True, **kwargs):
        proc = subprocess.run(
            cmd, env=kwargs.pop("env", self.env), capture_output=True, text=True, timeout=60, **kwargs
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def wait_for_jobs(self, job_ids, timeout):
        """Poll ``squeue`` until none of ``job_ids`` is queued or running (``sbatch --wait`` polls
        slowly and may report 0 for a purged failed job)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T"], check=False)
            if not out.strip():
                return
            time.sleep(1)
        raise TimeoutError(f"jobs {job_ids} still queued after {timeout} s: {out.strip()}")

    def stop(self):
        for _, proc, log in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
        self.procs = []
