"""Each role declares the facts it publishes in roles/<role>/meta/outputs.yml, and the code keeps to it.

A role publishes `<role>_outputs` (a dict) with set_fact for the roles after it. Its declaration holds one
mapping `<role>_outputs:` (key -> one-line description), and `other_facts:` for the other facts it sets
that other roles read (preflight_account_id, secrets_versions, ...). Checked statically, no AWS:

- the keys the role's set_fact tasks give `<role>_outputs` (their union) are exactly the declared ones;
  a value built as `dict(<keys> | zip(<values>))` is resolved from the role's vars, or, when the keys come
  from the role's arguments (ecs_service: one entry per service), declared as one `<placeholder>` whose
  `keys` are fields of what the registering project module returns;
- every `<role>_outputs.<key>` / `<role>_outputs['<key>']` in roles/, playbooks/, molecule/, tests/, e2e/,
  group_vars/, inventories/ and the entry points names a declared key (for ecs_service: the name of a service
  some caller passes, then a declared field);
- every role that publishes `<role>_outputs` has the file, only that role sets it, and every fact a role
  sets that another role or a playbook reads is declared in its `other_facts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
from jinja2 import meta
from jinja2.nativetypes import NativeEnvironment
from role_files import (
    ROLES,
    ROOT,
    action,
    included_role,
    iter_tasks,
    load_yaml,
    module_return,
    playbook_files,
    role_arguments,
    role_names,
    role_tasks,
    role_vars,
    set_facts,
    text_files,
)

OUTPUTS_FILE = "meta/outputs.yml"
PLACEHOLDER = re.compile(r"^<[a-z_ ]+>$")
# `dict(<keys var> [| map(attribute='x')] | zip(<registered var>.<path> [| map(...)]))`
DICT_ZIP = re.compile(
    r"dict\(\s*(?P<keys>\w+)\s*(?:\|\s*map\(attribute='(?P<key_attr>\w+)'\)\s*)?"
    r"\|\s*zip\(\s*(?P<values>\w+)(?P<path>(?:\.\w+)*)\s*(?P<mapped>\|\s*map\()?"
)
REFERENCE_TOPS = ("roles", "playbooks", "molecule", "tests", "e2e", "group_vars", "inventories", "site.yml",
                  "teardown.yml", "README.md")  # fmt: skip
# A role's `<role>_outputs` followed by its access path (Jinja dots and brackets, Python subscripts).
SEGMENT = re.compile(
    r"""\.(?P<attr>[A-Za-z_]\w*)|\[\s*(?:'(?P<sq>[^'\n]*)'|"(?P<dq>[^"\n]*)"|(?P<expr>[^\]\n]*))\s*\]"""
)
DICT_METHODS = {"get", "keys", "items", "values", "copy", "update", "pop", "setdefault"}
NATIVE = NativeEnvironment(undefined=jinja2.StrictUndefined)


class _AnyPlugin(dict):
    """Filters and tests of a parse-only environment: Ansible's and the project's names are all accepted."""

    def __contains__(self, _name: object) -> bool:
        return True

    def __missing__(self, _name: str) -> object:
        return lambda *_args, **_kwargs: None

    def get(self, name: str, default: object = None) -> object:
        return self[name]


PARSER = jinja2.Environment()
PARSER.filters, PARSER.tests = _AnyPlugin(PARSER.filters), _AnyPlugin(PARSER.tests)


def outputs_fact(role: str) -> str:
    return f"{role}_outputs"


def declaration(role: str) -> dict:
    path = ROLES / role / OUTPUTS_FILE
    return (load_yaml(path) or {}) if path.is_file() else {}


def publishers() -> dict[str, list[tuple[Path, dict]]]:
    """role -> the set_fact tasks of its own tasks that set `<role>_outputs`."""
    found: dict[str, list[tuple[Path, dict]]] = {}
    for role in role_names():
        for path, task in role_tasks(role):
            if outputs_fact(role) in set_facts(task):
                found.setdefault(role, []).append((path, task))
    return found


def declared_roles() -> list[str]:
    return sorted(role for role in role_names() if (ROLES / role / OUTPUTS_FILE).is_file())


# --- what the tasks set -----------------------------------------------------------------------------------


