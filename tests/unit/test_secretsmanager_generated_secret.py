"""library/secretsmanager_generated_secret.py against a moto server, through the real `ansible` CLI."""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible_runner import LOCALHOST_ARGS, run_module_with_output, run_playbook
from cryptography.fernet import Fernet, MultiFernet
from emulator import Emulator

MODULE = "secretsmanager_generated_secret"
NAME = "airflow/database"
MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"  # what Ansible puts in place of a whole no_log value


# --- Helpers -------------------------------------------------------------------------------------


def run_module_raw(module_args: dict, env: dict[str, str], check: bool = False, diff: bool = False) -> tuple[dict, str]:
    """The module's result and everything ansible printed (stdout + stderr)."""
    return run_module_with_output(MODULE, module_args, env, check, diff)


class Story:
    """Runs the module against one emulator and keeps every raw output, to check later that no value leaked."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.outputs: list[str] = []

    def run(self, args: dict, check: bool = False, diff: bool = False) -> dict:
        result, raw = run_module_raw(args, self.emulator.env(), check=check, diff=diff)
        self.outputs.append(raw)
        return result

    def leaked(self, *values: str) -> list[str]:
        return [value for value in values for output in self.outputs if value in output]


def sm(emulator: Emulator) -> Any:
    return emulator.client("secretsmanager")


def secret_names(emulator: Emulator) -> list[str]:
    return [secret["Name"] for secret in sm(emulator).list_secrets()["SecretList"]]


def stored(emulator: Emulator, name: str = NAME) -> str:
    return sm(emulator).get_secret_value(SecretId=name)["SecretString"]


def stored_json(emulator: Emulator, name: str = NAME) -> dict:
    return json.loads(stored(emulator, name))


@pytest.fixture
def library(load_library_module: Callable[[str], ModuleType]) -> ModuleType:
    """The module in this process, with the project's module_utils where Ansible puts them."""
    return load_library_module(MODULE)


# --- Through ansible, against moto ---------------------------------------------------------------


def outcome(result: dict) -> tuple[bool, bool, bool, bool]:
    """(changed, created, rotated, value_changed) of a module result."""
    secret = result["secret"]
    return result["changed"], secret["created"], secret["rotated"], secret["value_changed"]


def is_generated_password(value: str, length: int = 32) -> bool:
    return len(value) == length and set(value) <= set(string.ascii_letters + string.digits)


def test_json_secret_lifecycle_story(clean_emulator: Emulator) -> None:
    story = Story(clean_emulator)
    args = {
        "name": NAME,
        "description": "metadata database",
        "json_fields": {"username": "airflow", "port": 5432},
        "tags": {"stack": "airflow", "team": "data"},
    }

    planned = story.run(args, check=True, diff=True)
    assert outcome(planned) == (True, True, False, True), planned
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"]["name"] == NAME
    assert "value" not in planned
    assert secret_names(clean_emulator) == []

    created = story.run(args)
    assert outcome(created) == (True, True, False, True), created
    assert created["secret"]["arn"].startswith("arn:aws:secretsmanager:")
    assert created["secret"]["tags"] == {"stack": "airflow", "team": "data"}
    assert created["secret"]["version_id"]
    assert "value" not in created
    first = stored_json(clean_emulator)
    password = first.pop("password")
    assert first == {"username": "airflow", "port": 5432}
    assert is_generated_password(password)

    again = story.run(args)
    assert outcome(again) == (False, False, False, False), again
    assert again["secret"]["version_id"] == created["secret"]["version_id"]
    assert stored_json(clean_emulator)["password"] == password

    updated = story.run({**args, "description": "airflow metadata database", "tags": {"stack": "airflow"}}, diff=True)
    assert outcome(updated) == (True, False, False, False), updated
    assert updated["diff"]["before"]["description"] == "metadata database"
    assert updated["diff"]["after"]["description"] == "airflow metadata database"
    assert updated["diff"]["after"]["tags"] == {"stack": "airflow"}
    assert updated["secret"]["version_id"] == created["secret"]["version_id"]
    described = sm(clean_emulator).describe_secret(SecretId=NAME)
    assert (described["Description"], described["Tags"]) == (
        "airflow metadata database",
        [{"Key": "stack", "Value": "airflow"}],
    )
    assert stored_json(clean_emulator)["password"] == password

    renamed = story.run({**args, "json_fields": {"username": "airflow_app"}}, diff=True)
    assert outcome(renamed) == (True, False, False, True), renamed
    assert renamed["diff"]["after"]["value"].startswith("(current generated value")
    assert stored_json(clean_emulator) == {"username": "airflow_app", "password": password}

    rotated = story.run({**args, "json_fields": {"username": "airflow_app"}, "rotate": True})
    assert outcome(rotated) == (True, False, True, True), rotated
    assert rotated["secret"]["version_id"] != renamed["secret"]["version_id"]
    second = stored_json(clean_emulator)
    assert second["username"] == "airflow_app"
    assert second["password"] != password
    assert is_generated_password(second["password"])

    assert story.leaked(password, second["password"]) == []


