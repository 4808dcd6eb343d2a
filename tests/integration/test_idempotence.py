"""A second site.yml changes nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("stack")


def test_deploy_from_zero_succeeds(deployed):
    assert deployed.first.returncode == 0
    assert deployed.first.changed > 0


def test_rerun_reports_no_changes(deployed):
    assert deployed.second.returncode == 0, deployed.second.output[-5000:]
    changed = [line for line in deployed.second.output.splitlines() if line.startswith("changed:")]
    assert deployed.second.changed == 0, changed


def test_check_mode_on_the_deployed_stack_reports_nothing_to_change(deployed):
    assert deployed.checked.returncode == 0, deployed.checked.output[-5000:]
    changed = [line for line in deployed.checked.output.splitlines() if line.startswith("changed:")]
    assert deployed.checked.changed == 0, changed
