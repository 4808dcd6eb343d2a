"""Start and stop a private moto server for a test session (one process, a free loopback port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def endpoint_env(url: str) -> dict[str, str]:
    """Environment for a child process (ansible-playbook, boto3) that sends every AWS call to `url`."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Emulator:
    """A moto server started by the tests; `url` is its endpoint."""

    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **CREDENTIALS)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        # A reset reloads the IAM managed policies: seconds on a busy machine.
        urllib.request.urlopen(request, timeout=120).read()

    def env(self) -> dict[str, str]:
        """Environment for a child process (ansible-playbook, boto3) that targets this emulator."""
        return endpoint_env(self.url)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_emulator(log_path: Path, port: int | None = None, env: dict[str, str] | None = None) -> Emulator:
    """The embedded emulator on a free port; `env` adds settings such as EMBEDDED_AWS_ENFORCE_IAM=1."""
    port = port or free_port()
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", **(env or {})}
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "embedded_aws", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    emulator = Emulator(port=port, process=process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(f"{emulator.url}/moto-api/", timeout=1).read()
            return emulator
        except OSError:
            time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"moto_server did not answer on {emulator.url} within 30 s; see {log_path}")
