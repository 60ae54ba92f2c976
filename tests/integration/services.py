"""Real services for integration tests, on loopback only, torn down on exit (also on errors).

Three context managers, each of which stops everything it started, also when the body raises:

* :func:`postgres_server` -- a throw-away PostgreSQL cluster (``initdb`` + ``postgres``) in
  ``workdir/pgdata``. Yields a :class:`PostgresServer`; ``server.create_database("optuna")`` returns
  a SQLAlchemy URL such as ``postgresql+psycopg2://postgres@127.0.0.1:PORT/optuna``.
* :func:`mlflow_server` -- ``mlflow server`` (uvicorn, 1 worker) on a backend store URI, e.g. one of
  the databases above. Yields its tracking URI ``http://127.0.0.1:PORT``.
* :func:`ray_cluster` -- a real two-node Ray cluster (head + one worker node, each a separate
  ``ray start --block`` process tree). Yields a :class:`RayCluster` with ``.address``,
  ``.wait_for_nodes(n)`` and ``.kill_worker()`` (to simulate losing a machine).

Example::

    with postgres_server(tmp_path / "pg") as pg, ray_cluster(tmp_path / "ray") as cluster:
        optuna_url = pg.create_database("optuna")
        with mlflow_server(pg.create_database("mlflow"), tmp_path / "art", tmp_path / "mlf") as uri:
            ...

This module only uses the standard library (plus the PostgreSQL binaries, and ``mlflow`` / ``ray``
installed in the interpreter running the tests), so importing it never fails; a missing service
binary raises a :class:`RuntimeError` that says what to install.

Things worth knowing (found out by experiment, PostgreSQL 15 / MLflow 3.17 / Ray 2.60):

* PostgreSQL refuses to run as root. Under root the cluster is owned by and run as the ``postgres``
  system user (created with ``useradd --system`` if missing); ``workdir``'s ancestors get the
  search (``o+x``) bit where that user could not traverse them (pytest's ``/tmp/pytest-of-root`` is
  0700; pytest itself resets that mode to 0700 at the start of the next session).
* ``mlflow server`` starts a huey job-execution consumer and a ``/dev/shm`` temp dir by default;
  both are switched off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``). Its default host-header
  allow-list already accepts ``127.0.0.1:*``, so no security options are needed on loopback.
* Ray replaces ``--node-ip-address=127.0.0.1`` with the machine's routable IP and its GCS/raylet
  listen on all interfaces; ``127.0.0.1:PORT`` still works as the cluster address. Ray's worker
  processes call ``setpgid`` and so leave the node's process group (``killpg`` does not reach
  them; they die a few seconds after their raylet) but stay in its *session*: nodes are therefore
  killed by session id, plus any process whose command line names the node's temp dir.
* Ray marks a SIGKILLed node dead only after its health checks fail (default ~15-30 s); the head is
  started with faster health checks so ``wait_for_nodes(1)`` after ``kill_worker()`` takes seconds.
* Ray 2.60 token auth: with ``RAY_AUTH_MODE`` unset, ``ray start --head`` enables it as soon as
  ``~/.ray/auth_token`` exists (any local ``ray.init()`` writes that file), but ``ray start
  --address`` does not, so the worker node cannot join. The nodes run with ``RAY_AUTH_MODE=disabled``;
  drivers connect with or without that variable (``RayCluster.env`` sets it).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RayCluster",
    "find_postgres_bindir",
    "free_ports",
    "mlflow_server",
    "postgres_server",
    "ray_cluster",
]

LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# Generic process helpers
# --------------------------------------------------------------------------------------------


def free_ports(n: int = 1) -> list[int]:
    """Return ``n`` distinct TCP ports that are free on loopback right now.

    All sockets are held open until every port is chosen, so the ports are distinct; there is the
    usual small race between closing them and the service binding its port.
    """
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))  # all interfaces: Ray binds its workers on the routable IP
        except OSError:
            return False
    return True


def _free_port_ranges(count: int, width: int) -> list[tuple[int, int]]:
    """``count`` disjoint ranges of ``width`` currently free ports, below the ephemeral range.

    Used for Ray's ``--min-worker-port``/``--max-worker-port``: by default every node on a host
    draws worker ports from the same 10002-19999 pool.
    """
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low, high = 20000, max(ephemeral_low, 20000 + 4 * width * count) - width
    ranges: list[tuple[int, int]] = []
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(low, high)
        end = start + width - 1
        if any(start <= e and s <= end for s, e in ranges):
            continue
        if all(_port_is_free(p) for p in range(start, end + 1)):
            ranges.append((start, end))
            if len(ranges) == count:
                return ranges
    raise RuntimeError(f"could not find {count} free ranges of {width} TCP ports in {low}-{high}")


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """``{pid: (pgid, sid, cmdline)}`` for every live (non-zombie) process, read from /proc."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            # comm (field 2) may contain spaces/parentheses: split after the last ')'.
            fields = raw[raw.rindex(")") + 2 :].split()
            state, pgid, sid = fields[0], int(fields[2]), int(fields[3])
            if state in ("Z", "X"):
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            cmdline = cmdline.decode(errors="replace")
        except (OSError, ValueError):
            continue
        table[pid] = (pgid, sid, cmdline)
    return table


