"""execution-environment.yml: a valid ansible-builder v3 definition whose pins follow the lock file.

The schema below mirrors ansible-builder 3.x's own v3 schema (ansible_builder/ee_schema.py: every mapping
closed with additionalProperties: false) and is stricter where this project needs it: version 3, a base
image with an explicit tag or digest, and pinned ansible-core, ansible-runner, galaxy and python inputs.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import ansible
import pytest
import yaml
from jsonschema import Draft202012Validator
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
EE_FILE = ROOT / "execution-environment.yml"
LOCK = ROOT / "requirements" / "requirements.lock"
# The collections the `ansible` package of the venv bundles (site-packages/ansible_collections).
COLLECTIONS = Path(ansible.__file__).resolve().parents[1] / "ansible_collections"

STRING_OR_LIST = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
PINNED_PIP = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.+-]*$"}
STRING_LIST = {"type": "array", "items": {"type": "string"}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ansible-builder execution environment definition, version 3",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "images", "dependencies"],
    "properties": {
        "version": {"const": 3},
        "build_arg_defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ANSIBLE_GALAXY_CLI_COLLECTION_OPTS": {"type": "string"},
                "ANSIBLE_GALAXY_CLI_ROLE_OPTS": {"type": "string"},
                "PKGMGR_PRESERVE_CACHE": {"type": "string"},
            },
        },
        "dependencies": {
            "type": "object",
            "additionalProperties": False,
            "required": ["ansible_core", "ansible_runner", "galaxy", "python"],
            "properties": {
                "python": STRING_OR_LIST,
                "galaxy": {"anyOf": [{"type": "object"}, *STRING_OR_LIST["anyOf"]]},
                "system": STRING_OR_LIST,
                "python_interpreter": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"package_system": {"type": "string"}, "python_path": {"type": "string"}},
                },
                "ansible_core": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["package_pip"],
                    "properties": {"package_pip": PINNED_PIP},
                },
                "ansible_runner": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["package_pip"],
                    "properties": {"package_pip": PINNED_PIP},
                },
                "exclude": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"python": STRING_LIST, "system": STRING_LIST, "all_from_collections": STRING_LIST},
                },
            },
        },
        "images": {
            "type": "object",
            "additionalProperties": False,
            "required": ["base_image"],
            "properties": {
                "base_image": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        # registry/repository with an explicit tag (not latest) or a sha256 digest
                        "name": {
                            "type": "string",
                            "pattern": r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+"
                            r"(:(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$",
                        },
                        "signature_original_name": {"type": "string"},
                    },
                },
            },
        },
        "additional_build_steps": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                f"{when}_{stage}": STRING_OR_LIST
                for when in ("prepend", "append")
                for stage in ("base", "galaxy", "builder", "final")
            },
        },
        "additional_build_files": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["src", "dest"],
                "properties": {"src": {"type": "string"}, "dest": {"type": "string"}},
            },
        },
        "options": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "relax_passwd_permissions": {"type": "boolean"},
                "skip_ansible_check": {"type": "boolean"},
                "skip_pip_install": {"type": "boolean"},
                "workdir": {"type": ["string", "null"]},
                "package_manager_path": {"type": "string"},
                "user": {"type": "string"},
                "container_init": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "package_pip": {"type": "string"},
                        "entrypoint": {"type": "string"},
                        "cmd": {"type": "string"},
                    },
                },
                "tags": STRING_LIST,
            },
        },
    },
}


def schema_errors(definition: Any) -> list[str]:
    Draft202012Validator.check_schema(SCHEMA)  # a broken schema fails every check that uses it
    validator = Draft202012Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(definition)
    ]


def requirement_pins(text: str) -> dict[str, str]:
    """name -> version of every `name==version` line (comments and blank lines ignored), names normalised."""
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*(\S+)", line)
        if not match:
            pins[line] = ""  # unpinned: reported by pin_problems
            continue
        pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def pin_problems(definition: dict, python_requirements: str, lock: str) -> list[str]:
    """Every pin of the definition and its python requirements that is missing or disagrees with the lock."""
    locked = requirement_pins(lock)
    problems = []
    ee_pins = requirement_pins(python_requirements)
    for name in ("boto3", "botocore"):
        if name not in ee_pins:
            problems.append(f"{name} is not pinned in the EE python requirements")
    for name, version in ee_pins.items():
        if not version:
            problems.append(f"{name!r} is not pinned with ==")
        elif locked.get(name) != version:
            problems.append(f"{name}=={version} but the lock has {locked.get(name)}")
    core = definition["dependencies"]["ansible_core"]["package_pip"]
    if core != f"ansible-core=={locked['ansible-core']}":
        problems.append(f"{core} but the lock has ansible-core=={locked['ansible-core']}")
    return problems


@pytest.fixture(scope="module")
def definition() -> dict:
    return yaml.safe_load(EE_FILE.read_text(encoding="utf-8"))


def test_definition_is_a_valid_v3_definition(definition: dict) -> None:
    assert schema_errors(definition) == []


def broken(definition: dict, path: str, value: Any) -> dict:
    """A deep copy with `path` (a/b/c) set to `value`, or deleted when value is ...; '+key' adds a key."""
    copied = copy.deepcopy(definition)
    *parents, last = path.split("/")
    node = copied
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last.lstrip("+")] = value
    return copied


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("version", 2, "3 was expected"),
        ("version", ..., "'version' is a required property"),
        ("+dependancies", {}, "Additional properties are not allowed"),
        ("images/base_image/name", "quay.io/centos/centos:latest", "does not match"),
        ("images/base_image/name", "centos", "does not match"),
        ("images/base_image", {"image": "quay.io/centos/centos:stream9"}, "'name' is a required property"),
        ("dependencies/ansible_core", {"package_pip": "ansible-core"}, "does not match"),
        ("dependencies/ansible_runner", ..., "'ansible_runner' is a required property"),
        ("dependencies/python", 42, "is not valid under any of the given schemas"),
        ("dependencies/+pip", "requirements.txt", "Additional properties are not allowed"),
        ("options/tags", "airflow-ecs-ee", "is not of type 'array'"),
    ],
)
def test_broken_copies_fail_validation(definition: dict, path: str, value: Any, expected: str) -> None:
    errors = schema_errors(broken(definition, path, value))
    assert errors, f"a definition with {path}={value!r} passed validation"
    assert any(expected in error for error in errors), errors


def test_broken_yaml_text_fails(tmp_path: Path) -> None:
    text = EE_FILE.read_text(encoding="utf-8").replace("version: 3", "version: '3'")
    copy_path = tmp_path / "execution-environment.yml"
    copy_path.write_text(text, encoding="utf-8")
    assert schema_errors(yaml.safe_load(copy_path.read_text(encoding="utf-8")))


def test_referenced_files_exist(definition: dict) -> None:
    deps = definition["dependencies"]
    for key in ("galaxy", "python"):
        assert (EE_FILE.parent / deps[key]).is_file(), f"dependencies.{key}: {deps[key]} does not exist"


def test_pins_follow_the_lock(definition: dict) -> None:
    python_requirements = (EE_FILE.parent / definition["dependencies"]["python"]).read_text(encoding="utf-8")
    assert pin_problems(definition, python_requirements, LOCK.read_text(encoding="utf-8")) == []


def test_a_pin_that_drifts_from_the_lock_is_reported(definition: dict) -> None:
    python_requirements = (EE_FILE.parent / definition["dependencies"]["python"]).read_text(encoding="utf-8")
    drifted = re.sub(r"(?m)^botocore==\S+", "botocore==1.0.0", python_requirements)
    problems = pin_problems(definition, drifted + "\nrequests\n", LOCK.read_text(encoding="utf-8"))
    assert any(problem.startswith("botocore==1.0.0") for problem in problems), problems
    assert any("'requests' is not pinned" in problem for problem in problems), problems
    older_core = broken(definition, "dependencies/ansible_core/package_pip", "ansible-core==2.20.0")
    assert pin_problems(older_core, python_requirements, LOCK.read_text(encoding="utf-8"))


def test_galaxy_requirements_admit_the_tested_collections(definition: dict) -> None:
    """The collection ranges of the EE include the versions the project's venv (the ansible package) tests."""
    galaxy = yaml.safe_load((EE_FILE.parent / definition["dependencies"]["galaxy"]).read_text(encoding="utf-8"))
    wanted = {item["name"]: item.get("version", "*") for item in galaxy["collections"]}
    assert {"amazon.aws", "community.aws"} <= wanted.keys()
    for name, spec in wanted.items():
        manifest = COLLECTIONS.joinpath(*name.split("."), "MANIFEST.json")
        if not manifest.exists():
            pytest.skip(f"{name} is not installed in .venv")
        version = json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]
        assert spec == "*" or version in SpecifierSet(spec), f"{name} {version} is outside {spec}"
