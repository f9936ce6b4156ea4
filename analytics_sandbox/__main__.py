"""`python -m analytics_sandbox`: serve both APIs in the foreground until SIGINT/SIGTERM.

Prints the base URLs and the `export SOURCES__...=` lines that point the dlt sources at it (also
written to `--env-file` when given). Drive it from another process with `SandboxClient(url)`.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .config import FEEDBACK_GENERATIONS, SandboxConfig
from .sandbox import Sandbox


def _parser() -> argparse.ArgumentParser:
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m analytics_sandbox",
        description="Serve a local stand-in for the audience and feedback APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind, 0 for any free one (default 8765)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--people", type=int, default=defaults.people)
    parser.add_argument("--segments", type=int, default=defaults.segments)
    parser.add_argument("--members-per-segment", type=int, default=defaults.members_per_segment)
    parser.add_argument("--surveys", type=int, default=defaults.surveys)
    parser.add_argument("--responses", type=int, default=defaults.responses)
    parser.add_argument(
        "--feedback-generation",
        choices=FEEDBACK_GENERATIONS,
        default=defaults.feedback_generation,
        help="serve the feedback API as the seed describes it or as current servers do (contacts)",
    )
    parser.add_argument(
        "--unlicensed",
        action="store_true",
        help="current generation: the contacts endpoints answer 403 (no Enterprise licence)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="SECONDS", help="delay of every API request"
    )
    parser.add_argument("--env-file", type=Path, metavar="PATH", help="write the export lines to this file")
    return parser


def export_lines(env: dict[str, str]) -> list[str]:
    """Shell `export` lines for the settings."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until interrupted; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = SandboxConfig(
            seed=args.seed,
            people=args.people,
            segments=args.segments,
            members_per_segment=args.members_per_segment,
            surveys=args.surveys,
            responses=args.responses,
            feedback_generation=args.feedback_generation,
            feedback_licensed=not args.unlicensed,
        )
        sandbox = Sandbox(config, host=args.host, port=args.port)
        sandbox.set_latency(args.latency)
    except ValueError as error:
        parser.error(str(error))
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        sandbox.start()
    except OSError as error:
        print(f"cannot bind {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    lines = export_lines(sandbox.env())
    print(f"Sandbox serving both APIs at {sandbox.url} (control: {sandbox.url}/_control/health)")
    print(f"  audience: {sandbox.audience_base_url}")
    print(f"  feedback: {sandbox.feedback_base_url}")
    print("\n".join(lines), flush=True)
    if args.env_file is not None:
        args.env_file.write_text("\n".join(lines) + "\n")
        print(f"(written to {args.env_file})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    print("Sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