def test_delete_story(clean_emulator: Emulator) -> None:
    sm(clean_emulator).create_secret(
        Name=NAME, SecretString='{"username": "airflow", "password": "0123456789abcdefXYZ"}'
    )
    story = Story(clean_emulator)
    absent = {"name": NAME, "state": "absent", "recovery_window_days": 0}
    planned_delete = story.run(absent, check=True, diff=True)
    assert planned_delete["changed"] is True, planned_delete
    assert planned_delete["diff"]["after"] == {}
    assert secret_names(clean_emulator) == [NAME]

    deleted = story.run(absent)
    assert deleted["changed"] is True, deleted
    assert deleted["secret"] == {}
    assert secret_names(clean_emulator) == []

    assert story.run(absent)["changed"] is False
    assert story.leaked("0123456789abcdefXYZ") == []


def test_fernet_key_and_token_have_the_right_form(clean_emulator: Emulator) -> None:
    story = Story(clean_emulator)
    fernet = story.run({"name": "airflow/fernet_key", "generate": "fernet_key"})
    assert fernet["changed"] is True, fernet
    key = stored(clean_emulator, "airflow/fernet_key")
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"airflow")) == b"airflow"

    token = story.run({"name": "airflow/jwt_secret", "generate": "token", "length": 64})
    assert token["changed"] is True, token
    jwt_secret = stored(clean_emulator, "airflow/jwt_secret")
    assert len(jwt_secret) == 86  # longer than `length`: base64 of 64 bytes, without padding
    assert len(base64.urlsafe_b64decode(jwt_secret + "==")) == 64

    assert story.leaked(key, jwt_secret) == []


def test_a_fernet_rotation_keeps_the_previous_key_until_it_is_dropped(clean_emulator: Emulator) -> None:
    story = Story(clean_emulator)
    args = {"name": "airflow/fernet_key", "generate": "fernet_key", "keep_previous": True}
    created = story.run(args)
    assert created["changed"] and created["secret"]["previous_kept"] is False
    first = stored(clean_emulator, "airflow/fernet_key")
    token = Fernet(first).encrypt(b"connection password")
    again = story.run(args)
    assert not again["changed"] and again["secret"]["previous_kept"] is False

    planned = story.run({**args, "rotate": True}, check=True, diff=True)
    assert planned["changed"] and planned["secret"]["previous_kept"] is True
    assert planned["diff"]["after"]["value"] == "(new generated value, followed by the previous key)"
    assert stored(clean_emulator, "airflow/fernet_key") == first

    rotated = story.run({**args, "rotate": True})
    assert rotated["changed"] and rotated["secret"]["rotated"] and rotated["secret"]["previous_kept"] is True
    new, old = stored(clean_emulator, "airflow/fernet_key").split(",")
    assert old == first and new != first
    # What Airflow does with the list: encrypts with the first, decrypts with any.
    keys = MultiFernet([Fernet(new), Fernet(old)])
    assert keys.decrypt(token) == b"connection password"
    # Later runs report the rotation as unfinished until the previous key is dropped.
    assert story.run(args)["secret"]["previous_kept"] is True

    dropped = story.run({**args, "keep_previous": False, "drop_previous": True})
    assert dropped["changed"] and dropped["secret"]["previous_kept"] is False
    assert stored(clean_emulator, "airflow/fernet_key") == new
    unchanged = story.run({**args, "keep_previous": False, "drop_previous": True})
    assert not unchanged["changed"] and unchanged["secret"]["previous_kept"] is False
    assert story.leaked(first, new) == []


