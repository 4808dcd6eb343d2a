"""Shared fixtures: a private moto server per test session on a free port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emulator import Emulator, start_emulator


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` a file's tests stay on one worker unless they name a shared group.

    Files that read the same deployment mark themselves `xdist_group("deployed_stack")`, so one worker
    deploys once for all of them (the `deployed` fixture is session-scoped).
    """
    for item in items:
        if not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(Path(str(item.fspath)).stem))


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One moto server for the session; tests that need a blank account use `clean_emulator`."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = start_emulator(log)
    yield server
    server.stop()


@pytest.fixture
def clean_emulator(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator
