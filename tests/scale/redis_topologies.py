"""Private Redis topologies for the scale tests: a three-master Cluster and a Sentinel-watched
master with one replica. Every process runs on 127.0.0.1, on ports picked here, in a
directory of the test's own, and is stopped by the PID it was started with."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["RedisCluster", "RedisSentinel", "distinct_free_ports", "port_pair_free"]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_pair_free() -> int:
    """A port P with P and P + 10000 (the Cluster bus) free, below the ephemeral range."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair")


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different ports from :func:`port_pair_free` (two random picks may agree)."""
    ports: list[int] = []
    while len(ports) < count:
        port = port_pair_free()
        if port not in ports:
            ports.append(port)
    return ports


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _synced(port: int) -> bool:
    info = _cli("-p", str(port), "info", "replication")
    return "connected_slaves:1" in info and "state=online" in info


def _cli(*args: str, timeout: float = 20.0) -> str:
    return subprocess.run(
        ["redis-cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    ).stdout


class _Processes:
    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server and redis-cli are needed")
        self.directory = directory
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def _spawn(self, port: int, *args: str) -> None:
        log = (self.directory / f"redis-{port}.log").open("wb")
        self.processes[port] = subprocess.Popen(
            ["redis-server", *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
        )
        deadline = time.monotonic() + 10
        while not _ping(port):
            if self.processes[port].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis on {port} did not start")
            time.sleep(0.02)

    def logs(self, tail: int = 2000) -> str:
        """The end of every process's log, for an error that says why."""
        return "\n".join(
            f"== {path.name}\n{path.read_text(errors='replace')[-tail:]}"
            for path in sorted(self.directory.glob("redis-*.log"))
        )

    def stop(self, port: int | None = None) -> None:
        for p in [port] if port is not None else list(self.processes):
            process = self.processes.pop(p, None)
            if process is None:
                continue
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class RedisCluster(_Processes):
    """Three masters, no replicas, all 16384 slots covered."""

    def start(self) -> None:
        self.ports = distinct_free_ports(3)
        for port in self.ports:
            self._spawn(
                port,
                "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            )  # fmt: skip
        out = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"cluster create failed: {out.stdout}{out.stderr}")
        deadline = time.monotonic() + 30
        while not all(
            "cluster_state:ok" in _cli("-p", str(p), "cluster", "info") for p in self.ports
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("cluster did not become ok")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def keys_per_node(self, pattern: str) -> list[int]:
        return [
            len([k for k in _cli("-p", str(p), "--scan", "--pattern", pattern).split() if k])
            for p in self.ports
        ]


class RedisSentinel(_Processes):
    """A master, a replica and one Sentinel (quorum 1) watching service ``mymaster``."""

    service = "mymaster"

    def start(self) -> None:
        # Setting up is not what the tests test: a topology that did not come up (a port
        # taken between its check and its use, a sync stalled on a loaded machine) is
        # stopped and started once more on fresh ports, with its logs in the error if
        # that fails too.
        try:
            self._start_once()
        except RuntimeError:
            self.stop()
            self._start_once()

    def _start_once(self) -> None:
        self.master_port, self.replica_port, self.sentinel_port = distinct_free_ports(3)
        # No pause before the full sync (Redis waits 5 s by default for more replicas).
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--repl-diskless-sync-delay", "0"]  # fmt: skip
        self._spawn(self.master_port, "--port", str(self.master_port), *common,
                    "--dir", str(self.directory))  # fmt: skip
        self._spawn(self.replica_port, "--port", str(self.replica_port), *common,
                    "--dir", str(self.directory),
                    "--replicaof", "127.0.0.1", str(self.master_port))  # fmt: skip
        self._wait("the replica to sync", lambda: _synced(self.master_port))
        # The Sentinel comes last: its first look at the master finds the replica already
        # there (it looks again only every 10 s), so a failover has one to promote.
        conf = self.directory / f"sentinel-{self.sentinel_port}.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
        )
        self._spawn(self.sentinel_port, str(conf), "--sentinel")
        self._wait("the Sentinel to know the replica", self._sentinel_knows_replica)

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.1)

    def _sentinel_knows_replica(self) -> bool:
        lines = _cli("-p", str(self.sentinel_port), "sentinel", "replicas", self.service).split()
        # Listed by its port, up (flags "slave" alone: not s_down, not disconnected) and
        # linked to the master.
        return (
            str(self.replica_port) in lines
            and "slave" in lines
            and "master-link-status" in lines
            and lines[lines.index("master-link-status") + 1] == "ok"
        )

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.service}/0"

    def master(self) -> int:
        out = _cli("-p", str(self.sentinel_port), "sentinel", "get-master-addr-by-name",
                   self.service).split()  # fmt: skip
        return int(out[1])

    def failover(self, timeout: float = 30.0) -> int:
        """Promote the replica (``SENTINEL FAILOVER``); the new master's port."""
        old = self.master()
        _cli("-p", str(self.sentinel_port), "sentinel", "failover", self.service)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.master()
            # Done only once the old master has become a replica too: until then it still
            # accepts writes, which replication throws away when it is demoted.
            if (
                new != old
                and "role:master" in _cli("-p", str(new), "info", "replication")
                and "role:slave" in _cli("-p", str(old), "info", "replication")
            ):
                return new
            time.sleep(0.1)
        raise RuntimeError("failover did not complete")
