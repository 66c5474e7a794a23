"""What a polycloud home holds for the processes that share it: run files (where a running control plane
or server says it is), the locks that keep one `up` per home and one server per SQLite database, and
the admin token. Written by `server/`, read by `client/` and the CLI; below both, so neither imports
the other.

A home holds the audit trail, token hashes and secret ciphertexts: it is the user's alone. Processes
run with umask 077 (`keep_private`, at every entry point), the home is created 0700 (`ensure_home`),
and the files here are created 0600 whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from polycloud.errors import ConflictError

PRIVATE_UMASK = 0o077
"""Files 0600 and folders 0700 for whatever a polycloud process, or a child of it, creates."""
RUNFILE = "control-plane.json"
LOCKFILE = "control-plane.lock"
TOKENFILE = "admin.token"
SERVERS_DIR = "servers"
PROC = Path("/proc")
"""Linux's process table: `pid_alive` reads a process's state there when it is mounted."""


@dataclass(frozen=True)
class RunInfo:
    pid: int
    api_url: str
    gateway_url: str


def keep_private() -> None:
    """Make everything this process and its children create readable by this user only (entry points)."""
    os.umask(PRIVATE_UMASK)


def ensure_home(home: Path) -> Path:
    """Create `home` 0700 when missing; tighten it when it is ours and others may enter it (an older
    polycloud made it 0755, and the files below it 0644)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = home.stat()
    if found.st_uid == os.getuid() and found.st_mode & 0o077:
        home.chmod(0o700)
    return home


def private_open(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """A descriptor of `path`, created 0600 when missing (never readable by others, whatever the umask)."""
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


def read_runinfo(home: Path, name: str = RUNFILE) -> RunInfo | None:
    """The run file's content if it names a live process, else None."""
    try:
        data = json.loads((home / name).read_text())
        info = RunInfo(
            pid=int(data["pid"]), api_url=str(data["api_url"]), gateway_url=str(data["gateway_url"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid_alive(info.pid) else None


def write_runinfo(home: Path, info: RunInfo, name: str = RUNFILE) -> None:
    """Publish `info` as `home/name`, atomically."""
    path = home / name
    ensure_home(home)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with os.fdopen(private_open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
        f.write(json.dumps(asdict(info)))
    tmp.replace(path)


def remove_runinfo(home: Path, name: str = RUNFILE) -> None:
    with contextlib.suppress(FileNotFoundError):
        (home / name).unlink()


def server_runfile(server_id: str) -> str:
    """Where `polycloud server` SERVER_ID publishes itself under the home (several may share one)."""
    return f"{SERVERS_DIR}/{server_id}.json"


def read_any_runinfo(home: Path) -> RunInfo | None:
    """The embedded control plane of `home`, else any live `polycloud server` of it."""
    found = read_runinfo(home)
    if found is not None:
        return found
    for path in sorted((home / SERVERS_DIR).glob("*.json")):
        info = read_runinfo(home, path.relative_to(home).as_posix())
        if info is not None:
            return info
    return None


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie does not: a control plane started in the background by this very
    process (as `apply` and `demo` do) stays a zombie after it exits until its parent reaps it.

    On Linux the state is read from /proc as psutil reads it, without importing psutil (a few dozen
    milliseconds of every CLI command that looks for a control plane); elsewhere psutil answers.
    """
    if (PROC / "self").is_dir():
        try:
            stat = (PROC / str(pid) / "stat").read_text()
        except FileNotFoundError:
            return False
        except PermissionError:
            return True
        # `pid (comm) state ...`: the command name may hold spaces and parentheses, the state follows.
        return stat.rpartition(")")[2].split()[:1] != ["Z"]
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


@contextlib.contextmanager
def exclusive(home: Path) -> Iterator[None]:
    """Hold the home's control-plane lock: one control plane per home on this machine."""
    ensure_home(home)
    with os.fdopen(private_open(home / LOCKFILE), "r+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            running = read_runinfo(home)
            where = f" (pid {running.pid}, API {running.api_url})" if running else ""
            raise ConflictError(f"a control plane already runs for {home}{where}") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive_sqlite(database_url: str) -> Iterator[None]:
    """Hold the lock of a SQLite database's server (none is needed for PostgreSQL).

    Raises:
        ConflictError: Another server runs on this SQLite file.
    """
    if not database_url.startswith("sqlite:///"):
        yield
        return
    database = Path(database_url.removeprefix("sqlite:///"))
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.fdopen(private_open(database.with_name(database.name + ".server.lock")), "r+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"another polycloud server already runs on the SQLite database {database}; SQLite allows "
                "one server: for several, use PostgreSQL (POLYCLOUD_DATABASE_URL=postgresql+psycopg://...)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def write_token(home: Path, token: str) -> Path:
    path = home / TOKENFILE
    ensure_home(home)
    with os.fdopen(private_open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
        f.write(token + "\n")
    return path


def read_token(home: Path) -> str | None:
    try:
        return (home / TOKENFILE).read_text().strip() or None
    except OSError:
        return None


def config_dir() -> Path:
    """The user's polycloud config folder: $XDG_CONFIG_HOME/polycloud, else ~/.config/polycloud."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "polycloud"


def write_private(path: Path, text: str) -> Path:
    """Write `path` atomically, 0600, in a folder made 0700 (sign-in credentials and the like)."""
    ensure_home(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    with os.fdopen(private_open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
        f.write(text)
    tmp.replace(path)
    return path