def _dependencies(role: str, name: str, seen: set[str] | None = None) -> set[str]:
    """Every variable `name` needs, through the role's vars/defaults (names it does not define included)."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    variables = role_vars(role)
    if name not in variables:
        return {name}
    needed = {name}
    for template in _strings(variables[name]):
        for dependency in meta.find_undeclared_variables(PARSER.parse(template)):
            needed |= _dependencies(role, dependency, seen)
    return needed


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if "{{" in value or "{%" in value else []
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _render(role: str, value: object) -> object:
    """A role variable's value with plain Jinja2 (enough for lists built from the role's own data)."""
    if isinstance(value, dict):
        return {key: _render(role, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(role, item) for item in value]
    if not _strings(value):
        return value
    variables = role_vars(role)
    names = meta.find_undeclared_variables(PARSER.parse(value))
    context = {name: _render(role, variables[name]) for name in names if name in variables}
    return NATIVE.from_string(value).render(context)


def _registered_fields(role: str, variable: str, path: str) -> set[str]:
    """Fields of the list elements at `<variable><path>`, from the RETURN doc of the module that registered it."""
    for _, task in role_tasks(role):
        if task.get("register") == variable:
            entry: dict = {"contains": module_return(action(task) or "")}
            for part in path.strip(".").split("."):
                entry = (entry.get("contains") or {}).get(part) or {}
            fields = set(entry.get("contains") or {})
            assert fields, f"{role}: no RETURN documentation of {variable}{path} (module {action(task)})"
            return fields
    pytest.fail(f"{role}: no task registers {variable}")


@dataclass(frozen=True)
class PerItemKeys:
    """`<role>_outputs` keys that are one per item of a list argument of the role (`item[key_attr]`), each
    value a dict with these fields."""

    argument: str
    key_attr: str | None
    fields: frozenset[str]


def set_keys(role: str) -> tuple[set[str], set[PerItemKeys]]:
    """The keys the role's set_fact tasks give `<role>_outputs`; keys built from the role's list arguments
    (no static key set exists then) come back as PerItemKeys instead."""
    keys: set[str] = set()
    per_item: set[PerItemKeys] = set()
    for path, task in publishers().get(role, []):
        value = set_facts(task)[outputs_fact(role)]
        where = f"{path.relative_to(ROOT)}: {task.get('name')}"
        if isinstance(value, dict):
            keys |= set(value)
            continue
        match = DICT_ZIP.search(str(value))
        assert match, f"{where}: cannot read the keys of {outputs_fact(role)} = {value!r}; teach this test the form"
        lists = {name for name, spec in role_arguments(role).items() if spec.get("type") == "list"}
        arguments = _dependencies(role, match["keys"]) & lists
        if arguments:
            fields = set() if match["mapped"] else _registered_fields(role, match["values"], match["path"])
            per_item |= {PerItemKeys(argument, match["key_attr"], frozenset(fields)) for argument in arguments}
            continue
        items = _render(role, role_vars(role).get(match["keys"]))
        assert isinstance(items, list), f"{where}: {match['keys']} is not a list the role defines: {items!r}"
        keys |= {item[match["key_attr"]] if match["key_attr"] else item for item in items}
    return keys, per_item


# --- what the declarations say ----------------------------------------------------------------------------


def declared_keys(role: str) -> dict[str, object]:
    return declaration(role).get(outputs_fact(role)) or {}


def _fields(entry: object) -> set[str]:
    return set(entry.get("keys") or {}) if isinstance(entry, dict) else set()


def placeholder(role: str) -> str | None:
    return next((key for key in declared_keys(role) if PLACEHOLDER.match(key)), None)


def item_keys(role: str, source: PerItemKeys) -> set[str] | None:
    """The keys `source` gives: `item[key_attr]` of every entry the calling roles pass to `role` as its
    argument (include_role/import_role vars naming role variables); None when one is computed."""
    names: set[str] = set()
    for caller in role_names():
        for _, task in role_tasks(caller):
            include = included_role(task)
            if not include or include.get("name") != role or source.argument not in (task.get("vars") or {}):
                continue
            variables = role_vars(caller)
            for variable in re.findall(r"\b(__\w+)\b", str(task["vars"][source.argument])):
                value = variables.get(variable)
                for entry in value if isinstance(value, list) else [value]:
                    name = entry.get(source.key_attr) if isinstance(entry, dict) and source.key_attr else entry
                    if not isinstance(name, str) or "{" in name:
                        return None
                    names.add(name)
    return names


# --- references -------------------------------------------------------------------------------------------


def reference_problems(
    text: str, declared: dict[str, dict[str, object]], item_names: dict[str, set[str] | None]
) -> list[str]:
    """Every `<role>_outputs` access in `text` that names no declared key (or field / service name)."""
    roles = "|".join(sorted(role_names(), key=len, reverse=True))
    pattern = re.compile(rf"""(?<![\w.])(?P<role>{roles})_outputs\b(?:["']\])?""")
    problems = []
    for match in pattern.finditer(text):
        role, segments, position = match["role"], [], match.end()
        while (segment := SEGMENT.match(text, position)) and segment["expr"] is None:
            key = segment["attr"] or segment["sq"] or segment["dq"] or ""
            if segment["attr"] in DICT_METHODS:
                break
            segments.append(key)
            position = segment.end()
        line = text.count("\n", 0, match.start()) + 1
        access = f"line {line}: {role}_outputs{''.join('.' + key for key in segments)}"
        keys = declared.get(role)
        if keys is None:
            problems.append(f"{access}: role {role} declares no {role}_outputs (roles/{role}/{OUTPUTS_FILE})")
            continue
        if not segments:
            continue
        wildcard = next((key for key in keys if PLACEHOLDER.match(key)), None)
        if wildcard is None:
            if segments[0] not in keys:
                problems.append(f"{access}: {segments[0]!r} is not a declared key of {role}_outputs")
            continue
        names = item_names.get(role)
        if names is not None and segments[0] not in names:
            problems.append(f"{access}: {segments[0]!r} is no {wildcard} any caller gives {role} ({sorted(names)})")
        if len(segments) > 1 and segments[1] not in _fields(keys[wildcard]):
            problems.append(f"{access}: {segments[1]!r} is not a declared field of {role}_outputs.{wildcard}")
    return problems


def all_declared() -> dict[str, dict[str, object]]:
    return {role: declared_keys(role) for role in declared_roles() if outputs_fact(role) in declaration(role)}


def all_item_keys() -> dict[str, set[str] | None]:
    """role -> the keys its callers give `<role>_outputs`, for the roles whose keys are per item."""
    found: dict[str, set[str] | None] = {}
    for role in all_declared():
        for source in set_keys(role)[1]:
            names = item_keys(role, source)
            found[role] = None if names is None or found.get(role, set()) is None else found.get(role, set()) | names
    return found


# --- tests ------------------------------------------------------------------------------------------------


def test_the_roles_publish_outputs() -> None:
    """The checks below see the publishing roles (a parser that found none would check nothing)."""
    assert {"network", "secrets", "database", "ecs_service", "airflow"} <= set(publishers())


@pytest.mark.parametrize("role", sorted(publishers()))
def test_every_publishing_role_declares_its_outputs(role: str) -> None:
    path = ROLES / role / OUTPUTS_FILE
    assert path.is_file(), f"{role} publishes {outputs_fact(role)} but has no {path.relative_to(ROOT)}"
    assert outputs_fact(role) in declaration(role), f"{path.relative_to(ROOT)} does not declare {outputs_fact(role)}"


@pytest.mark.parametrize("role", declared_roles())
def test_declaration_is_well_formed(role: str) -> None:
    path = (ROLES / role / OUTPUTS_FILE).relative_to(ROOT)
    data = declaration(role)
    assert isinstance(data, dict) and data, f"{path}: empty"
    assert set(data) <= {outputs_fact(role), "other_facts"}, f"{path}: unknown top-level keys {set(data)}"
    assert (ROOT / path).read_text().startswith("---\n#"), f"{path}: start with --- and a comment header"
    if outputs_fact(role) in data:
        assert role in publishers(), f"{path} declares {outputs_fact(role)}, which {role}'s tasks never set"
    for section, entries in data.items():
        assert isinstance(entries, dict) and entries, f"{path}: {section} holds no entries"
        for key, entry in entries.items():
            descriptions = [entry] if not isinstance(entry, dict) else [entry.get("description")]
            if isinstance(entry, dict):
                assert set(entry) <= {"description", "keys"}, f"{path}: {section}.{key} has unknown fields"
                descriptions += list((entry.get("keys") or {}).values())
            for text in descriptions:
                assert isinstance(text, str) and text.strip() and "\n" not in text.strip(), (
                    f"{path}: {section}.{key} needs a one-line description"
                )


@pytest.mark.parametrize("role", sorted(publishers()))
def test_declared_keys_are_the_keys_the_tasks_set(role: str) -> None:
    keys, per_item = set_keys(role)
    declared = declared_keys(role)
    path = f"roles/{role}/{OUTPUTS_FILE}"
    if per_item:
        sources = sorted(source.argument for source in per_item)
        assert not keys, f"{role}: {outputs_fact(role)} mixes fixed keys {keys} with keys per item of {sources}"
        wildcard = placeholder(role)
        assert wildcard and list(declared) == [wildcard], (
            f"{path}: {outputs_fact(role)} has one key per item of {sources}: declare a single <placeholder>"
        )
        fields = set().union(*(source.fields for source in per_item))
        assert _fields(declared[wildcard]) and _fields(declared[wildcard]) <= fields, (
            f"{path}: fields {sorted(_fields(declared[wildcard]))} of {wildcard} must be among what the module "
            f"returns for each: {sorted(fields)}"
        )
        return
    assert set(declared) == keys, (
        f"{path} declares {sorted(declared)}; the tasks set {sorted(keys)} "
        f"(undeclared: {sorted(keys - set(declared))}, never set: {sorted(set(declared) - keys)})"
    )


def test_only_the_role_itself_sets_its_outputs() -> None:
    owners = {outputs_fact(role): role for role in role_names()}
    wrong = []
    for role in role_names():
        for path, task in role_tasks(role):
            wrong += [f"{path.relative_to(ROOT)}: {fact}" for fact in set_facts(task) if owners.get(fact, role) != role]
    for path in playbook_files():
        for task in iter_tasks(load_yaml(path)):
            wrong += [f"{path.relative_to(ROOT)}: {fact}" for fact in set_facts(task) if fact in owners]
    assert not wrong, f"<role>_outputs set outside its role: {wrong}"


def test_every_reference_names_a_declared_key() -> None:
    declared, item_names = all_declared(), all_item_keys()
    assert {"rabbitmq", "migrate", "scheduler"} <= (item_names.get("ecs_service") or set()), item_names
    checked, problems = 0, []
    skip = {Path(__file__).resolve(), *(ROLES / role / OUTPUTS_FILE for role in declared_roles())}
    for path in text_files(*REFERENCE_TOPS):
        if path.resolve() in skip:
            continue
        text = path.read_text(errors="replace")
        checked += text.count("_outputs.") + text.count("_outputs[")
        problems += [
            f"{path.relative_to(ROOT)} {problem}" for problem in reference_problems(text, declared, item_names)
        ]
    assert checked > 50, "too few references found: is the scan looking in the right places?"
    assert not problems, "references to undeclared outputs:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ network_outputs.vpc_idd }}", "'vpc_idd' is not a declared key"),
        ("{{ network_outputs['subnets'] | first }}", "'subnets' is not a declared key"),
        ('facts["database_outputs"]["adress"]', "'adress' is not a declared key"),
        ("{{ monitoring_outputs.dashboard }}", "declares no monitoring_outputs"),
        ("{{ ecs_service_outputs.migrate.task_defintion }}", "'task_defintion' is not a declared field"),
        ("{{ ecs_service_outputs.migration.task_definition }}", "'migration' is no <name>"),
    ],
)
def test_reference_check_catches(text: str, problem: str) -> None:
    problems = reference_problems(text, all_declared(), all_item_keys())
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize(
    "text",
    [
        "{{ network_outputs.security_groups.alb }} {{ network_outputs['vpc_id'] }} {{ secrets_outputs[item] }}",
        "{{ ecs_service_outputs.migrate.task_definition }} {{ network_outputs | to_json }}",
        'facts["load_balancer_outputs"]["dns_name"] read_outputs.x airflow_nodes_list',
    ],
)
def test_reference_check_accepts_declared_keys(text: str) -> None:
    assert reference_problems(text, all_declared(), all_item_keys()) == []


