"""Faults, as one campaign: each step starts from what the previous one left.

0. The emulator lost mid-deploy (stopped while the database is being created): the deploy fails with
   the endpoint error; a fresh, empty emulator is started on the same port for everything below, so
   the runs of step 1 have to recreate what was lost.
1. `site.yml` killed (SIGKILL to it and its task workers) at five points in turn, each run getting
   further than the last; the sixth run completes.
2. A second stack, deployed uninterrupted beside it, is the reference: the resumed stack describes the
   same, name for name (tests/fault/stack_state.py).
3. Tearing the second stack down leaves the first untouched, and the first's re-run is `changed=0`.
4. Tearing down the (once interrupted) first stack leaves nothing in the account.

One chain instead of independent cases: every playbook run costs minutes on a 2-core machine, and a
kill point's re-run is exactly the next kill point's starting state.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ansible_runner import PlayResult, run_playbook, run_playbook_until
from emulator import Emulator, start_emulator
from stack_inventory import leftover_resources
from stack_state import changed_tasks, describe_stack, renamed

pytestmark = pytest.mark.xdist_group("fault")

STACK, SECOND = "airflow", "second"


@dataclass(frozen=True)
class KillPoint:
    name: str
    marker: str  # the run is killed when this appears in the output for the `occurrence`-th time
    occurrence: int = 1
    delay: float = 0.0  # seconds between the marker and the kill


KILL_POINTS = [
    KillPoint("network half built", "TASK [network : Create the NAT gateways"),
    KillPoint("before the database", "TASK [database : Create the PostgreSQL instance"),
    KillPoint("during the migration task", "TASK [airflow : Run the one-off task airflow-ecs-migrate]", delay=1.0),
    # The ALB, its target group and listener are one module run: killed once they exist.
    KillPoint("after the load balancer", "TASK [load_balancer : Publish the load balancer for the api-server service"),
    # The third services task is the Airflow nodes' (the broker's comes first, then the migrate entry's,
    # which creates no service): killed while its one module run creates them.
    KillPoint(
        "amid the Airflow services", "TASK [ecs_service : Create or update the services]", occurrence=3, delay=0.5
    ),
]


@dataclass
class Interrupted:
    killed: list[tuple[KillPoint, PlayResult, int]]  # the kill point, the killed run, resources it left
    resumed: PlayResult


def _ok(result: PlayResult) -> PlayResult:
    assert result.returncode == 0, result.output[-5000:]
    return result


@pytest.fixture(scope="module")
def lost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlayResult, Emulator]]:
    """A deploy whose emulator is stopped under it, and the fresh emulator started on the same port."""
    logs = tmp_path_factory.mktemp("fault")
    first = start_emulator(logs / "moto-lost.log")
    try:
        failed = run_playbook_until(
            "site.yml", first.env(), "TASK [database : Create the PostgreSQL instance", action=first.stop
        )
    finally:
        first.stop()
    fresh = start_emulator(logs / "moto.log", port=first.port)
    yield failed, fresh
    fresh.stop()


@pytest.fixture(scope="module")
def fault_emulator(lost) -> Emulator:
    return lost[1]


def test_a_deploy_that_loses_its_endpoint_fails_with_the_endpoint_error(lost):
    failed, fresh = lost
    assert failed.returncode != 0, failed.output[-3000:]
    # A task of the role in flight when the endpoint vanished fails (the modules wrap the connection error).
    failing = failed.output.split("TASK [")[-1]
    assert failing.startswith("database : ") and "FAILED!" in failing, failing
    assert leftover_resources(fresh) == [], "the fresh emulator should start empty"


@pytest.fixture(scope="module")
def interrupted(fault_emulator: Emulator) -> Interrupted:
    env = fault_emulator.env()
    killed = []
    for point in KILL_POINTS:
        run = run_playbook_until("site.yml", env, point.marker, occurrence=point.occurrence, delay=point.delay)
        killed.append((point, run, len(leftover_resources(fault_emulator))))
    return Interrupted(killed, run_playbook("site.yml", env))


def test_each_killed_deploy_got_further_than_the_last(interrupted):
    counts = [(point.name, left) for point, _, left in interrupted.killed]
    assert all(run.returncode != 0 for _, run, _ in interrupted.killed), "a killed run reported success"
    assert counts[0][1] > 0 and all(a[1] < b[1] for a, b in itertools.pairwise(counts)), counts


def test_the_deploy_after_five_kills_completes(interrupted):
    _ok(interrupted.resumed)


@pytest.fixture(scope="module")
def reference(interrupted, fault_emulator) -> dict[str, Any]:
    """The first stack as the resumed deploy left it, checked against an uninterrupted second stack."""
    _ok(run_playbook("site.yml", fault_emulator.env(), extra_vars={"stack_name": SECOND}))
    return describe_stack(fault_emulator, STACK)


def test_resumed_stack_matches_an_uninterrupted_deploy(reference, fault_emulator):
    assert reference["ecs_services"], reference
    assert renamed(describe_stack(fault_emulator, SECOND), SECOND, STACK) == reference


@pytest.fixture(scope="module")
def second_removed(reference, fault_emulator) -> PlayResult:
    return run_playbook("teardown.yml", fault_emulator.env(), extra_vars={"stack_name": SECOND})


def test_tearing_down_one_stack_leaves_the_other_intact(second_removed, reference, fault_emulator):
    _ok(second_removed)
    left = describe_stack(fault_emulator, SECOND)
    assert not any(left.values()), f"{SECOND!r} left {left}"
    assert describe_stack(fault_emulator, STACK) == reference


def test_rerun_of_the_remaining_stack_changes_nothing(second_removed, fault_emulator):
    again = _ok(run_playbook("site.yml", fault_emulator.env()))
    assert again.changed == 0, changed_tasks(again.output)


def test_teardown_of_the_once_interrupted_stack_leaves_nothing(second_removed, fault_emulator):
    _ok(run_playbook("teardown.yml", fault_emulator.env()))
    assert leftover_resources(fault_emulator) == []
