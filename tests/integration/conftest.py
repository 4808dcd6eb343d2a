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
    first: PlayResult  # deploy from zero, verbose (-v): the output no secret may appear in
    second: PlayResult  # the same again: must change nothing
    checked: PlayResult  # --check --diff on the deployed stack: must report nothing to change
    resized: PlayResult  # one variable changed: the worker's size


RESIZED_WORKER = {"airflow_nodes_worker_cpu": 2048, "airflow_nodes_worker_memory": 4096}


@pytest.fixture(scope="session")
def stack_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    server = start_emulator(tmp_path_factory.mktemp("stack") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def deployed(stack_emulator: Emulator) -> Deployment:
    """site.yml from zero, again, in check mode, then with a bigger worker; the tests only read the results."""
    first = run_playbook("site.yml", stack_emulator.env(), args=["-v"])
    assert first.returncode == 0, first.output[-5000:]
    second = run_playbook("site.yml", stack_emulator.env())
    checked = run_playbook("site.yml", stack_emulator.env(), args=["--check", "--diff"])
    resized = run_playbook("site.yml", stack_emulator.env(), extra_vars=RESIZED_WORKER)
    return Deployment(stack_emulator, first, second, checked, resized)
