"""Read the roles, playbooks and molecule scenarios as data: the static checks of test_role_outputs.py and
test_ecs_service_internal.py share these helpers (no Ansible run, no AWS)."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"

SET_FACT = {"set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"}
ROLE_INCLUDES = {
    "include_role",
    "import_role",
    "ansible.builtin.include_role",
    "ansible.builtin.import_role",
    "ansible.legacy.include_role",
    "ansible.legacy.import_role",
}
# Task keywords (anything else in a task is its action).
TASK_KEYWORDS = {
    "name", "register", "when", "loop", "loop_control", "vars", "tags", "no_log", "changed_when", "failed_when",
    "until", "retries", "delay", "become", "become_user", "environment", "check_mode", "diff", "ignore_errors",
    "ignore_unreachable", "delegate_to", "delegate_facts", "run_once", "notify", "listen", "args", "module_defaults",
    "throttle", "timeout", "any_errors_fatal", "collections", "debugger", "async", "poll", "block", "rescue",
    "always", "action", "local_action",
}  # fmt: skip
TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's tags (!unsafe, !vault) as their plain value."""


def _tagged(loader: _Loader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_Loader.add_multi_constructor("!", _tagged)


@functools.cache
def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader subclass


def role_names() -> list[str]:
    return sorted(path.name for path in ROLES.iterdir() if (path / "tasks").is_dir())


def role_task_files(role: str) -> list[Path]:
    return sorted((ROLES / role / "tasks").glob("*.yml"))


def iter_tasks(data: Any) -> Iterator[dict]:
    """Every task of a task file or playbook, those inside blocks and plays' task lists too."""
    if isinstance(data, list):
        for item in data:
            yield from iter_tasks(item)
    elif isinstance(data, dict):
        if not any(key in data for key in ("hosts", "import_playbook", "ansible.builtin.import_playbook")):
            yield data
        for key in TASK_LISTS:
            if isinstance(data.get(key), list):
                yield from iter_tasks(data[key])


def action(task: dict) -> str | None:
    """The module or action a task runs (the first key that is not a keyword)."""
    return next((key for key in task if key not in TASK_KEYWORDS), None)


def role_tasks(role: str) -> Iterator[tuple[Path, dict]]:
    for path in role_task_files(role):
        for task in iter_tasks(load_yaml(path)):
            yield path, task


def set_facts(task: dict) -> dict:
    """The facts a task sets with set_fact (name -> value), {} for any other task."""
    name = action(task)
    if name not in SET_FACT or not isinstance(task[name], dict):
        return {}
    return {key: value for key, value in task[name].items() if key != "cacheable"}


def included_role(task: dict) -> dict | None:
    """The arguments of an include_role/import_role task ({name, tasks_from, ...}), else None."""
    name = action(task)
    if name in ROLE_INCLUDES and isinstance(task[name], dict):
        return task[name]
    return None


def role_vars(role: str) -> dict:
    """The role's defaults with its vars over them (the precedence Ansible gives them)."""
    merged: dict = {}
    for part in ("defaults", "vars"):
        path = ROLES / role / part / "main.yml"
        if path.is_file():
            merged.update(load_yaml(path) or {})
    return merged


def role_arguments(role: str) -> dict[str, dict]:
    """The options of the role's main entry point (name -> spec), from meta/argument_specs.yml."""
    path = ROLES / role / "meta" / "argument_specs.yml"
    specs = (load_yaml(path) or {}).get("argument_specs", {}) if path.is_file() else {}
    return (specs.get("main") or {}).get("options") or {}


@functools.cache
def module_return(module: str) -> dict:
    """The RETURN documentation of a project module in library/, {} for any other module."""
    path = ROOT / "library" / f"{module.rsplit('.', 1)[-1]}.py"
    if not path.is_file():
        return {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "RETURN" for target in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value)) or {}
    return {}


def playbook_files() -> list[Path]:
    """Every playbook and task file outside roles/: playbooks/, site.yml, teardown.yml, molecule/."""
    files = [ROOT / "site.yml", ROOT / "teardown.yml", *sorted((ROOT / "playbooks").glob("*.yml"))]
    files += sorted(path for path in (ROOT / "molecule").rglob("*.yml") if not _hidden(path))
    return files


def _hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(ROOT).parts)


def text_files(*tops: str, suffixes: tuple[str, ...] = (".yml", ".yaml", ".j2", ".py", ".md")) -> list[Path]:
    """Files under the given top-level paths (symlinked directories such as playbooks/roles not followed)."""
    found: list[Path] = []
    for top in tops:
        path = ROOT / top
        if path.is_file():
            found.append(path)
            continue
        stack = [path] if path.is_dir() and not path.is_symlink() else []
        while stack:
            for entry in sorted(stack.pop().iterdir()):
                if entry.name.startswith(".") or entry.name == "__pycache__" or entry.is_symlink():
                    continue
                if entry.is_dir():
                    stack.append(entry)
                elif entry.suffix in suffixes:
                    found.append(entry)
    return found