def _session_members(sid: int, cmdline_marker: str | None = None) -> list[int]:
    """PIDs in session ``sid``, plus any process whose command line contains ``cmdline_marker``."""
    me = os.getpid()
    return [
        pid
        for pid, (_, psid, cmd) in _proc_table().items()
        if pid != me and (psid == sid or (cmdline_marker and cmdline_marker in cmd))
    ]


def _signal_pids(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _kill_tree(
    proc: subprocess.Popen,
    *,
    cmdline_marker: str | None = None,
    grace: float = 5.0,
    first_signal: int = signal.SIGTERM,
) -> list[int]:
    """Stop ``proc`` (started with ``start_new_session=True``) and everything in its session.

    Sends ``first_signal`` to the process group and the session, waits up to ``grace`` seconds,
    then SIGKILLs whatever is left (session members and processes whose command line contains
    ``cmdline_marker``). Returns the PIDs still alive 5 s after the SIGKILL (normally none).
    """
    sid = proc.pid  # start_new_session=True: the child leads its own session and process group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, first_signal)
    _signal_pids(_session_members(sid, cmdline_marker), first_signal)
    deadline = time.monotonic() + grace
    if first_signal != signal.SIGKILL:
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _session_members(sid, cmdline_marker):
                break
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    _signal_pids(_session_members(sid, cmdline_marker), signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while (left := _session_members(sid, cmdline_marker)) and time.monotonic() < deadline:
        _signal_pids(left, signal.SIGKILL)
        time.sleep(0.1)
    return left


def _clean_env(drop_prefixes: Sequence[str] = ()) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not any(k.startswith(p) for p in drop_prefixes)}


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_PG_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or under "
    "/usr/lib/postgresql/*/bin. Install them, e.g. `apt-get install -y postgresql` on Debian/Ubuntu."
)


def find_postgres_bindir() -> Path:
    """Directory holding ``initdb``, ``pg_ctl``, ``postgres`` (and ``pg_isready``, ``createdb``).

    ``initdb`` on PATH wins (symlinks resolved, so Debian's /usr/local/bin links lead to the real
    directory); otherwise the highest version under /usr/lib/postgresql/*/bin.
    """
    needed = ("initdb", "pg_ctl", "postgres", "pg_isready", "createdb")

    def complete(d: Path) -> bool:
        return all(os.access(d / name, os.X_OK) for name in needed)

    on_path = shutil.which("initdb")
    if on_path:
        d = Path(os.path.realpath(on_path)).parent
        if complete(d):
            return d

    def version(d: str) -> tuple[int, ...]:
        nums = re.findall(r"\d+", Path(d).parent.name)
        return tuple(int(n) for n in nums) or (0,)

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if complete(Path(d)):
            return Path(d)
    raise RuntimeError(_PG_INSTALL_HINT)


