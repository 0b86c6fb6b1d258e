"""A real one-node SLURM cluster on this machine, for tests: munge, slurmctld, slurmd, one fake GPU.

    python tools/slurm_loopback.py up   [--dir DIR]    # install (apt) if needed, start, print the env to use
    python tools/slurm_loopback.py down  --dir DIR     # stop exactly the daemons ``up`` started there

Everything lives in one state folder (default: a new ``/tmp/mskseg-slurm-*``): ``slurm.conf``,
``gres.conf``, a munge key and socket, the controller's state, the logs, and ``pids.json`` with the
pid and command line of each daemon started. Clients reach this cluster, and no other, through
``SLURM_CONF=<dir>/slurm.conf``; the daemons listen on free ports of 127.0.0.1. ``down`` stops only
processes whose pid is recorded *and* whose command line still names the state folder, so it never
touches a daemon it did not start (and never kills by name).

Needs root (apt, munge as user ``munge``, slurmd). Debian 12 ships Slurm 22.05 and munge 0.5.15;
the facts behind the settings are in ``../shared/notes/slurm-on-loopback.md``:
- slurmd runs with ``-N localhost`` because the machine's host name is not ``localhost``;
- a GPU with no device file drains the node, so the GPU is a dummy character device
  (``mknod c 1 3``, i.e. /dev/null's numbers) named in ``gres.conf`` with ``AutoDetect=off``;
  ``--gpus=1`` jobs then get ``CUDA_VISIBLE_DEVICES=0`` and run one at a time;
- there is no accounting database, so ``sacct`` fails: use ``squeue`` for job status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
#: where srun looks for its configuration when SLURM_CONF is not set: snakemake's job-step plugin
#: drops every SLURM_* variable (SLURM_CONF included) before it calls srun inside a job
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd")


class LoopbackError(RuntimeError):
    """The loopback cluster could not be installed, started or stopped; the message says why."""


@dataclass(frozen=True)
class Cluster:
    """A running loopback cluster: its state folder and the environment clients need."""

    folder: Path

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with ``SLURM_CONF`` pointing here."""
        return dict(os.environ if base is None else base, SLURM_CONF=str(self.conf))


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, encoding="utf-8", errors="replace", capture_output=True, check=False, **kw)


