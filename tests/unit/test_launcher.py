"""embedded_aws.launcher: what stops the local runtime before it starts, in one sentence each."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from embedded_aws import launcher
from embedded_aws.forwarder import Listener


def test_the_runtime_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit, match=r"needs root .* or set EMBEDDED_AWS_RUNTIME=off"):
        launcher.check_prerequisites()


def test_the_runtime_switch_takes_on_or_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDED_AWS_RUNTIME", "no")
    with pytest.raises(SystemExit, match=r"EMBEDDED_AWS_RUNTIME: got 'no'; it must be on or off"):
        launcher.runtime_wanted()
    monkeypatch.setenv("EMBEDDED_AWS_RUNTIME", "off")
    assert launcher.runtime_wanted() is False
    monkeypatch.delenv("EMBEDDED_AWS_RUNTIME")
    assert launcher.runtime_wanted() is True


def test_a_runtime_directory_the_postgres_user_cannot_reach_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(SystemExit, match=rf"{private} has mode 700; use a directory whose parents"):
        launcher.check_traversable(private / "runtime")


def test_a_listener_forwards_each_connection_to_a_current_backend_or_closes_it() -> None:
    import socket  # noqa: PLC0415

    backends: list[tuple[str, int]] = []
    echo = socket.create_server(("127.0.0.1", 0))
    listener = Listener("test", lambda: list(backends))
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as client:
            assert client.recv(10) == b""  # no backend: closed at once
        backends.append(echo.getsockname())
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as client:
            server, _ = echo.accept()
            client.sendall(b"ping")
            assert server.recv(4) == b"ping"
            server.sendall(b"pong")
            assert client.recv(4) == b"pong"
            server.close()
    finally:
        listener.close()
        echo.close()
