"""ecs_service is an internal role, not a phase of the deploy: no playbook runs it, it is not in deploy_roles,
and only other roles reach it (include_role/import_role), which its README and argument specs name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from role_files import (
    ROLES,
    ROOT,
    included_role,
    iter_tasks,
    load_yaml,
    playbook_files,
    role_names,
    role_tasks,
)

ROLE = "ecs_service"


def _scalars(data: object) -> list[object]:
    """Every key and scalar value of a YAML document."""
    if isinstance(data, dict):
        return [item for key, value in data.items() for item in (key, *_scalars(value))]
    if isinstance(data, list):
        return [item for value in data for item in _scalars(value)]
    return [data]


def _play_roles(path: Path) -> list[str]:
    """Roles a playbook names: plays' `roles:` and include_role/import_role tasks."""
    data = load_yaml(path) or []
    names = []
    for play in data if isinstance(data, list) else [data]:
        for entry in (play.get("roles") or []) if isinstance(play, dict) else []:
            names.append(entry if isinstance(entry, str) else entry.get("role") or entry.get("name"))
    names += [include.get("name") for task in iter_tasks(data) if (include := included_role(task))]
    return names


def callers() -> dict[str, list[str]]:
    """role -> its task files that include or import ecs_service."""
    found: dict[str, list[str]] = {}
    for role in role_names():
        for path, task in role_tasks(role):
            if (included_role(task) or {}).get("name") == ROLE:
                found.setdefault(role, []).append(path.name)
    return found


def test_no_playbook_runs_ecs_service() -> None:
    files = playbook_files()
    assert {"site.yml", "teardown.yml", "deploy.yml", "converge.yml"} <= {path.name for path in files}
    found = [str(path.relative_to(ROOT)) for path in files if ROLE in _play_roles(path)]
    assert not found, f"{ROLE} is internal, yet these playbooks run it: {found}"
    # Nor does any list or mapping of role names in them (preflight_roles, scenario_role_needs, ...).
    named = [str(path.relative_to(ROOT)) for path in files if ROLE in _scalars(load_yaml(path))]
    assert not named, f"{ROLE} is internal, yet these playbooks name it: {named}"


def test_the_deploy_phases_are_found() -> None:
    """The check above sees the deploy's roles (a parser that found none would prove nothing)."""
    assert _play_roles(ROOT / "playbooks" / "deploy.yml")[:2] == ["preflight", "network"]


def test_ecs_service_is_not_a_deploy_role() -> None:
    deploy_roles = load_yaml(ROOT / "group_vars" / "all" / "main.yml")["deploy_roles"]
    assert "network" in deploy_roles, deploy_roles
    assert ROLE not in deploy_roles, f"group_vars/all/main.yml: deploy_roles lists the internal {ROLE}"
    preflight = load_yaml(ROLES / "preflight" / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert ROLE not in preflight["preflight_roles"]["default"], "preflight_roles' default lists it"


def test_ecs_service_is_reached_only_through_other_roles() -> None:
    found = callers()
    assert found, f"no role includes {ROLE}"
    assert ROLE not in found, f"{ROLE} includes itself: {found[ROLE]}"
    # No role depends on it through meta/main.yml either: it runs where a caller includes it.
    for meta in ROLES.glob("*/meta/main.yml"):
        dependencies = (load_yaml(meta) or {}).get("dependencies") or []
        assert ROLE not in [d if isinstance(d, str) else d.get("role") or d.get("name") for d in dependencies], meta


def test_ecs_service_says_it_is_internal_and_who_calls_it() -> None:
    readme = (ROLES / ROLE / "README.md").read_text()
    first = readme.split("\n\n")[1]  # the paragraph under the title
    specs = load_yaml(ROLES / ROLE / "meta" / "argument_specs.yml")["argument_specs"]
    summary = specs["main"]["short_description"]
    assert first.startswith("Internal:"), "the README must open with 'Internal:'"
    assert all(spec["short_description"].startswith("Internal:") for spec in specs.values()), specs
    for text in (first, summary):
        named = set(re.findall(r"\w+", text)) & set(role_names()) - {ROLE}
        assert named == set(callers()), f"{text!r} names {sorted(named)}; the callers are {sorted(callers())}"
        assert "include_role" in text and "playbook" in text, text


@pytest.mark.parametrize(
    "playbook",
    [
        "- hosts: all\n  roles: [preflight, ecs_service]\n",
        "- hosts: all\n  roles:\n    - role: ecs_service\n      tags: [x]\n",
        "- hosts: all\n  tasks:\n    - block:\n        - ansible.builtin.include_role: {name: ecs_service}\n",
        "- hosts: all\n  pre_tasks:\n    - import_role:\n        name: ecs_service\n",
    ],
)
def test_a_playbook_running_ecs_service_is_caught(tmp_path: Path, playbook: str) -> None:
    path = tmp_path / "play.yml"
    path.write_text(playbook)
    assert ROLE in _play_roles(path) and ROLE in _scalars(load_yaml(path))


def test_a_role_list_naming_ecs_service_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "play.yml"
    path.write_text("- hosts: all\n  vars:\n    preflight_roles: [network, ecs_service]\n  roles: [preflight]\n")
    assert ROLE not in _play_roles(path) and ROLE in _scalars(load_yaml(path))
