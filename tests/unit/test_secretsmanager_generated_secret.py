"""library/secretsmanager_generated_secret.py against a moto server, through the real `ansible` CLI."""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_runner import LOCALHOST_ARGS, run_module_with_output, run_playbook
from cryptography.fernet import Fernet, MultiFernet
from emulator import CREDENTIALS, REGION, Emulator, endpoint_env

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "secretsmanager_generated_secret"
NAME = "airflow/database"
MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"  # what Ansible puts in place of a whole no_log value


# --- Helpers -------------------------------------------------------------------------------------


def run_module_raw(module_args: dict, env: dict[str, str], check: bool = False, diff: bool = False) -> tuple[dict, str]:
    """The module's result and everything ansible printed (stdout + stderr)."""
    return run_module_with_output(MODULE, module_args, env, check, diff)


class Story:
    """Runs the module against one emulator and keeps every raw output, to check later that no value leaked.

    With `proxy`, the module's calls go through a weather proxy without weather, which counts them."""

    def __init__(self, emulator: Emulator, proxy: WeatherProxy | None = None) -> None:
        self.emulator = emulator
        self.proxy = proxy
        self.outputs: list[str] = []

    def run(self, args: dict, check: bool = False, diff: bool = False) -> dict:
        env = endpoint_env(self.proxy.url) if self.proxy else self.emulator.env()
        result, raw = run_module_raw(args, env, check=check, diff=diff)
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


def calls_of(story: Story, args: dict, check: bool = False) -> tuple[dict, dict[str, int]]:
    """The module's result and the AWS calls it made, by "service Operation" (counted by the proxy)."""
    story.proxy.weather.reset()
    result = story.run(args, check=check)
    return result, story.proxy.weather.stats()["calls"]


@pytest.fixture
def counted(clean_emulator: Emulator) -> Iterator[WeatherProxy]:
    """A proxy in front of the emulator, without latency or faults: it only counts each call by operation."""
    proxy = WeatherProxy(clean_emulator.url, Weather(latency_ms=0))
    yield proxy
    proxy.close()


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


# The secrets role's kinds of secret, and the airflow role's connection strings rendered from them.
STACK_SECRETS = [
    {"name": "airflow/database", "json_fields": {"username": "airflow"}, "description": "db", "tags": {"s": "a"}},
    {"name": "airflow/broker", "json_fields": {"username": "airflow"}, "description": "broker", "tags": {"s": "a"}},
    {"name": "airflow/fernet-key", "generate": "fernet_key", "keep_previous": True, "tags": {"s": "a"}},
    {"name": "airflow/jwt-secret", "generate": "token", "length": 64, "description": "jwt", "tags": {"s": "a"}},
    {"name": "airflow/api-secret-key", "generate": "token", "description": "api", "tags": {"s": "a"}},
]
CONNECTIONS = [
    {
        "name": "airflow/sql-alchemy-conn",
        "template": "postgresql://{db[username]}:{db[password]}@db.internal:5432/airflow",
        "template_secrets": {"db": "airflow/database"},
        "tags": {"s": "a"},
    },
    {
        "name": "airflow/result-backend",
        "template": "db+postgresql://{db[username]}:{db[password]}@db.internal:5432/airflow",
        "template_secrets": {"db": "airflow/database"},
    },
    {
        "name": "airflow/broker-url",
        "template": "amqp://{broker[username]}:{broker[password]}@broker.internal:5672/",
        "template_secrets": {"broker": "airflow/broker"},
    },
]
BULK_READ = {"secretsmanager ListSecrets": 1, "secretsmanager BatchGetSecretValue": 1}


def test_a_no_op_run_reads_all_its_secrets_with_one_list_and_one_batch_read(
    clean_emulator: Emulator, counted: WeatherProxy
) -> None:
    story = Story(clean_emulator, counted)
    created = story.run({"secrets": STACK_SECRETS})
    connections = story.run({"secrets": CONNECTIONS})
    assert created["changed"] and connections["changed"], (created, connections)
    password = stored_json(clean_emulator)["password"]

    again, calls = calls_of(story, {"secrets": STACK_SECRETS, "return_value": True})
    assert calls == BULK_READ  # instead of a DescribeSecret per secret and a GetSecretValue per JSON or key list
    assert again["changed"] is False, again
    assert [s["version_id"] for s in again["secrets"]] == [s["version_id"] for s in created["secrets"]]
    assert [s["arn"] for s in again["secrets"]] == [s["arn"] for s in created["secrets"]]
    assert again["secrets"][0]["tags"] == {"s": "a"} and again["secrets"][0]["description"] == "db"
    assert again["secrets"][2]["previous_kept"] is False
    assert again["values"]["airflow/database"] == {"username": "airflow", "password": MASK}

    checked, calls = calls_of(story, {"secrets": STACK_SECRETS}, check=True)
    assert (checked["changed"], calls) == (False, BULK_READ), checked

    # The sources of the templates are read in the same two calls as the secrets rendered from them.
    rendered, calls = calls_of(story, {"secrets": CONNECTIONS})
    assert (rendered["changed"], calls) == (False, BULK_READ), rendered
    assert [s["version_id"] for s in rendered["secrets"]] == [s["version_id"] for s in connections["secrets"]]

    # One secret is read as before: DescribeSecret, and GetSecretValue for its value.
    single, calls = calls_of(story, {"name": NAME, "return_value": True})
    assert calls == {"secretsmanager DescribeSecret": 1, "secretsmanager GetSecretValue": 1}, calls
    assert single["changed"] is False
    assert story.leaked(password) == []