def _other_facts_set(role: str) -> set[str]:
    """Facts a role sets (set_fact or register) under a public name, other than its `<role>_outputs`."""
    names = set()
    for _, task in role_tasks(role):
        names |= set(set_facts(task))
        if isinstance(task.get("register"), str):
            names.add(task["register"])
    return {name for name in names if not name.startswith("_") and name != outputs_fact(role)}


def test_facts_read_by_other_roles_are_declared() -> None:
    """A public fact a role sets and another role or a playbook reads is in that role's `other_facts`, and
    every `other_facts` entry is a fact the role really sets."""
    readers = [path for path in text_files("roles", "playbooks", "molecule", "site.yml", "teardown.yml")
               if path.suffix in {".yml", ".yaml", ".j2"}]  # fmt: skip
    problems = []
    for role in role_names():
        declared = set(declaration(role).get("other_facts") or {})
        facts = _other_facts_set(role)
        problems += [
            f"roles/{role}/{OUTPUTS_FILE}: other_facts.{fact} is never set by {role}" for fact in declared - facts
        ]
        for fact in sorted(facts - declared):
            pattern = re.compile(rf"(?<![\w.]){re.escape(fact)}\b")
            used = [p for p in readers if not p.is_relative_to(ROLES / role) and pattern.search(p.read_text())]
            if used:
                problems.append(f"{role} sets {fact}, read by {used[0].relative_to(ROOT)}: declare it in other_facts")
    assert not problems, "\n".join(problems)
