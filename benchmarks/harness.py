"""The processes of a benchmark: the sandbox server, loads in subprocesses of their own (timed, with the
peak RSS of their whole process tree), and the `dagster` CLI against a Dagster instance of the run's own.

Every load runs in a fresh process: nothing it imports or caches leaks into the next measure, and the
sandbox never shares a GIL with the loader.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from analytics_sandbox import SandboxClient

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DAGSTER = str(Path(sys.executable).with_name("dagster"))

# Settings a developer's shell may carry that would point a load elsewhere or tune dlt behind our back.
_FOREIGN_ENV_PREFIXES = (
    "SOURCES__",
    "ANALYTICS_",
    "DESTINATION__",
    "DLT_",
    "DAGSTER_HOME",
    "DATA_WRITER__",
    "NORMALIZE__",
    "EXTRACT__",
    "LOAD__",
    "RUNTIME__",
)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any setting of the code location or dlt, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # dlt reports each run to its telemetry server by default: a benchmark stays on loopback.
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    return {**env, **(extra or {})}


class SandboxProcess:
    """`python -m analytics_sandbox` in a process of its own, on a free loopback port.

    Args:
        workdir: Where its env file and log go.
        people: People it serves.
        sizes: Other `SandboxConfig` sizes, as its command-line flags (`responses=...`, `segments=...`).
    """

    def __init__(self, workdir: Path, people: int, **sizes: int) -> None:
        self.workdir = workdir
        self.people = people
        self.sizes = sizes
        self.env: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._client: SandboxClient | None = None

    def __enter__(self) -> SandboxProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env_file = self.workdir / "sandbox.env"
        env_file.unlink(missing_ok=True)
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in self.sizes.items()]
        command = [PYTHON, "-m", "analytics_sandbox", "--port=0", f"--people={self.people}", *flags]
        with open(self.workdir / "sandbox.log", "wb") as log:
            self._process = subprocess.Popen(
                [*command, f"--env-file={env_file}"], cwd=REPO, env=clean_env(), stdout=log, stderr=log
            )
        deadline = time.monotonic() + 120
        while not env_file.exists() or not env_file.read_text().endswith("\n"):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                log_text = (self.workdir / "sandbox.log").read_text(errors="replace")
                raise RuntimeError(f"the sandbox did not start: {log_text[-2000:]}")
            time.sleep(0.05)
        for line in env_file.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = shlex.split(value)[0]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    @property
    def audience_base_url(self) -> str:
        return self.env["SOURCES__AUDIENCE__BASE_URL"]

    @property
    def url(self) -> str:
        """`http://host:port` of the sandbox."""
        return self.audience_base_url.split("/audience/", 1)[0]

    @property
    def client(self) -> SandboxClient:
        """Its control interface (data changes, latency, request log)."""
        if self._client is None:
            self._client = SandboxClient(self.url)
        return self._client


class RssSampler:
    """Samples the summed RSS of a process and all its descendants in a background thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self, root: psutil.Process) -> int:
        total = 0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
            while not self._stop.is_set():
                self.peak = max(self.peak, self._sample(root))
                self._stop.wait(self.interval)
        except psutil.NoSuchProcess:
            return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    """One subprocess: its wall time, the peak RSS of its process tree, its output and its result file."""

    command: list[str]
    seconds: float
    peak_rss: int
    returncode: int
    output: str
    result: dict[str, Any] = field(default_factory=dict)

    def check(self) -> Measured:
        """Raise with the tail of its output when it failed."""
        if self.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(self.command)} exited with {self.returncode}:\n{self.output[-4000:]}"
            )
        return self


def run_measured(
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path = REPO,
    timeout: float = 3600,
    result_file: Path | None = None,
) -> Measured:
    """Run `command` to its end, timing it and sampling the RSS of its process tree.

    Args:
        result_file: A JSON file the command writes its own figures to; read into `Measured.result`.
    """
    if result_file is not None:
        result_file.unlink(missing_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
        with RssSampler(process.pid) as sampler:
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                returncode = process.wait()
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read().decode(errors="replace")
    result = json.loads(result_file.read_text()) if result_file is not None and result_file.exists() else {}
    return Measured(list(command), seconds, sampler.peak, returncode, output, result)


@dataclass
class DagsterRun:
    """What the Dagster instance recorded about one run: its duration and each step's."""

    run_id: str
    status: str
    seconds: float
    steps: dict[str, float]


class DagsterHome:
    """A Dagster instance of the benchmark's own (`deploy/embedded/dagster.yaml`: its pools apply)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "deploy" / "embedded" / "dagster.yaml", path / "dagster.yaml")

    def last_run(self) -> DagsterRun:
        """The newest run of the instance, timed from its start to its end as the instance recorded them."""
        from dagster import DagsterInstance

        with DagsterInstance.from_config(str(self.path)) as instance:
            record = instance.get_run_records(limit=1)[0]
            run = record.dagster_run
            steps = {
                s.step_key: (s.end_time or 0.0) - (s.start_time or 0.0)
                for s in instance.get_run_step_stats(run.run_id)
            }
            assert record.start_time is not None and record.end_time is not None, "the run has ended"
            return DagsterRun(run.run_id, run.status.value, record.end_time - record.start_time, steps)