def test_secrets_deleted_out_of_band_are_recreated_or_restored_and_the_others_kept(
    clean_emulator: Emulator, counted: WeatherProxy
) -> None:
    story = Story(clean_emulator, counted)
    created = story.run({"secrets": STACK_SECRETS})
    client = sm(clean_emulator)
    fernet_key = stored(clean_emulator, "airflow/fernet-key")
    jwt_secret = stored(clean_emulator, "airflow/jwt-secret")
    password = stored_json(clean_emulator)["password"]
    client.delete_secret(SecretId="airflow/jwt-secret", ForceDeleteWithoutRecovery=True)
    client.delete_secret(SecretId="airflow/fernet-key", RecoveryWindowInDays=7)

    repaired = story.run({"secrets": STACK_SECRETS})
    assert repaired["changed"] is True, repaired
    assert [s["created"] for s in repaired["secrets"]] == [False, False, False, True, False]
    assert [s["restored"] for s in repaired["secrets"]] == [False, False, True, False, False]
    assert "DeletedDate" not in client.describe_secret(SecretId="airflow/fernet-key")
    assert stored(clean_emulator, "airflow/fernet-key") == fernet_key  # restored with its value
    new_jwt_secret = stored(clean_emulator, "airflow/jwt-secret")
    assert new_jwt_secret != jwt_secret and len(new_jwt_secret) == 86
    assert client.describe_secret(SecretId="airflow/jwt-secret")["Tags"] == [{"Key": "s", "Value": "a"}]
    assert stored_json(clean_emulator)["password"] == password
    kept = [0, 1, 4]
    assert [repaired["secrets"][i]["version_id"] for i in kept] == [created["secrets"][i]["version_id"] for i in kept]

    again, calls = calls_of(story, {"secrets": STACK_SECRETS})
    assert (again["changed"], calls) == (False, BULK_READ), again
    assert story.leaked(fernet_key, jwt_secret, new_jwt_secret, password) == []


