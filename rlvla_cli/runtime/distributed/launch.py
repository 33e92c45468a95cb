"""Starting a multi-node run: one ``torchrun`` per node, each running ``rlvla train`` as that node's driver.

Why torchrun and not DeepSpeed's launcher: rlvla needs exactly one process per node (the node driver spawns the
node's trainer ranks and env workers itself), and DeepSpeed's launcher would pin that one process to one GPU
through ``CUDA_VISIBLE_DEVICES`` and reach the other nodes over pdsh/ssh. torchrun runs on each node (by hand,
from Slurm's ``srun``, or from here for localhost), gives a fixed node rank with ``--node-rank`` (the order of
``cluster.hosts``, which the placement's GPU ranks follow), and with ``--max-restarts 0`` a failed driver ends its
agent instead of restarting it. ``rlvla train`` on the first host starts the drivers itself when every host is
this machine (tests, a dry run); otherwise it prints the command for each node.
"""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rlvla_cli.errors import UserError

if TYPE_CHECKING:
    from rlvla_cli.config.cluster import ClusterConfig

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def under_torchrun(environ) -> bool:
    """True in a process torchrun started (its node drivers)."""
    return "TORCHELASTIC_RUN_ID" in environ or ("RANK" in environ and "WORLD_SIZE" in environ)


def master_address(cluster: ClusterConfig) -> str:
    return cluster.master_addr or cluster.hosts[0]


def torchrun_command(cluster: ClusterConfig, node_rank: int, config_path: str | None, overrides: list[str],
                     python: str | None = None) -> list[str]:
    """The command that starts node ``node_rank``'s driver (run it on that node; static rendezvous at
    ``master_addr:master_port``)."""
    launcher = [python, "-m", "torch.distributed.run"] if python else ["torchrun"]
    config = ["--config", config_path] if config_path else []
    return [*launcher, "--nnodes", str(cluster.num_nodes), "--nproc-per-node", "1", "--node-rank", str(node_rank),
            "--master-addr", master_address(cluster), "--master-port", str(cluster.master_port),
            "--max-restarts", "0", "-m", "rlvla_cli", "train", *config, *overrides]


def srun_recipe(cluster: ClusterConfig, config_path: str | None, overrides: list[str]) -> str:
    """A Slurm batch-script line that starts every node's driver (``SLURM_NODEID`` as the node rank)."""
    config = f" --config {shlex.quote(config_path)}" if config_path else ""
    extra = "".join(f" {shlex.quote(o)}" for o in overrides)
    return (f"srun --nodes {cluster.num_nodes} --ntasks-per-node 1 bash -c 'torchrun --nnodes {cluster.num_nodes} "
            f"--nproc-per-node 1 --node-rank $SLURM_NODEID --master-addr $(scontrol show hostnames "
            f"$SLURM_JOB_NODELIST | head -n1) --master-port {cluster.master_port} --max-restarts 0 "
            f"-m rlvla_cli train{config}{extra}'")


def all_local(cluster: ClusterConfig) -> bool:
    """Every node is this machine (``localhost`` / ``127.0.0.1`` / this host name)."""
    names = LOCAL_HOSTS | {socket.gethostname()}
    hosts = cluster.hosts or [cluster.master_addr]
    return all(host in names for host in hosts) and (cluster.master_addr in (None, *names))


def remote_instructions(cluster: ClusterConfig, config_path: str | None, overrides: list[str]) -> UserError:
    """The refusal of a multi-host run started without a launcher, with the command for each node."""
    hosts = cluster.hosts or [f"node{k}" for k in range(cluster.num_nodes)]
    lines = "; ".join(f"on {host}: {shlex.join(torchrun_command(cluster, k, config_path, overrides))}"
                      for k, host in enumerate(hosts))
    return UserError(
        f"a run on {cluster.num_nodes} machines needs one node driver per machine, started by torchrun",
        key="cluster.hosts",
        fix=f"run {lines} (or from a Slurm allocation: {srun_recipe(cluster, config_path, overrides)})",
    )


def launch_local(cluster: ClusterConfig, config_path: Path | None, overrides: list[str],
                 grace_s: float | None = None) -> int:
    """Start every node's torchrun on this machine and wait; signals are passed on to them. After the first
    failure the others get ``grace_s`` (collective timeout + 60 s) to stop on their own, then are terminated.
    Returns the first non-zero exit code (0 when all succeed)."""
    grace = cluster.collective_timeout_s + 60.0 if grace_s is None else grace_s
    config = str(config_path) if config_path else None
    procs = [subprocess.Popen(torchrun_command(cluster, k, config, overrides, python=sys.executable))
             for k in range(cluster.num_nodes)]

    def forward(signum, _frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _wait(procs, grace)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait(procs: list[subprocess.Popen], grace: float) -> int:
    failed_at, code = None, 0
    while any(p.poll() is None for p in procs):
        for proc in procs:
            if proc.poll() not in (None, 0) and code == 0:
                code, failed_at = proc.returncode, time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            break
        time.sleep(0.2)
    for proc in procs:
        proc.wait()
        if code == 0 and proc.returncode != 0:
            code = proc.returncode
    return code