def install() -> None:
    """apt-get install slurm-wlm and munge unless slurmctld, slurmd and munged are already there."""
    if all(shutil.which(d) or Path(f"/usr/sbin/{d}").exists() for d in DAEMONS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LoopbackError(f"SLURM is not installed and cannot be: installing {' '.join(PACKAGES)} "
                            "needs root and apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        result = _run(cmd, env=env)
        if result.returncode != 0:
            raise LoopbackError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def _sbin(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if not found:
        raise LoopbackError(f"{name} not found after installing {' '.join(PACKAGES)}")
    return found


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 (held open together while they are picked)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _node_hardware() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) as slurmd itself counts them (``slurmd -C``)."""
    result = _run([_sbin("slurmd"), "-C"])
    fields = dict(f.split("=", 1) for f in result.stdout.split() if "=" in f)
    try:
        return int(fields["CPUs"]), int(fields["RealMemory"])
    except (KeyError, ValueError) as err:
        raise LoopbackError(f"slurmd -C gave no CPUs/RealMemory: {result.stdout}{result.stderr}") from err


def write_config(folder: Path) -> None:
    """slurm.conf, gres.conf and the fake GPU device in ``folder``."""
    cpus, memory = _node_hardware()
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir(exist_ok=True)
    gpu = folder / "fakegpu0"
    if not gpu.exists():
        os.mknod(gpu, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    f = folder
    ctld_port, slurmd_port = _free_ports(2)
    (f / "gres.conf").write_text(f"AutoDetect=off\nNodeName=localhost Name=gpu File={gpu}\n")
    (f / "slurm.conf").write_text("\n".join([
        "ClusterName=mskseg-loopback",
        "SlurmctldHost=localhost",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={f / 'munge' / 'munge.socket'}",
        f"StateSaveLocation={f / 'state'}",
        f"SlurmdSpoolDir={f / 'spool'}",
        f"SlurmctldPidFile={f / 'slurmctld.pid'}",
        f"SlurmdPidFile={f / 'slurmd.pid'}",
        f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "ReturnToService=2",
        "MinJobAge=300",
        "MailProg=/bin/true",
        "GresTypes=gpu",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} Gres=gpu:1 State=UNKNOWN",
        "PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))


def _start_munge(folder: Path) -> subprocess.Popen:
    """munged in the foreground as user munge, with its own key and socket in ``folder/munge``."""
    munge_dir = folder / "munge"
    munge_dir.mkdir(exist_ok=True)
    munge_dir.chmod(0o711)  # munged: the socket folder must be searchable by all
    key = munge_dir / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    user = pwd.getpwnam("munge")
    for path in (munge_dir, key):
        os.chown(path, user.pw_uid, user.pw_gid)
    key.chmod(0o600)
    cmd = [_sbin("munged"), "--foreground", f"--key-file={key}", f"--socket={munge_dir / 'munge.socket'}",
           f"--pid-file={munge_dir / 'munged.pid'}", f"--log-file={munge_dir / 'munged.log'}",
           f"--seed-file={munge_dir / 'munged.seed'}"]
    return _spawn(cmd, folder / "log" / "munged.out", user="munge")


def _spawn(cmd: list[str], out: Path, env: dict[str, str] | None = None, user: str | None = None) -> subprocess.Popen:
    """Start a daemon in the foreground in its own session; its pid is the daemon's own."""
    extra = {"user": user, "group": user, "extra_groups": []} if user else {}
    with open(out, "ab") as sink:
        return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, **extra)


def _record(folder: Path, procs: dict[str, subprocess.Popen]) -> None:
    pids = {name: {"pid": p.pid, "cmdline": _cmdline(p.pid)} for name, p in procs.items()}
    tmp = folder / "pids.json.tmp"
    tmp.write_text(json.dumps(pids, indent=1))
    tmp.replace(folder / "pids.json")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _wait_for(check, what: str, folder: Path, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                     for p in sorted((folder / "log").glob("*")) if p.is_file())
    raise LoopbackError(f"{what} did not come up within {seconds:.0f} s; logs of {folder}:\n{logs}")


def up(folder: Path | None = None) -> Cluster:
    """Install if needed, configure and start the cluster; return it once the node is idle.

    On any failure the daemons started so far are stopped again before the error is raised."""
    install()
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="mskseg-slurm-", dir="/tmp"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the munge user must reach folder/munge
    cluster = Cluster(folder)
    write_config(folder)
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        raise LoopbackError(f"{DEFAULT_CONF} exists: this machine has a SLURM of its own; the loopback cluster "
                            "would need that path (srun inside jobs reads it), so it is not started")
    env = cluster.env()
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["munged"] = _start_munge(folder)
        _record(folder, procs)
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.symlink_to(cluster.conf)  # removed by down()
        munge_socket = folder / "munge" / "munge.socket"
        _wait_for(munge_socket.exists, "munged", folder)
        procs["slurmctld"] = _spawn([_sbin("slurmctld"), "-D", "-i", "-f", str(cluster.conf)],
                                    folder / "log" / "slurmctld.out", env)
        _record(folder, procs)
        _wait_for(lambda: _run(["scontrol", "ping"], env=env).stdout.count("UP") > 0, "slurmctld", folder)
        procs["slurmd"] = _spawn([_sbin("slurmd"), "-D", "-N", "localhost", "-f", str(cluster.conf)],
                                 folder / "log" / "slurmd.out", env)
        _record(folder, procs)
        _wait_for(lambda: _node_state(env) in {"idle", "mixed", "allocated"}, "slurmd (node idle)", folder)
        _record(folder, procs)  # again: a command line read right after the start can still be empty
    except BaseException:
        down(folder)
        raise
    return cluster


def _node_state(env: dict[str, str]) -> str:
    result = _run(["sinfo", "-h", "-N", "-o", "%T"], env=env)
    state = result.stdout.strip().lower().rstrip("*~#")
    if state.startswith("drain") or state == "down":
        _run(["scontrol", "update", "NodeName=localhost", "State=RESUME"], env=env)
    return state


def down(folder: Path, grace: float = 10.0) -> list[str]:
    """Stop the daemons recorded in ``folder/pids.json`` (slurmd, slurmctld, then munged); return
    what was stopped. A recorded pid whose command line no longer names ``folder`` is left alone."""
    if DEFAULT_CONF.is_symlink() and Path(os.readlink(DEFAULT_CONF)) == folder / "slurm.conf":
        DEFAULT_CONF.unlink()
    record = folder / "pids.json"
    if not record.exists():
        return []
    pids = json.loads(record.read_text())
    if pids.get("slurmctld") and _ours(pids["slurmctld"]["pid"], folder):
        _cancel_all_jobs(Cluster(folder).env(), grace)
    stopped = []
    for name in reversed(DAEMONS):
        entry = pids.get(name)
        if not entry or not _ours(entry["pid"], folder):
            continue
        _signal(entry["pid"], signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(entry["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(entry["pid"]) and _ours(entry["pid"], folder):
            _signal(entry["pid"], signal.SIGKILL)
        stopped.append(name)
    record.unlink()
    return stopped


def _cancel_all_jobs(env: dict[str, str], grace: float) -> None:
    """scancel every job of this cluster (only this one: SLURM_CONF) and wait until none runs, so
    that no job step outlives the daemons."""
    queue = _run(["squeue", "-h", "-o", "%i"], env=env).stdout.split()
    if not queue:
        return
    _run(["scancel", *queue], env=env)
    deadline = time.monotonic() + grace
    while _run(["squeue", "-h", "-o", "%i"], env=env).stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)


def _ours(pid: int, folder: Path) -> bool:
    return _alive(pid) and str(folder) in _cmdline(pid)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--dir", type=Path, help="state folder (required for down)")
    args = parser.parse_args()
    if args.action == "up":
        cluster = up(args.dir)
        print(f"export SLURM_CONF={cluster.conf}")
        print(f"# stop with: python {Path(__file__).name} down --dir {cluster.folder}")
    else:
        if args.dir is None:
            parser.error("down needs --dir")
        print("stopped:", ", ".join(down(args.dir)) or "nothing")


if __name__ == "__main__":
    main()