@dataclass(frozen=True)
class PostgresServer:
    """A running throw-away PostgreSQL server (superuser ``postgres``, trust auth, loopback)."""

    host: str
    port: int
    user: str
    bindir: Path
    pgdata: Path
    log_path: Path

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of database ``dbname``.

        E.g. ``postgresql+psycopg2://postgres@127.0.0.1:5433/optuna``; ``driver="postgresql"`` gives
        a plain libpq URI (also accepted by SQLAlchemy, psycopg2 and psql).
        """
        return f"{driver}://{self.user}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq keyword DSN, e.g. for ``psycopg2.connect(server.dsn("optuna"))``."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (must not exist yet) and return its SQLAlchemy URL."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"invalid database name {name!r}")
        cmd = [str(self.bindir / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user,
               name]
        res = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(("PG",)),
                             timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"createdb {name} failed ({res.returncode}): {res.stderr.strip()}")
        return self.url(name)


def _ensure_postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pass
    nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", nologin, "postgres"],
        check=True, capture_output=True,
    )
    return pwd.getpwnam("postgres")


def _make_traversable_for(path: Path, uid: int, gid: int) -> None:
    """Give ``uid`` search permission on every ancestor of ``path`` (adds o+x / g+x where needed)."""
    for d in reversed(path.resolve().parents):
        st = d.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            os.chmod(d, stat.S_IMODE(st.st_mode) | bit)


@contextlib.contextmanager
def postgres_server(workdir: Path, *, timeout: float = 30.0) -> Iterator[PostgresServer]:
    """Run a fresh PostgreSQL cluster in ``workdir/pgdata`` on 127.0.0.1:<free port>.

    ``initdb`` (superuser ``postgres``, ``--auth=trust``, UTF8, C locale), then ``postgres`` as a
    child process (fsync/synchronous_commit/full_page_writes off; unix socket in ``workdir``;
    log in ``workdir/postgres.log``). Waits up to ``timeout`` s for ``pg_isready``. On exit:
    ``pg_ctl stop -m fast``, then SIGKILL if the postmaster is still there.

    Under root, everything runs as the ``postgres`` system user (PostgreSQL refuses root).
    Raises ``RuntimeError`` if the PostgreSQL binaries are missing or the server does not start.
    """
    bindir = find_postgres_bindir()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    pgdata = workdir / "pgdata"
    log_path = workdir / "postgres.log"
    (port,) = free_ports(1)

    # Unix-socket paths are limited to ~107 bytes; fall back to a short directory under /tmp.
    sockdir = workdir / "pgsock"
    short_sockdir: str | None = None
    if len(str(sockdir / f".s.PGSQL.{port}.lock")) > 100:
        short_sockdir = tempfile.mkdtemp(prefix="kdpg", dir="/tmp")
        sockdir = Path(short_sockdir)
    sockdir.mkdir(exist_ok=True)

    try:
        run_as: dict = {}
        if os.geteuid() == 0:
            pw = _ensure_postgres_user()
            run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            _make_traversable_for(pgdata, pw.pw_uid, pw.pw_gid)
            _make_traversable_for(sockdir / "x", pw.pw_uid, pw.pw_gid)
            pgdata.mkdir(mode=0o700, exist_ok=True)
            for p in (pgdata, sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        else:
            pgdata.mkdir(mode=0o700, exist_ok=True)

        env = _clean_env(("PG",))  # no PGDATA/PGHOST/PGPORT/... from the caller's environment
        env.update(LC_ALL="C", LANG="C")

        def pg(*args: str, **kw) -> subprocess.CompletedProcess:
            return subprocess.run(
                [str(bindir / args[0]), *args[1:]], cwd=workdir, env=env, capture_output=True,
                text=True, timeout=kw.pop("timeout", 120), **run_as, **kw,
            )

        res = pg("initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                 "--no-locale", "--no-sync", "--no-instructions")
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

        def quote(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

        with open(pgdata / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# --- tests/integration/services.py ---\n"
                f"listen_addresses = '{LOOPBACK}'\n"
                f"port = {port}\n"
                f"unix_socket_directories = {quote(str(sockdir))}\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 32MB\nmax_connections = 100\n"
            )

        server = PostgresServer(LOOPBACK, port, "postgres", bindir, pgdata, log_path)
        t0 = time.monotonic()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(pgdata)], cwd=workdir, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                **run_as,
            )
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"postgres exited with {proc.returncode} during startup; "
                                       f"log {log_path}:\n{_tail(log_path)}")
                ready = subprocess.run(
                    [str(bindir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(port), "-U", "postgres",
                     "-t", "2"],
                    env=env, capture_output=True, timeout=10,
                )
                if ready.returncode == 0:
                    break
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError(
                        f"postgres did not accept connections on {LOOPBACK}:{port} "
                        f"within {timeout:.0f} s; "
                        f"log {log_path}:\n{_tail(log_path)}"
                    )
                time.sleep(0.2)
            yield server
        finally:
            if proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    pg("pg_ctl", "stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", "20", timeout=30)
            _kill_tree(proc, grace=5.0, first_signal=signal.SIGTERM)  # no-op if pg_ctl stopped it
    finally:
        if short_sockdir:
            shutil.rmtree(short_sockdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# MLflow tracking server
# --------------------------------------------------------------------------------------------


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with opener.open(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode(errors="replace")


@contextlib.contextmanager
def mlflow_server(
    backend_store_uri: str, artifact_root: Path, workdir: Path, *, timeout: float = 60.0
) -> Iterator[str]:
    """Run ``mlflow server`` (this interpreter's MLflow, uvicorn, 1 worker) on 127.0.0.1:<free port>.

    ``artifact_root`` becomes ``--default-artifact-root file://...`` (clients write artifacts there
    directly). Output goes to ``workdir/mlflow-server.log``; the server's cwd is ``workdir``.
    Waits up to ``timeout`` s for ``GET /health`` (the first start on an empty database runs the
    schema migrations). Yields the tracking URI ``http://127.0.0.1:PORT``. On exit the server's
    whole process group/session gets SIGTERM, then SIGKILL after 5 s.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    artifact_root = Path(artifact_root).resolve()
    artifact_root.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "mlflow-server.log"
    (port,) = free_ports(1)
    uri = f"http://{LOOPBACK}:{port}"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--default-artifact-root", artifact_root.as_uri(),
        "--host", LOOPBACK,
        "--port", str(port),
        "--workers", "1",
    ]
    env = _clean_env(("MLFLOW_TRACKING_", "MLFLOW_REGISTRY_URI"))
    env.update(
        PYTHONUNBUFFERED="1",
        # Default on in MLflow 3.x: a huey consumer process plus a mkdtemp in /dev/shm per start.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode} during startup; "
                                   f"log {log_path}:\n{_tail(log_path)}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                status, _ = _http_get(f"{uri}/health")
                if status == 200:
                    break
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(
                    f"mlflow server did not answer {uri}/health within {timeout:.0f} s; "
                    f"log {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.25)
        yield uri
    finally:
        _kill_tree(proc, grace=5.0)


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------

# Runs in a short-lived subprocess so the test process never connects to Ray. Prints the number of
# ALIVE nodes as JSON once it equals the wanted number or the timeout passes.
_COUNT_NODES = r"""
import json, sys, time
address, want, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

def alive_via_gcs():
    from ray._raylet import GcsClient                      # private but fast, no driver needed
    from ray.core.generated import gcs_pb2
    infos = GcsClient(address=address).get_all_node_info(timeout=5)
    return sum(1 for i in infos.values() if i.state == gcs_pb2.GcsNodeInfo.ALIVE)

def alive_via_driver():                                    # public API fallback
    import ray
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        return sum(1 for n in ray.nodes() if n["Alive"])
    finally:
        ray.shutdown()

count, error, deadline = -1, None, time.monotonic() + timeout
probe = alive_via_gcs
while True:
    try:
        count, error = probe(), None
    except (ImportError, AttributeError, TypeError) as exc:
        if probe is alive_via_gcs:
            probe = alive_via_driver
            continue
        count, error = -1, repr(exc)
    except Exception as exc:                               # e.g. GCS not up yet
        count, error = -1, repr(exc)
    if count == want or time.monotonic() > deadline:
        break
    time.sleep(0.25)
print(json.dumps({"alive": count, "error": error}))
"""


def _ray_cli() -> list[str]:
    """This interpreter's ``ray`` CLI (the venv's, so the cluster runs the same Ray and Python)."""
    exe = Path(sys.executable).parent / "ray"
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "ray.scripts.scripts"]


@dataclass
class _RayNode:
    name: str
    proc: subprocess.Popen
    temp_dir: Path
    log_path: Path


@dataclass
class RayCluster:
    """A running two-node Ray cluster (see :func:`ray_cluster`)."""

    address: str  # "127.0.0.1:PORT" -- the GCS address, for ray.init(address=...) / RAY_ADDRESS
    workdir: Path
    head: _RayNode
    worker: _RayNode | None
    _killed: list[str] = field(default_factory=list)
    _start_worker: object = None  # (name, cpus) -> _RayNode, set by ray_cluster()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for a driver subprocess: ``RAY_ADDRESS`` and ``RAY_AUTH_MODE``.

        E.g. ``subprocess.run(cmd, env={**os.environ, **cluster.env})``; ``ray.init()`` then joins
        this cluster.
        """
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "disabled"}

    def alive_nodes(self, want: int = -1, timeout: float = 0.0) -> int:
        """Number of ALIVE nodes in the GCS; polls up to ``timeout`` s for it to equal ``want``.

        Runs in a short-lived subprocess (about 1 s), so this process never connects to Ray.
        """
        res = subprocess.run(
            [sys.executable, "-c", _COUNT_NODES, self.address, str(want), str(timeout)],
            capture_output=True, text=True, timeout=timeout + 60, env=_ray_env(),
        )
        lines = res.stdout.strip().splitlines()
        if res.returncode != 0 or not lines:
            raise RuntimeError(f"counting Ray nodes failed ({res.returncode}):\n{res.stderr[-3000:]}")
        out = json.loads(lines[-1])
        if out["alive"] < 0:
            raise RuntimeError(f"cannot reach the Ray GCS at {self.address}: {out['error']}")
        return out["alive"]

    def _check_running(self) -> None:
        for node in (self.head, self.worker):
            if node is not None and node.proc.poll() is not None:
                raise RuntimeError(
                    f"Ray {node.name} node (`ray start`) exited with {node.proc.returncode}; "
                    f"log {node.log_path}:\n{_tail(node.log_path)}"
                )

    def wait_for_nodes(self, n: int, timeout: float = 60.0) -> None:
        """Wait until exactly ``n`` nodes are ALIVE (e.g. 2 after start, 1 after :meth:`kill_worker`).

        Fails early if one of the node processes that should be running has exited.
        """
        t0 = time.monotonic()
        alive = -1
        while True:
            self._check_running()
            remaining = timeout - (time.monotonic() - t0)
            try:
                alive = self.alive_nodes(want=n, timeout=max(0.0, min(10.0, remaining)))
            except RuntimeError:
                if remaining <= 0:
                    raise
                alive = -1
            if alive == n:
                return
            if time.monotonic() - t0 >= timeout:
                break
            time.sleep(0.2)
        self._check_running()
        logs = "".join(
            f"\n--- {node.name} ({node.log_path}):\n{_tail(node.log_path, 30)}"
            for node in (self.head, self.worker) if node is not None
        )
        raise TimeoutError(f"{alive} Ray nodes alive after {timeout:.0f} s, wanted {n}.{logs}")

    def add_worker(self, cpus: int = 1, timeout: float = 60.0) -> None:
        """Start a fresh worker node (after :meth:`kill_worker`: a replacement machine joins)."""
        if self.worker is not None:
            raise RuntimeError("a worker node is already running")
        self.worker = self._start_worker(f"worker{len(self._killed) + 1}", cpus)
        self.wait_for_nodes(2, timeout=timeout)

    def worker_pids(self) -> set[int]:
        """The processes of the worker node (its ``ray start``, raylet, agents, Ray workers)."""
        if self.worker is None:
            return set()
        return set(_session_members(self.worker.proc.pid, str(self.worker.temp_dir)))

    def kill_worker(self) -> None:
        """SIGKILL the worker node: its ``ray start`` process, raylet, agents and Ray workers.

        Kills the node's whole session (Ray workers leave the process group but not the session)
        and any process whose command line names the worker's temp dir, then checks none is left.
        The GCS notices the dead node after its health checks fail (a few seconds here).
        """
        if self.worker is None:
            raise RuntimeError("the worker node was already killed")
        node, self.worker = self.worker, None
        left = _kill_tree(node.proc, cmdline_marker=str(node.temp_dir), first_signal=signal.SIGKILL)
        self._killed.append(node.name)
        if left:
            raise RuntimeError(f"processes of the killed Ray worker node survived SIGKILL: {left}")


def _ray_env() -> dict[str, str]:
    """Environment for the nodes and the node-count probe.

    ``RAY_AUTH_MODE`` is pinned: left unset, ``ray start --head`` turns token auth on whenever
    ``~/.ray/auth_token`` exists (any local ``ray.init()`` creates it), while ``ray start --address``
    and a bare ``GcsClient`` do not pick the token up, so the worker could not join.
    """
    env = _clean_env(("RAY_ADDRESS", "RAY_AUTH_TOKEN"))
    env.update(RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1", RAY_AUTH_MODE="disabled")
    return env


def _wait_tcp(port: int, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"`ray start` exited with {proc.returncode}; "
                               f"log {log_path}:\n{_tail(log_path)}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray GCS not listening on {LOOPBACK}:{port} after {timeout:.0f} s; "
                               f"log {log_path}:\n{_tail(log_path)}")
        time.sleep(0.2)


@contextlib.contextmanager
def ray_cluster(
    workdir: Path,
    head_cpus: int = 1,
    worker_cpus: int = 1,
    *,
    object_store_mb: int = 80,
    timeout: float = 90.0,
) -> Iterator[RayCluster]:
    """Start a real Ray cluster of two nodes on this machine: a head and one worker node.

    Each node is its own ``ray start --block`` process in a new session, with its own short temp
    dir under /tmp (Ray's unix sockets live there; removed on exit) and distinct ports (GCS,
    dashboard, dashboard agent, metrics, runtime-env agent, worker-port ranges).
    No dashboard, no GPUs, ``object_store_mb`` MB object stores. ``ray start`` output goes to
    ``workdir/ray-{head,worker}.log``; on an error, the nodes' Ray session logs are copied to
    ``workdir/ray-logs-*``. Returns once both nodes are ALIVE in the GCS.

    On exit both nodes are stopped by session (SIGTERM, SIGKILL after 1 s); ``ray stop`` is never
    used because it would kill every Ray cluster on the machine.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="kdr", dir="/tmp"))
    ray = _ray_cli()
    env = _ray_env()
    # Faster death detection of a SIGKILLed node (defaults: 3 s period x 5 failures, 10 s timeout).
    head_env = dict(env, RAY_health_check_initial_delay_ms="1000", RAY_health_check_period_ms="1000",
                    RAY_health_check_timeout_ms="1000", RAY_health_check_failure_threshold="3")
    object_store = str(object_store_mb * 1024 * 1024)
    common = ["--block", "--node-ip-address", LOOPBACK, "--num-gpus", "0", "--disable-usage-stats",
              "--object-store-memory", object_store]

    (gcs_port, dash_port, h_agent, h_metrics, h_rtenv, w_agent, w_metrics, w_rtenv) = free_ports(8)
    (h_lo, h_hi), (w_lo, w_hi) = _free_port_ranges(2, width=100)
    nodes: list[_RayNode] = []
    cluster: RayCluster | None = None

    def start(name: str, args: list[str], node_env: dict[str, str]) -> _RayNode:
        temp_dir = base / name
        temp_dir.mkdir()
        log_path = workdir / f"ray-{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [*ray, "start", *args, *common, "--temp-dir", str(temp_dir)], cwd=workdir, env=node_env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        node = _RayNode(name, proc, temp_dir, log_path)
        nodes.append(node)
        return node

    ok = False
    try:
        head = start("head", [
            "--head", "--port", str(gcs_port), "--num-cpus", str(head_cpus),
            "--include-dashboard", "false", "--dashboard-port", str(dash_port),
            "--dashboard-agent-listen-port", str(h_agent), "--metrics-export-port", str(h_metrics),
            "--runtime-env-agent-port", str(h_rtenv),
            "--min-worker-port", str(h_lo), "--max-worker-port", str(h_hi),
        ], head_env)
        _wait_tcp(gcs_port, head.proc, head.log_path, timeout)
        address = f"{LOOPBACK}:{gcs_port}"
        def start_worker(name: str, cpus: int, ports=None) -> _RayNode:
            agent, metrics, rtenv = ports or free_ports(3)
            lo, hi = w_lo, w_hi
            while not ports and (lo <= h_hi and h_lo <= hi or lo <= w_hi and w_lo <= hi):
                (lo, hi), = _free_port_ranges(1, width=100)  # not the head's, not the dead one's
            return start(name, [
                "--address", address, "--num-cpus", str(cpus),
                "--dashboard-agent-listen-port", str(agent), "--metrics-export-port", str(metrics),
                "--runtime-env-agent-port", str(rtenv),
                "--min-worker-port", str(lo), "--max-worker-port", str(hi),
            ], env)

        worker = start_worker("worker", worker_cpus, (w_agent, w_metrics, w_rtenv))
        cluster = RayCluster(address, workdir, head, worker, _start_worker=start_worker)
        cluster.wait_for_nodes(2, timeout=timeout)
        yield cluster
        ok = True
    finally:
        if not ok:
            for node in nodes:
                for logs in node.temp_dir.glob("session_*/logs"):
                    with contextlib.suppress(OSError, shutil.Error):
                        shutil.copytree(logs, workdir / f"ray-logs-{node.name}", dirs_exist_ok=True,
                                        ignore=shutil.ignore_patterns("*.sock", "*socket*"))
                    break
        survivors: list[int] = []
        for node in reversed(nodes):  # worker first, then the head
            if cluster is not None and node.name in cluster._killed:
                continue
            survivors += _kill_tree(node.proc, cmdline_marker=str(node.temp_dir), grace=1.0)
        shutil.rmtree(base, ignore_errors=True)
        if survivors and ok:
            raise RuntimeError(f"Ray processes survived SIGKILL: {survivors}")
