"""Fixtures for playbook runs: a deployed stack on its own emulator, shared by the tests that read it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from ansible_runner import PlayResult, run_playbook
from emulator import Emulator, start_emulator


@dataclass
class Deployment:
    emulator: Emulator
    first: PlayResult
    second: PlayResult


@pytest.fixture(scope="session")
def stack_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    server = start_emulator(tmp_path_factory.mktemp("stack") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def deployed(stack_emulator: Emulator) -> Deployment:
    """site.yml run twice on a fresh emulator; the tests only read the result."""
    first = run_playbook("site.yml", stack_emulator.env())
    assert first.returncode == 0, first.output[-5000:]
    second = run_playbook("site.yml", stack_emulator.env())
    return Deployment(stack_emulator, first, second)
