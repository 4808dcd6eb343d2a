"""One place sets the AWS connection of every module: aws_module_defaults, through one action group.

`collections/ansible_collections/airflow_ecs/stack` routes each module of library/ into the action group
`airflow_ecs.stack.aws`, which extends the collections' `aws` groups; every play that runs AWS modules
applies `aws_module_defaults` (group_vars/all) to that group. A module left out of the group would run
against the SDK's default endpoint and region (real AWS) instead of the inventory's.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_runner import ROOT

PROJECT_MODULES = sorted(path.stem for path in (ROOT / "library").glob("*.py"))
RUNTIME = ROOT / "collections/ansible_collections/airflow_ecs/stack/meta/runtime.yml"
GROUP = "group/airflow_ecs.stack.aws"
PLAYBOOKS = sorted(
    path
    for pattern in ("*.yml", "playbooks/*.yml", "molecule/*/*.yml")
    for path in ROOT.glob(pattern)
    if "module_defaults" in path.read_text()
)
DEAD_ENDPOINT = "http://127.0.0.1:9"
DEAD = f"aws_endpoint_url={DEAD_ENDPOINT}"


def test_the_project_has_modules_and_plays_to_check() -> None:
    assert len(PROJECT_MODULES) >= 10, PROJECT_MODULES
    assert len(PLAYBOOKS) >= 8, PLAYBOOKS


def test_every_project_module_is_routed_into_the_group() -> None:
    runtime = yaml.safe_load(RUNTIME.read_text())
    routed = {name: route["redirect"] for name, route in runtime["plugin_routing"]["modules"].items()}
    assert routed == {name: f"ansible.legacy.{name}" for name in PROJECT_MODULES}
    members = [entry for entry in runtime["action_groups"]["aws"] if isinstance(entry, str)]
    assert members == PROJECT_MODULES


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_play_applies_the_one_connection_setting(path: Path) -> None:
    plays = [play for play in yaml.safe_load(path.read_text()) or [] if "module_defaults" in play]
    assert plays, path
    for play in plays:
        assert play["module_defaults"] == {GROUP: "{{ aws_module_defaults }}"}, (path, play.get("name"))


def test_library_and_collection_modules_alike_get_the_inventorys_endpoint(tmp_path: Path) -> None:
    """Every kind of module is pointed at the inventory's endpoint: a dead port, named in each failure."""
    play = [
        {
            "name": "Connection of every kind of module",
            "hosts": "airflow_ecs",
            "gather_facts": False,
            "module_defaults": {GROUP: "{{ aws_module_defaults }}"},
            "tasks": [
                {"name": "library", "ecs_cluster_settings": {"cluster": "nowhere"}, "ignore_errors": True},
                {"name": "amazon.aws", "amazon.aws.aws_caller_info": {}, "ignore_errors": True},
                {
                    "name": "community.aws",
                    "community.aws.ecs_cluster": {"name": "nowhere", "state": "has_instances"},
                    "ignore_errors": True,
                },
            ],
        }
    ]
    playbook = ROOT / f".module-defaults-{tmp_path.name}.yml"  # beside ansible.cfg's relative paths
    playbook.write_text(yaml.safe_dump(play))
    try:
        result = subprocess.run(
            [str(ROOT / ".venv/bin/ansible-playbook"), str(playbook), "-e", f"aws_max_attempts=1 {DEAD}"],
            cwd=ROOT,
            # No AWS_* variables: the SDK must not find the endpoint or the region by itself.
            env={"PATH": f"{ROOT}/.venv/bin:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_STDOUT_CALLBACK": "json"},
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        playbook.unlink()
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    messages = {task["task"]["name"]: task["hosts"]["localhost"].get("msg", "") for task in tasks}
    assert len(messages) == 3, result.stdout[-4000:]
    for kind, message in messages.items():
        assert f'Could not connect to the endpoint URL: "{DEAD_ENDPOINT}/' in message, (kind, message)