def test_metadata_changed_out_of_band_is_put_back_in_a_bulk_run(
    clean_emulator: Emulator, counted: WeatherProxy
) -> None:
    kms = clean_emulator.client("kms")
    key, other_key = (kms.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    items = [{**item, "kms_key_id": key} for item in STACK_SECRETS]
    story = Story(clean_emulator, counted)
    story.run({"secrets": items})
    client = sm(clean_emulator)
    password = stored_json(clean_emulator)["password"]
    jwt_secret = stored(clean_emulator, "airflow/jwt-secret")
    client.update_secret(SecretId="airflow/database", Description="changed by hand")
    client.update_secret(SecretId="airflow/jwt-secret", KmsKeyId=other_key)
    client.tag_resource(SecretId="airflow/broker", Tags=[{"Key": "extra", "Value": "x"}])
    client.untag_resource(SecretId="airflow/api-secret-key", TagKeys=["s"])

    repaired, calls = calls_of(story, {"secrets": items}, check=True)
    assert [s["name"] for s in repaired["secrets"] if s["created"]] == []
    assert repaired["changed"] is True and calls["secretsmanager ListSecrets"] == 1, (repaired, calls)
    assert "secretsmanager UpdateSecret" not in calls and "secretsmanager TagResource" not in calls
    repaired = story.run({"secrets": items})
    assert repaired["changed"] is True, repaired
    described = {name: client.describe_secret(SecretId=name) for name in (item["name"] for item in items)}
    assert described["airflow/database"]["Description"] == "db"
    assert described["airflow/jwt-secret"]["KmsKeyId"] == key
    assert described["airflow/broker"]["Tags"] == [{"Key": "s", "Value": "a"}]
    assert described["airflow/api-secret-key"]["Tags"] == [{"Key": "s", "Value": "a"}]
    assert stored_json(clean_emulator)["password"] == password
    assert stored(clean_emulator, "airflow/jwt-secret") == jwt_secret

    again, calls = calls_of(story, {"secrets": items})
    assert (again["changed"], calls) == (False, BULK_READ), again


def test_a_source_rotated_earlier_in_the_run_is_read_again_for_the_template(clean_emulator: Emulator) -> None:
    story = Story(clean_emulator)
    database, url = STACK_SECRETS[0], CONNECTIONS[0]
    story.run({"secrets": [database, url]})
    password = stored_json(clean_emulator)["password"]

    followed = story.run({"secrets": [{**database, "rotate": True}, url]})
    assert [s["value_changed"] for s in followed["secrets"]] == [True, True], followed
    new_password = stored_json(clean_emulator)["password"]
    assert new_password != password
    assert stored(clean_emulator, url["name"]) == f"postgresql://airflow:{new_password}@db.internal:5432/airflow"
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


# --- In this process, against moto: what the module does with a listing that lags ---------------


class AwsStubModule(StubModule):
    """Enough of AnsibleAWSModule for `ensure` against the emulator; every call is recorded by operation."""

    def __init__(self, emulator: Emulator, library: ModuleType, **params: Any) -> None:
        defaults = {"description": None, "kms_key_id": None, "tags": None, "purge_tags": True, "return_value": False}
        super().__init__(**{**defaults, **params})
        self.check_mode = False
        self.no_log_values: set[str] = set()
        self.calls: list[str] = []
        client = boto3.client("secretsmanager", endpoint_url=emulator.url, region_name=REGION, **CREDENTIALS)
        client.meta.events.register("before-call.secretsmanager.*", self._record)
        self.secretsmanager = RetryingBotoClientWrapper(client, library.jittered_backoff())

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def fail_json_aws(self, exception: Exception, msg: str) -> None:
        raise ModuleFailed(f"{msg}: {exception}")

    def warn(self, warning: str) -> None:
        raise AssertionError(warning)


def listed(module: AwsStubModule, library: ModuleType, name: str = NAME, **stale: Any) -> None:
    """Prefetch `name` as the module does, then make the listing show `stale` instead (ListSecrets' lag)."""
    library.list_secrets(module, module.secretsmanager, [name])
    library.batch_read(module, module.secretsmanager, [library.LISTED[name]["ARN"]])
    library.LISTED[name].update(stale)
    module.calls.clear()


def test_a_listing_that_shows_a_needed_change_is_checked_with_describe_first(
    clean_emulator: Emulator, library: ModuleType
) -> None:
    sm(clean_emulator).create_secret(
        Name=NAME, Description="current", SecretString='{"username": "airflow", "password": "0123456789abcdefXYZ"}'
    )
    module = AwsStubModule(clean_emulator, library, description="current", json_fields={"username": "airflow"})
    listed(module, library, Description="before the last run")

    result = library.ensure(module, module.secretsmanager)
    assert result["changed"] is False, result
    assert module.calls == ["DescribeSecret"]  # not UpdateSecret: the listing was behind
    assert result["secret"]["description"] == "current"


def test_a_listing_behind_the_current_version_is_not_trusted(clean_emulator: Emulator, library: ModuleType) -> None:
    client = sm(clean_emulator)
    client.create_secret(Name=NAME, SecretString="first-value-0123456789")
    module = AwsStubModule(clean_emulator, library)
    library.list_secrets(module, module.secretsmanager, [NAME])
    new_version = client.put_secret_value(SecretId=NAME, SecretString="second-value-0123456789")["VersionId"]
    library.batch_read(module, module.secretsmanager, [NAME])
    module.calls.clear()

    result = library.ensure(module, module.secretsmanager)
    assert result["changed"] is False, result
    assert result["secret"]["version_id"] == new_version  # the listing still showed the first version
    assert module.calls == ["DescribeSecret"]


def test_a_listed_secret_that_needs_nothing_costs_no_call(clean_emulator: Emulator, library: ModuleType) -> None:
    sm(clean_emulator).create_secret(Name=NAME, Description="current", SecretString="value-0123456789abcdef")
    module = AwsStubModule(clean_emulator, library, description="current", return_value=True)
    listed(module, library)

    result = library.ensure(module, module.secretsmanager)
    assert (result["changed"], result["value"]) == (False, "value-0123456789abcdef"), result
    assert module.calls == []
    assert "value-0123456789abcdef" in module.no_log_values


def test_a_secret_missing_from_the_listing_is_described_before_it_is_created(
    clean_emulator: Emulator, library: ModuleType
) -> None:
    module = AwsStubModule(clean_emulator, library, generate="token")
    library.list_secrets(module, module.secretsmanager, [NAME])  # listed before the secret existed
    version = sm(clean_emulator).create_secret(Name=NAME, SecretString="made-just-now-0123456789")["VersionId"]
    module.calls.clear()

    result = library.ensure(module, module.secretsmanager)
    assert result["changed"] is False, result
    assert result["secret"]["version_id"] == version
    assert module.calls == ["DescribeSecret"]  # not CreateSecret: the listing lags behind a creation
    assert stored(clean_emulator) == "made-just-now-0123456789"
