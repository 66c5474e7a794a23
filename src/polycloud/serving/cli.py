"""The command line of a replica process.

    python -m polycloud.serving --model PATH --name NAME [--host 127.0.0.1] [--port P] [--fd N]
        [--sha256 HEX] [--delay-ms D] [--error-rate R] [--replica-id ID] [--cluster C]
        [--revision R] [--spec-hash H] [--home DIR] [--tls-dir DIR] [--health-port N]
        [--protocol oip-v2|openai] [--runtime-command JSON | --runtime-port N] [--readiness-path P]

Exit status: 0 after a graceful stop (SIGTERM/SIGINT); 3 when a `--runtime-command` exited on its
own; 2 when the replica cannot start (bad flags, a
missing, corrupt or mismatching model, an unusable socket), with one line on stderr saying why.
The identity flags (`--replica-id`, `--cluster`, `--revision`, `--spec-hash`, `--home`) label metrics
and log events, and let the local driver recognise its replicas from their command lines.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from polycloud.errors import PermanentError, PolycloudError
from polycloud.serving.kinds import parse_runtime
from polycloud.serving.server import ServerOptions, run

PROG = "python -m polycloud.serving"
STARTUP_FAILURE = 2


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from e
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _rate(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _fd(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file descriptor number")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m polycloud.serving`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Serve one ONNX model over the Open Inference Protocol v2 (REST)."
    )
    add = parser.add_argument
    add(
        "--model",
        help="the model: an ONNX file, a built-in LLM model file (--protocol openai), "
        "or what a --runtime-command is given as ${MODEL}; required unless --runtime-command is given",
    )
    add("--name", required=True, help="the model name in URLs (the Service's name)")
    add("--host", default="127.0.0.1", help="address to bind (ignored with --fd)")
    add("--port", type=_port, default=8000, help="port to bind (informational with --fd)")
    add("--fd", type=_fd, help="serve on this inherited, bound and listening socket")
    add("--sha256", help="expected sha256 of the model file (hex); a mismatch refuses to start")
    add("--delay-ms", type=_non_negative, default=0.0, help="simulated network delay of every /v2 answer")
    add("--error-rate", type=_rate, default=0.0, help="fraction of inference requests answered 500")
    add("--replica-id", default="", help="this replica's id (logs)")
    add("--cluster", default="", help="the cluster it belongs to (metrics, logs)")
    add("--revision", default="", help="the service revision it serves (metrics, model version)")
    add("--spec-hash", default="", help="hash of the desired spec it was started from (logs)")
    add("--home", default="", help="the polycloud home of the driver that started it (logs)")
    add(
        "--tls-dir",
        type=Path,
        help="serve mutual TLS with cert.pem, key.pem and ca.pem of this folder (reloaded when renewed)",
    )
    add(
        "--health-port",
        type=_port,
        help="also answer GET /v2/health/live and /v2/health/ready, and nothing else, in plain HTTP on "
        "this port of --host (for probes without a client certificate, such as the kubelet's)",
    )
    add("--protocol", choices=("oip-v2", "openai"), default="oip-v2", help="the API served (default oip-v2)")
    add(
        "--runtime-command",
        help='run this server (a JSON argv, e.g. \'["python", "server.py", "--port", "${PORT}"]\') on a '
        "loopback port and relay to it (the replica's port, TLS and control routes stay this process's)",
    )
    add(
        "--runtime-port",
        type=_port,
        help="relay to a server started by someone else on this port of 127.0.0.1 "
        "(a container beside this one)",
    )
    add("--readiness-path", default="/health", help="the runtime's path that answers 200 once ready")
    return parser


def parse_options(argv: Sequence[str] | None = None) -> ServerOptions:
    """Parse the command line (exits with status 2 and a usage message on bad flags).

    Args:
        argv: The arguments without the program name; `sys.argv[1:]` when None.
    """
    args = build_parser().parse_args(argv)
    if not args.name.strip():
        build_parser().error("--name must not be empty")
    runtime = None
    if args.runtime_command is not None:
        try:
            runtime = parse_runtime(args.runtime_command)
        except PermanentError as e:
            build_parser().error(str(e))
    elif args.model is None and args.runtime_port is None:
        build_parser().error("--model is required unless --runtime-command or --runtime-port is given")
    return ServerOptions(
        model=args.model,
        name=args.name,
        host=args.host,
        port=args.port,
        fd=args.fd,
        sha256=args.sha256,
        delay_ms=args.delay_ms,
        error_rate=args.error_rate,
        replica_id=args.replica_id,
        cluster=args.cluster,
        revision=args.revision,
        spec_hash=args.spec_hash,
        home=args.home,
        tls_dir=args.tls_dir,
        health_port=args.health_port,
        protocol=args.protocol,
        runtime=runtime,
        readiness_path=args.readiness_path,
        runtime_port=args.runtime_port,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run a replica; return the process exit status.

    Args:
        argv: The arguments without the program name; `sys.argv[1:]` when None.
    """
    options = parse_options(argv)
    try:
        return run(options)
    except PolycloudError as e:
        message = " ".join(str(e).split())
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        return STARTUP_FAILURE
