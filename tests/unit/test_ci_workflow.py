"""The CI/CD workflow example: it tests every change the way .ci/run does and ships only DAGs, only from main."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github/workflows/airflow-ecs.yml").read_text())


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def commands(job: str) -> list[str]:
    return [step["run"] for step in WORKFLOW["jobs"][job]["steps"] if "run" in step]


def test_every_change_runs_what_ci_runs() -> None:
    assert set(WORKFLOW["on"]) == {"pull_request", "push"}
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert any(command.endswith("make test") for command in commands("test"))


def test_only_a_push_to_main_ships_and_only_the_dags_after_the_tests() -> None:
    ship = WORKFLOW["jobs"]["ship-dags"]
    assert ship["needs"] == "test"
    assert ship["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert commands("ship-dags") == ["make deploy-dags INVENTORY=inventories/aws"]
    assert ship["permissions"]["id-token"] == "write" and WORKFLOW["permissions"] == {"contents": "read"}


def test_the_make_targets_it_runs_exist() -> None:
    used = {
        match
        for command in commands("test") + commands("ship-dags")
        for match in re.findall(r"make ([a-z0-9-]+)", command)
    }
    assert used and used <= make_targets(), used - make_targets()
