"""The wrapper every local job attempt runs in: `python jobrunner.py --home H ... -- ARGV`.

Run by file path with the standard library only (no polycloud import, so it starts fast). Its command
line names the home, cluster, job, revision and attempt, which is how the local driver finds job
processes after a control-plane crash. It runs ARGV as a child in its own process group, ignores the
stop signals itself (the whole group receives them; the job decides what to do), and records the
job's exit status atomically in the `--exit-file`, so the status survives the control plane.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--name value` options before `--`, and the job's argv after it."""
    if "--" not in argv:
        raise SystemExit("usage: jobrunner.py --exit-file F [--name value ...] -- ARGV...")
    cut = argv.index("--")
    head, command = argv[:cut], argv[cut + 1 :]
    options = {head[i][2:]: head[i + 1] for i in range(0, len(head) - 1, 2) if head[i].startswith("--")}
    if not command or "exit-file" not in options:
        raise SystemExit("jobrunner.py needs --exit-file and a command after --")
    return options, command


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A handler, not SIG_IGN: handlers are reset by exec, so the job itself gets the default."""


def main(argv: list[str]) -> int:
    options, command = _parse(argv)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _ignore)
    try:
        child = subprocess.Popen(command)
    except OSError as e:
        print(f"polycloud: cannot start {command[0]!r}: {e}", file=sys.stderr, flush=True)
        code = 127
    else:
        code = child.wait()
    _write_atomically(options["exit-file"], f"{code}\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
