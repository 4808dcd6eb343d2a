"""Check mode, teardown, and teardown after an interrupted deploy — each on a blank emulator."""

from __future__ import annotations

from ansible_runner import run_playbook, run_playbook_until
from stack_inventory import leftover_resources


def test_check_mode_on_an_empty_account_creates_nothing(clean_emulator):
    result = run_playbook("site.yml", clean_emulator.env(), args=["--check", "--diff"])
    assert result.returncode == 0, result.output[-5000:]
    assert result.changed > 0
    assert leftover_resources(clean_emulator) == []


def test_teardown_of_an_empty_account_succeeds(clean_emulator):
    result = run_playbook("teardown.yml", clean_emulator.env())
    assert result.returncode == 0, result.output[-5000:]
    assert result.changed == 0


def test_teardown_after_a_killed_deploy_leaves_nothing_and_can_run_twice(clean_emulator):
    run_playbook_until("site.yml", clean_emulator.env(), marker="Create the NAT gateways")
    assert leftover_resources(clean_emulator), "the killed deploy should have created something"

    first = run_playbook("teardown.yml", clean_emulator.env())
    assert first.returncode == 0, first.output[-5000:]
    assert leftover_resources(clean_emulator) == []

    second = run_playbook("teardown.yml", clean_emulator.env())
    assert second.returncode == 0, second.output[-5000:]
    assert second.changed == 0