def test_restore_of_secret_scheduled_for_deletion_keeps_its_value(clean_emulator: Emulator) -> None:
    client = sm(clean_emulator)
    client.create_secret(Name="airflow/fernet_key", SecretString="kept-value-0123456789", Tags=[])
    client.delete_secret(SecretId="airflow/fernet_key", RecoveryWindowInDays=7)
    assert "DeletedDate" in client.describe_secret(SecretId="airflow/fernet_key")

    restored = run_module_raw({"name": "airflow/fernet_key", "generate": "fernet_key"}, clean_emulator.env())[0]
    assert outcome(restored) == (True, False, False, False), restored
    assert restored["secret"]["restored"] is True
    assert "DeletedDate" not in client.describe_secret(SecretId="airflow/fernet_key")
    assert stored(clean_emulator, "airflow/fernet_key") == "kept-value-0123456789"


def test_return_value_is_masked_without_task_no_log(clean_emulator: Emulator) -> None:
    story = Story(clean_emulator)
    result = story.run({"name": NAME, "json_fields": {"username": "airflow"}, "return_value": True}, diff=True)
    assert result["changed"] is True, result
    password = stored_json(clean_emulator)["password"]
    assert result["value"] == {"username": "airflow", "password": MASK}
    assert any("no_log: true" in warning for warning in result.get("warnings", [])), result
    assert story.leaked(password) == []


def test_return_value_is_usable_under_task_no_log(clean_emulator: Emulator, tmp_path: Path) -> None:
    copy = tmp_path / "password.txt"
    playbook = tmp_path / "play.yml"
    tasks = [
        {"name": "Keep the database secret", MODULE: {"name": NAME, "json_fields": {"username": "airflow"}}},
        {
            "name": "Read it back as the roles do, without json_fields",
            MODULE: {"name": NAME, "return_value": True},
            "register": "__secret",
            "no_log": True,
        },
        {
            "name": "Write the password where the test can read it",
            "ansible.builtin.copy": {
                "content": "{{ __secret.value.username }}:{{ __secret.value.password }}",
                "dest": str(copy),
                "mode": "0600",
            },
            "no_log": True,
        },
    ]
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    play = run_playbook(
        str(playbook),
        env=clean_emulator.env(),
        args=LOCALHOST_ARGS,
    )
    assert play.returncode == 0, play.output[-3000:]
    password = stored_json(clean_emulator)["password"]
    assert copy.read_text() == f"airflow:{password}"
    assert password not in play.output


def test_existing_non_json_secret_is_refused_without_leaking_it(clean_emulator: Emulator) -> None:
    sm(clean_emulator).create_secret(Name=NAME, SecretString="plain-old-secret-0123456789")
    result, raw = run_module_raw({"name": NAME, "json_fields": {"username": "airflow"}}, clean_emulator.env())
    assert result.get("failed") is True, result
    assert f"Secret '{NAME}' does not hold a JSON object" in result["msg"]
    assert "plain-old-secret-0123456789" not in raw
    assert stored(clean_emulator) == "plain-old-secret-0123456789"


