"""`site.yml --tags <role>` applies that role alone, with the outputs of the roles it reads.

Each deploy role is tagged with its name and `always`; the play runs the roles asked for, runs the
roles they read outputs from (`deploy_role_inputs`) in check mode so they publish those outputs from
what exists, and skips the rest. These static checks keep the play and `deploy_role_inputs` in step
with what the roles really read; tests/integration/test_stack.py runs tagged deploys on a live stack.
"""

from __future__ import annotations

import re

import pytest
from role_files import ROOT, included_role, load_yaml, role_tasks

GROUP_VARS = load_yaml(ROOT / "group_vars/all/main.yml")
DEPLOY_ROLES: list[str] = GROUP_VARS["deploy_roles"]
INPUTS: dict[str, list[str]] = GROUP_VARS["deploy_role_inputs"]
OUTPUT_USE = re.compile(r"\b([a-z_]+)_outputs\b(?:\.[a-z_]+|\[[^\]]*\])*\s*(?P<default>\|\s*default\()?")
# The other facts a deploy role publishes (meta/outputs.yml `other_facts`), by the role that sets them.
OTHER_FACTS = {
    fact: role
    for role in DEPLOY_ROLES
    if (ROOT / "roles" / role / "meta/outputs.yml").exists()
    for fact in (load_yaml(ROOT / "roles" / role / "meta/outputs.yml").get("other_facts") or {})
}
FACT_NAMES = "|".join(map(re.escape, OTHER_FACTS))
FACT_USE = re.compile(r"\b(" + FACT_NAMES + r")\b(?:[.\[][^|}]*)?\s*(?P<default>\|\s*default\()?")


def deploy_play() -> dict:
    return next(play for play in load_yaml(ROOT / "playbooks/deploy.yml") if "roles" in play)


def reads(role: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The deploy roles whose outputs `role` (or a role it includes) needs; `| default(...)` uses are optional."""
    found: set[str] = set()
    for path in (ROOT / "roles" / role).rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".j2"):
            text = path.read_text()
            for use in OUTPUT_USE.finditer(text):
                if use[1] in DEPLOY_ROLES and use[1] != role and not use["default"]:
                    found.add(use[1])
            for use in FACT_USE.finditer(text):
                if OTHER_FACTS[use[1]] != role and not use["default"]:
                    found.add(OTHER_FACTS[use[1]])
    for _, task in role_tasks(role):
        included = included_role(task)
        name = (included or {}).get("name")
        if name and name not in DEPLOY_ROLES and name not in seen:
            found |= reads(name, seen | {role})
    return found


def test_every_deploy_role_has_its_inputs_declared() -> None:
    assert list(INPUTS) == DEPLOY_ROLES


@pytest.mark.parametrize("role", DEPLOY_ROLES)
def test_the_declared_inputs_cover_what_the_role_reads(role: str) -> None:
    missing = reads(role) - set(INPUTS[role])
    assert not missing, f"{role} reads the outputs of {sorted(missing)}: add them to deploy_role_inputs.{role}"


@pytest.mark.parametrize("role", DEPLOY_ROLES)
def test_the_inputs_come_earlier_and_are_closed(role: str) -> None:
    position = DEPLOY_ROLES.index(role)
    for needed in INPUTS[role]:
        assert DEPLOY_ROLES.index(needed) < position, f"{role} reads {needed}, which runs after it"
        assert set(INPUTS[needed]) <= set(INPUTS[role]), f"{role} lacks what {needed} reads"


def test_the_reads_detector_sees_real_uses() -> None:
    assert reads("airflow_nodes") >= {"network", "airflow", "ecs_cluster", "load_balancer"}
    assert "secrets" in reads("database")  # secrets_versions, one of the secrets role's other facts
    assert "airflow" not in reads("dags")  # dags takes `airflow_outputs.dag_bucket | default(...)`


def test_each_role_of_the_play_is_applied_only_when_asked_and_planned_when_read() -> None:
    play = deploy_play()
    assert [entry["role"] for entry in play["roles"]] == ["preflight", *DEPLOY_ROLES]
    assert play["roles"][0]["tags"] == ["always"]
    for entry in play["roles"][1:]:
        role = entry["role"]
        assert entry == {
            "role": role,
            "tags": [role, "always"],
            "when": f"'{role}' in __deploy_run",
            "check_mode": "{{ stack_check_mode }}",
        }


def test_roles_ask_stack_check_mode_whether_they_only_plan() -> None:
    """ansible_check_mode sees only --check, not a role run in check mode for its outputs."""
    offenders = [str(path) for path in (ROOT / "roles").rglob("*.yml") if "ansible_check_mode" in path.read_text()]
    assert not offenders
