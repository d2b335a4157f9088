"""A private PostgreSQL cluster for the test session: initdb, start on 127.0.0.1, stop.

Returns None with a reason when no server can be started, so PostgreSQL tests skip
with that reason printed instead of failing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass
class PgServer:
    datadir: str
    port: int
    bindir: str
    owner: str | None

    @property
    def base_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def create_database(self, name: str) -> str:
        _run(
            self,
            [
                f"{self.bindir}/createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
        )
        return f"{self.base_url}/{name}"

    def stop(self) -> None:
        _run(
            self,
            [f"{self.bindir}/pg_ctl", "-D", self.datadir, "-m", "immediate", "stop"],
            check=False,
        )
        shutil.rmtree(self.datadir, ignore_errors=True)


def _run(
    server: PgServer | None, cmd: list[str], owner: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    owner = owner or (server.owner if server else None)
    if owner:
        cmd = ["runuser", "-u", owner, "--", *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> tuple[PgServer | None, str]:
    """Start a throwaway cluster; returns (server, "") or (None, why not)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        return None, "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)"
    bindir = os.path.dirname(bins[-1])
    owner = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no 'postgres' user to run initdb"
        owner = "postgres"
    datadir = tempfile.mkdtemp(prefix="llmops-pg-")
    if owner:
        shutil.chown(datadir, owner, owner)
        os.chmod(datadir, 0o700)
    server = PgServer(datadir=datadir, port=_free_port(), bindir=bindir, owner=owner)
    try:
        _run(
            server,
            [
                f"{bindir}/initdb",
                "-D",
                datadir,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {server.port} -k {datadir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        _run(
            server,
            [
                f"{bindir}/pg_ctl",
                "-D",
                datadir,
                "-o",
                opts,
                "-w",
                "-l",
                f"{datadir}/server.log",
                "start",
            ],
        )
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        shutil.rmtree(datadir, ignore_errors=True)
        return None, f"could not start PostgreSQL: {detail.strip()[:300]}"
    return server, ""
