"""A PgBouncer in transaction mode in front of the embedded PostgreSQL, for tests and the bench.

Nothing here is used in production. Started from the ``pgbouncer`` binary on PATH or
in /usr/sbin (Debian's package puts it there; ``HOW_TO_GET_IT`` says how to install
it). It listens on a free port of 127.0.0.1 only, with its own ini file in a temporary
folder, trusts the loopback clients it serves (``auth_type = trust``, the one user in
its userlist; the embedded server trusts loopback too), and runs as the embedded
PostgreSQL's unprivileged user when we are root (it refuses to run as root). ``stop``
ends it by its PID.

Its server connections name themselves ``application_name = pgbouncer_pool``, so
that a test can count them in ``pg_stat_activity`` apart from its own connections.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from worker.devtools.embedded import LOOPBACK, SYSTEM_USER, free_port, wait_for_port

APPLICATION_NAME = "pgbouncer_pool"
HOW_TO_GET_IT = "no pgbouncer binary on PATH or in /usr/sbin (Debian: apt-get install pgbouncer)"


def pgbouncer_binary() -> Path | None:
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    candidate = Path("/usr/sbin/pgbouncer")
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


class PgBouncer:
    """One pgbouncer process; ``url(database)`` is how clients reach a database through it."""

    def __init__(
        self, binary: Path, upstream_port: int, *, pool_size: int, user: str = "postgres"
    ) -> None:
        self.binary = binary
        self.upstream_port = upstream_port
        self.pool_size = pool_size
        self.user = user  # the PostgreSQL user clients log in as
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="log-ingest-pgbouncer-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def log_path(self) -> Path:
        return self._dir / "pgbouncer.log"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> None:
        ini = self._dir / "pgbouncer.ini"
        (self._dir / "userlist.txt").write_text(f'"{self.user}" ""\n')
        ini.write_text(
            "[databases]\n"
            f"* = host={LOOPBACK} port={self.upstream_port} application_name={APPLICATION_NAME}\n"
            "[pgbouncer]\n"
            f"listen_addr = {LOOPBACK}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self._dir / 'userlist.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\nreserve_pool_size = 0\n"
            f"logfile = {self.log_path}\n"
        )
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            for path in (self._dir, *self._dir.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._process = subprocess.Popen(
            [str(self.binary), str(ini)], user=self._run_as,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, timeout_s=30, process=self._process)

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL if it lingers), then remove its folder."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)
