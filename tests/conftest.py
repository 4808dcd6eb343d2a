"""Shared fixtures: a private moto server per test session on a free port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emulator import Emulator, start_emulator

# Minutes each heavy group takes on two busy cores (pytest --durations=0 summed by group); the run starts
# the longest first so that the two workers finish together (pytest -n 2 --dist loadgroup --no-loadscope-reorder).
GROUP_MINUTES = {
    "deployed_stack": 11,
    "test_e2e": 19,
    "fault": 7.5,
    "live_changes": 6.5,
    "bad_weather": 3.5,
    "test_bad_input": 3,
    "molecule-default": 4.2,
    "molecule-localstack": 3.4,
    "test_lifecycle": 2,
    "local_agent": 2.4,
    "local_images": 1,
    "molecule-network": 1,
    "molecule-service_discovery": 1,
}
# The shared deployment's fixtures, in the order they change it: a test runs after every test that needs
# an earlier one (readers of the default stack, then of the featured one, ...), whatever its file.
STACK_PHASES = ("featured", "switched", "denied")


def _group(item: pytest.Item) -> str:
    return next(item.iter_markers("xdist_group")).args[0]


def _phase(item: pytest.Item) -> int:
    used = getattr(item, "fixturenames", ())
    return max((index + 1 for index, name in enumerate(STACK_PHASES) if name in used), default=0)


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so runs without xdist (-p no:xdist) accept the marker.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one xdist worker")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist appends each item's group to its node id
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` a file's tests stay on one worker unless they name a shared group.

    Files that read the same deployment mark themselves `xdist_group("deployed_stack")`, so one worker
    deploys once for all of them (the `deployed` fixture is session-scoped). Longest groups first; within
    a group, by STACK_PHASES (a stable sort keeps the file order otherwise).
    """
    for item in items:
        if not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(Path(str(item.fspath)).stem))
    items.sort(key=lambda item: (-GROUP_MINUTES.get(_group(item), 0), _group(item), _phase(item)))


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