def test_batch_of_secrets_in_one_run(clean_emulator: Emulator) -> None:
    story = Story(clean_emulator)
    items = [
        {"name": "airflow/database", "json_fields": {"username": "airflow"}, "tags": {"stack": "airflow"}},
        {"name": "airflow/fernet-key", "generate": "fernet_key", "description": "Fernet key"},
        {"name": "airflow/jwt-secret", "generate": "token", "length": 64},
    ]
    names = [item["name"] for item in items]

    planned = story.run({"secrets": items}, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert [diff["after"]["name"] for diff in planned["diff"]] == names
    assert secret_names(clean_emulator) == []

    created = story.run({"secrets": items})
    assert created["changed"] is True, created
    assert [secret["name"] for secret in created["secrets"]] == names
    assert all(secret["created"] and secret["version_id"] for secret in created["secrets"])
    assert "values" not in created
    assert sorted(secret_names(clean_emulator)) == sorted(names)
    assert sm(clean_emulator).describe_secret(SecretId="airflow/fernet-key")["Description"] == "Fernet key"
    password = stored_json(clean_emulator)["password"]
    key = stored(clean_emulator, "airflow/fernet-key")
    Fernet(key)

    again = story.run({"secrets": items, "return_value": True})
    assert again["changed"] is False, again
    assert [s["version_id"] for s in again["secrets"]] == [s["version_id"] for s in created["secrets"]]
    assert again["values"]["airflow/database"] == {"username": "airflow", "password": MASK}  # no task no_log here
    assert stored_json(clean_emulator)["password"] == password

    rotated = story.run({"secrets": [items[0], {**items[1], "rotate": True}, items[2]]})
    assert [s["rotated"] for s in rotated["secrets"]] == [False, True, False], rotated
    assert stored(clean_emulator, "airflow/fernet-key") != key
    assert stored_json(clean_emulator)["password"] == password

    deleted = story.run({"secrets": [{"name": name} for name in names], "state": "absent", "recovery_window_days": 0})
    assert deleted["changed"] is True, deleted
    assert deleted["secrets"] == [{}, {}, {}]
    assert secret_names(clean_emulator) == []
    assert story.leaked(password, key) == []


def test_batch_is_validated_before_any_change(clean_emulator: Emulator) -> None:
    items = [{"name": "airflow/ok"}, {"name": "airflow/short", "length": 8}]
    result = Story(clean_emulator).run({"secrets": items})
    assert result.get("failed") is True, result
    assert "length must be between 16 and 4096" in result["msg"]
    assert secret_names(clean_emulator) == []

    twice = Story(clean_emulator).run({"secrets": [{"name": "airflow/a"}, {"name": "airflow/a"}]})
    assert twice["msg"] == "secrets names the same secret twice: airflow/a", twice
    assert secret_names(clean_emulator) == []


def test_template_secret_follows_its_sources(clean_emulator: Emulator) -> None:
    story = Story(clean_emulator)
    url = {
        "name": "airflow/sql-alchemy-conn",
        "template": "postgresql://{db[username]}:{db[password]}@db.internal:5432/airflow",
        "template_secrets": {"db": NAME},
    }
    missing = story.run(url, check=True, diff=True)
    assert missing["changed"] is True, missing
    assert missing["diff"]["after"]["value"] == "(rendered from secrets that do not exist yet)"
    refused = story.run(url)
    assert refused.get("failed") is True, refused
    assert (
        f"Secret '{NAME}' (template_secrets.db of secret 'airflow/sql-alchemy-conn') does not exist" in refused["msg"]
    )
    assert secret_names(clean_emulator) == []

    database = {"name": NAME, "json_fields": {"username": "airflow"}}
    created = story.run({"secrets": [database, url]})  # the source is created earlier in the same run
    assert [s["created"] for s in created["secrets"]] == [True, True], created
    password = stored_json(clean_emulator)["password"]
    assert stored(clean_emulator, url["name"]) == f"postgresql://airflow:{password}@db.internal:5432/airflow"

    assert story.run(url)["changed"] is False
    assert story.run(url, check=True)["changed"] is False

    story.run({**database, "rotate": True})
    new_password = stored_json(clean_emulator)["password"]
    predicted = story.run(url, check=True, diff=True)
    assert predicted["changed"] is True, predicted
    assert predicted["diff"]["after"]["value"] == "(new value rendered from the template)"
    assert password in stored(clean_emulator, url["name"])
    followed = story.run(url)
    assert followed["changed"] is True and followed["secret"]["value_changed"] is True, followed
    assert stored(clean_emulator, url["name"]) == f"postgresql://airflow:{new_password}@db.internal:5432/airflow"

    moved = story.run({**url, "template": url["template"].replace("db.internal", "db2.internal")})
    assert moved["changed"] is True, moved
    assert "@db2.internal:" in stored(clean_emulator, url["name"])
    assert story.leaked(password, new_password) == []


# --- Pure functions, without ansible -------------------------------------------------------------


class ModuleFailed(Exception):
    pass


class StubModule:
    def __init__(self, **params: Any) -> None:
        defaults = {
            "name": NAME,
            "state": "present",
            "rotate": False,
            "template": None,
            "template_secrets": None,
            "generate": "password",
            "length": 32,
            "json_fields": None,
            "json_key": "password",
            "recovery_window_days": 30,
            "keep_previous": False,
            "drop_previous": False,
        }
        self.params = {**defaults, **params}

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        raise ModuleFailed(msg)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"length": 8}, r"length must be between 16 and 4096 for generate=password, not 8"),
        ({"generate": "token", "length": 15}, r"length must be between 16 and 4096 for generate=token"),
        ({"json_fields": {"password": "x"}}, r"json_fields must not contain json_key 'password'"),
        ({"state": "absent", "recovery_window_days": 3}, r"recovery_window_days must be 0 .* not 3"),
        (
            {"template": "{db[password]}", "template_secrets": {"db": "a"}, "json_fields": {}},
            r"template cannot be combined with json_fields or rotate",
        ),
        ({"template": "{db[password]}@{host}", "template_secrets": {"db": "a"}}, r"uses host, which template_secrets"),
        ({"template": "{}:{0}", "template_secrets": {}}, r"does not name \(positional fields are not allowed\)"),
        ({"template": "{db[password]", "template_secrets": {"db": "a"}}, r"is not a valid format string"),
        ({"keep_previous": True, "drop_previous": True}, r"one at a time; not with drop_previous"),
        ({"keep_previous": True, "json_fields": {}}, r"a plain list of keys, one at a time; not with json_fields"),
    ],
)
def test_bad_input_is_refused(params: dict, message: str, library: ModuleType) -> None:
    with pytest.raises(ModuleFailed, match=message):
        library.validate(StubModule(**params))


