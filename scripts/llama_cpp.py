#!/usr/bin/env python3
"""Ensure llama.cpp's OpenAI-compatible server is available and print the Python that runs it.

Usage::

    python scripts/llama_cpp.py    # prints e.g. /root/.cache/polycloud/llama-cpp-python-0.3.36/bin/python

The end-to-end tests run llama.cpp's server (`python -m llama_cpp.server`, from the PyPI package
`llama-cpp-python`) as a third-party model server. That package ships only a source distribution on
PyPI, and building it compiles llama.cpp (several minutes on two cores), so the build is kept in a
per-machine virtualenv::

    ${XDG_CACHE_HOME:-~/.cache}/polycloud/llama-cpp-python-<version>/

* If that virtualenv exists and `import llama_cpp.server` works in it, the script prints its interpreter
  and exits 0 at once.
* Otherwise it builds one: `cmake` and a C++ compiler are installed with apt-get when missing (as root
  only), a fresh virtualenv is made in a temporary folder beside the final one, pip builds
  `llama-cpp-python[server]==<version>` from the source distribution for a plain CPU (no BLAS, CUDA,
  Metal or multimodal library; no tests, tools or examples), the import is checked, and the folder is
  renamed into place in one step, so a killed build never leaves a half virtualenv behind.
* A file lock (`<cache>/polycloud/llama-cpp-python-<version>.lock`) makes concurrent callers, such as
  pytest-xdist workers, wait for one build instead of each starting its own.

Progress goes to stderr and the full build log to `<cache>/polycloud/llama-cpp-python-<version>.log`;
stdout carries the interpreter's path alone. On failure the script exits 1 with a message.

From Python (the file cannot be imported as `llama_cpp`, the name of the package it installs), load it
by path and call `ensure_llama_cpp()`::

    spec = importlib.util.spec_from_file_location("polycloud_llama_cpp", "scripts/llama_cpp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    python = module.ensure_llama_cpp()     # pathlib.Path of the interpreter; raises LlamaCppError

Environment: `POLYCLOUD_CACHE_DIR` replaces `${XDG_CACHE_HOME:-~/.cache}/polycloud` when set.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Final

# The one llama-cpp-python release the tests run (it vendors its own llama.cpp).
LLAMA_CPP_PYTHON_VERSION: Final = "0.3.36"

# The server's dependencies (the package's `[server]` extra), pinned to the versions it was tested with
# so that a new release of one of them cannot change the server under the tests.
SERVER_REQUIREMENTS: Final[tuple[str, ...]] = (
    f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON_VERSION}",
    "fastapi==0.165.0",
    "uvicorn==0.55.0",
    "sse-starlette==3.7.1",
    "starlette-context==0.3.6",
    "pydantic-settings==2.16.3",
    "PyYAML==6.0.4",
)

# A plain, portable CPU build: no accelerator or BLAS backend, no multimodal (mtmd/llava) library, none
# of llama.cpp's tests, tools, examples or server binary, no OpenSSL/curl downloader. GGML_NATIVE=OFF
# keeps the library from being tied to this exact CPU (ggml's x86-64 defaults then enable
# SSE4.2/AVX/AVX2/FMA/F16C); the models the tests use are tiny, so nothing is lost.
CMAKE_ARGS: Final[tuple[str, ...]] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_BLAS=OFF",
    "-DGGML_CUDA=OFF",
    "-DGGML_METAL=OFF",
    "-DGGML_VULKAN=OFF",
    "-DGGML_HIP=OFF",
    "-DGGML_OPENCL=OFF",
    "-DGGML_RPC=OFF",
    "-DGGML_CCACHE=OFF",
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)

BUILD_PARALLEL_LEVEL: Final = "2"
_MARKER: Final = "polycloud-llama-cpp.json"
_IMPORT_CHECK: Final = "import llama_cpp, llama_cpp.server; print(llama_cpp.__version__)"
_PROGRESS_EVERY_S: Final = 30.0
_BUILD_ENV: Final = "POLYCLOUD_LLAMA_CPP_BUILD"

Log = Callable[[str], None]


class LlamaCppError(RuntimeError):
    """llama-cpp-python could not be made available."""


def _stderr(message: str) -> None:
    print(f"[llama_cpp] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """The folder the virtualenv, its lock and its build log live in."""
    override = os.environ.get("POLYCLOUD_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "polycloud"


def venv_dir() -> Path:
    """Where the llama-cpp-python virtualenv of the pinned version is kept."""
    return cache_dir() / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}"


def venv_python(venv: Path) -> Path:
    """The interpreter of `venv`."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _is_ready(venv: Path) -> bool:
    """Whether `venv` is a finished build in which `import llama_cpp.server` works."""
    python = venv_python(venv)
    if not python.exists() or not (venv / _MARKER).is_file():
        return False
    try:
        done = subprocess.run(
            [str(python), "-c", _IMPORT_CHECK],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == LLAMA_CPP_PYTHON_VERSION


def ensure_llama_cpp(log: Log = _stderr) -> Path:
    """Return the interpreter of a virtualenv that runs `python -m llama_cpp.server`, building it if needed.

    Raises `LlamaCppError` when the build fails.
    """
    venv = venv_dir()
    if _is_ready(venv):
        return venv_python(venv)
    root = venv.parent
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f"{venv.name}.lock"
    with open(lock_path, "a+b") as lock:
        if not _try_lock(lock):
            log(f"another process is building {venv.name}; waiting for its lock ({lock_path})")
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if _is_ready(venv):  # built by the process we waited for
                return venv_python(venv)
            _build(venv, log)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return venv_python(venv)


def _try_lock(lock: IO[bytes]) -> bool:
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _build(venv: Path, log: Log) -> None:
    """Build the virtualenv in a temporary folder and rename it to `venv` (the lock is held)."""
    started = time.monotonic()
    root = venv.parent
    _remove_leftovers(venv, log)
    _ensure_toolchain(log)
    build_log = root / f"{venv.name}.log"
    tmp = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", suffix=".tmp", dir=root))
    try:
        log(f"creating a virtualenv for llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} in {tmp}")
        _run(
            [sys.executable, "-m", "venv", str(tmp)],
            log=log,
            what=f"{sys.executable} -m venv (Debian's python3 needs `apt-get install python3-venv`)",
        )
        python = venv_python(tmp)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.pop("PIP_REQUIRE_VIRTUALENV", None)
        env["CMAKE_ARGS"] = " ".join(CMAKE_ARGS)
        env["CMAKE_BUILD_PARALLEL_LEVEL"] = BUILD_PARALLEL_LEVEL
        env["FORCE_CMAKE"] = "1"
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        env[_BUILD_ENV] = str(tmp)
        scratch = tmp / ".build-tmp"  # pip's and cmake's temporary files, removed with the folder
        scratch.mkdir()
        env["TMPDIR"] = str(scratch)
        log(
            f"building llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} from source for the CPU "
            f"(several minutes on 2 cores; full log: {build_log})"
        )
        _pip_install(python, env, build_log, log)
        done = subprocess.run(
            [str(python), "-c", _IMPORT_CHECK],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0 or done.stdout.strip() != LLAMA_CPP_PYTHON_VERSION:
            raise LlamaCppError(
                "the build finished but `import llama_cpp.server` fails in it:\n"
                + (done.stderr.strip() or done.stdout.strip())
            )
        shutil.rmtree(scratch, ignore_errors=True)
        _relocate_scripts(tmp, venv)
        marker = {
            "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
            "requirements": list(SERVER_REQUIREMENTS),
            "cmake_args": list(CMAKE_ARGS),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.rename(tmp, venv)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"built {venv} in {time.monotonic() - started:.0f} s")


def _remove_leftovers(venv: Path, log: Log) -> None:
    """Remove a broken virtualenv and the temporary folders of builds that were killed."""
    root = venv.parent
    for stale in root.glob(f".{venv.name}.*.tmp"):
        log(f"removing the leftover of an interrupted build: {stale}")
        _kill_build_processes(stale, log)
        shutil.rmtree(stale, ignore_errors=True)
    if venv.exists() or venv.is_symlink():
        log(f"{venv} is incomplete or broken (`import llama_cpp.server` fails there); rebuilding it")
        trash = root / f".{venv.name}.{os.getpid()}.broken.tmp"
        os.rename(venv, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _kill_build_processes(tmp: Path, log: Log) -> None:
    """Kill what is left running of a build whose caller was SIGKILLed (pip, cmake, the compilers).

    Every process of a build carries `POLYCLOUD_LLAMA_CPP_BUILD=<its temporary folder>` in its
    environment, so only those are found (Linux's /proc; elsewhere nothing is done).
    """
    mark = f"{_BUILD_ENV}={tmp}".encode()
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
                log(f"killed process {entry.name}, left running by the interrupted build")


def _ensure_toolchain(log: Log) -> None:
    """Install cmake and a C/C++ compiler with apt-get when one is missing and this process is root."""
    missing = [tool for tool in ("cmake", "c++", "cc") if shutil.which(tool) is None]
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise LlamaCppError(
            f"building llama-cpp-python needs {', '.join(missing)}; install cmake and a C++ compiler "
            "(e.g. `apt-get install cmake g++`) and run this again"
        )
    log(f"{', '.join(missing)} missing: installing cmake, g++ and make with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run([apt, "update"], log=log, what="apt-get update", env=env)
    _run(
        [apt, "install", "-y", "--no-install-recommends", "cmake", "g++", "make"],
        log=log,
        what="apt-get install cmake g++ make",
        env=env,
    )


def _run(command: Sequence[str], *, log: Log, what: str, env: dict[str, str] | None = None) -> None:
    """Run a short command, its output going to stderr; raise LlamaCppError when it fails."""
    try:
        done = subprocess.run(
            list(command), stdin=subprocess.DEVNULL, stdout=sys.stderr, env=env, check=False
        )
    except OSError as exc:
        raise LlamaCppError(f"{what} could not start: {exc}") from exc
    if done.returncode != 0:
        raise LlamaCppError(f"{what} failed with exit code {done.returncode}")


def _pip_install(python: Path, env: dict[str, str], build_log: Path, log: Log) -> None:
    """pip-install the server into the virtualenv, logging to `build_log` and reporting progress."""
    command = [
        str(python),
        "-m",
        "pip",
        "install",
        "--verbose",
        "--no-input",
        "--cache-dir",
        str(_pip_cache()),
        "--no-binary",
        "llama-cpp-python",
        *SERVER_REQUIREMENTS,
    ]
    last_line = [""]
    with open(build_log, "w", encoding="utf-8", errors="replace") as out:
        out.write(f"$ CMAKE_ARGS='{env['CMAKE_ARGS']}' {' '.join(command)}\n")
        out.flush()
        # pip, its build backend, cmake and the compilers run in a process group of their own, so that
        # an interrupted build (exception, Ctrl-C, SIGTERM) stops all of them, not pip alone.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        stop = threading.Event()
        started = time.monotonic()

        def report() -> None:
            while not stop.wait(_PROGRESS_EVERY_S):
                log(f"  {time.monotonic() - started:4.0f} s  {last_line[0][:150]}")

        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                stripped = line.strip()
                if stripped:
                    last_line[0] = stripped
            code = process.wait()
        except BaseException:
            _stop_group(process)
            raise
        finally:
            stop.set()
            reporter.join()
    if code != 0:
        tail = build_log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        raise LlamaCppError(
            f"pip could not build llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} (exit code {code}); "
            f"the end of {build_log}:\n" + "\n".join(tail)
        )


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Stop a build's process group: SIGINT first (pip then cleans up after itself), SIGKILL after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is still there
    process.wait()


def _pip_cache() -> Path:
    """pip's cache for these builds: pip keys the wheels it builds on the source alone, so this folder is
    named after the build flags too, and a change of CMAKE_ARGS cannot bring back a wheel built without it.
    A virtualenv removed by hand is rebuilt from this cache in seconds."""
    key = json.dumps([LLAMA_CPP_PYTHON_VERSION, CMAKE_ARGS, platform.python_version()]).encode()
    return cache_dir() / f"pip-cache-{hashlib.sha256(key).hexdigest()[:12]}"


def _relocate_scripts(tmp: Path, venv: Path) -> None:
    """Point the scripts of the virtualenv (shebangs, activate) at its final folder."""
    old, new = str(tmp).encode(), str(venv).encode()
    bindir = venv_python(tmp).parent
    for path in bindir.iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data and b"\0" not in data[:1024]:
            path.write_bytes(data.replace(old, new))
    cfg = tmp / "pyvenv.cfg"
    if cfg.is_file():
        cfg.write_bytes(cfg.read_bytes().replace(old, new))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # SIGTERM (a test runner's or CI's stop) unwinds like Ctrl-C, so the build's processes and its
    # temporary folder are removed too.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if args:
        print(f"usage: {Path(sys.argv[0]).name} (takes no arguments)", file=sys.stderr)
        return 2
    try:
        python = ensure_llama_cpp()
    except LlamaCppError as exc:
        print(f"[llama_cpp] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[llama_cpp] interrupted; the partial build was removed", file=sys.stderr)
        return 130
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