def test_the_length_limits_passwords_and_tokens_but_not_fernet_keys(library: ModuleType) -> None:
    with pytest.raises(ModuleFailed, match="length must be between 16 and 4096 for generate=password, not 1"):
        library.validate(StubModule(generate="password", length=1))
    library.validate(StubModule(generate="fernet_key", length=1))  # ignored: a Fernet key is always 32 bytes
    key = library.generate_value("fernet_key", 1)
    assert len(base64.urlsafe_b64decode(key)) == 32 and Fernet(key)


def test_generated_values_have_the_documented_form(library: ModuleType) -> None:
    passwords = [library.generate_value("password", 16) for _ in range(50)]
    assert all(len(p) == 16 and p.isalnum() and p.isascii() for p in passwords)
    assert all(any(c.islower() for c in p) and any(c.isupper() for c in p) for p in passwords)
    assert all(any(c.isdigit() for c in p) for p in passwords)
    assert len(set(passwords)) == 50
    assert len(library.generate_value("token", 64)) == 86
    key = library.generate_value("fernet_key", 0)
    assert len(base64.urlsafe_b64decode(key)) == 32
    Fernet(key)


@pytest.mark.parametrize(
    ("desired", "current", "same"),
    [
        ("arn:aws:kms:us-east-1:123456789012:key/abcd", "arn:aws:kms:us-east-1:123456789012:key/abcd", True),
        ("abcd", "arn:aws:kms:us-east-1:123456789012:key/abcd", True),
        ("alias/app", "arn:aws:kms:us-east-1:123456789012:alias/app", True),
        ("alias/aws/secretsmanager", None, True),
    ],
)
def test_kms_key_forms_match_without_asking_kms(
    desired: str, current: str | None, same: bool, library: ModuleType
) -> None:
    assert library.same_kms_key(None, desired, current) is same
