"""library/mq_broker_configuration.py against the emulator, its calls counted."""

from __future__ import annotations

import base64

from ansible_runner import run_counted
from emulator import Emulator

from embedded_aws.weather import WeatherProxy

MODULE = "mq_broker_configuration"
# Amazon MQ is a REST API: the weather proxy counts its calls by method and path.
LIST_CONFIGURATIONS = "mq GET /{id}/configurations"  # ListConfigurations
CREATE_CONFIGURATION = "mq POST /{id}/configurations"  # CreateConfiguration
UPDATE_CONFIGURATION = "mq PUT /{id}/configurations/{id}"  # UpdateConfiguration
DESCRIBE_CONFIGURATION_REVISION = "mq GET /{id}/configurations/{id}/revisions/{id}"  # DescribeConfigurationRevision
LIST_BROKERS = "mq GET /{id}/brokers"  # ListBrokers
DESCRIBE_BROKER = "mq GET /{id}/brokers/{id}"  # DescribeBroker
UPDATE_BROKER = "mq PUT /{id}/brokers/{id}"  # UpdateBroker
REBOOT_BROKER = "mq POST /{id}/brokers/{id}/reboot"  # RebootBroker
BROKER = "airflow-broker"
SETTINGS = {
    "name": BROKER,
    "engine_version": "3.13",
    "data": "consumer_timeout = 21600000\n",
    "broker_name": BROKER,
    "tags": {"airflow-ecs:stack": "airflow"},
}
READS = {LIST_CONFIGURATIONS: 1, DESCRIBE_CONFIGURATION_REVISION: 1, LIST_BROKERS: 1, DESCRIBE_BROKER: 1}


def create_broker(emulator: Emulator) -> str:
    return emulator.client("mq").create_broker(
        BrokerName=BROKER,
        EngineType="RABBITMQ",
        EngineVersion="3.13",
        DeploymentMode="SINGLE_INSTANCE",
        HostInstanceType="mq.m7g.medium",
        PubliclyAccessible=False,
        AutoMinorVersionUpgrade=True,
        Users=[{"Username": "airflow", "Password": "a-long-password"}],
    )["BrokerId"]


def configuration_names(emulator: Emulator) -> list[str]:
    return sorted(c["Name"] for c in emulator.client("mq").list_configurations()["Configurations"])


def running(emulator: Emulator, broker_id: str) -> str:
    """The settings of the configuration revision the broker runs."""
    mq = emulator.client("mq")
    current = mq.describe_broker(BrokerId=broker_id)["Configurations"]["Current"]
    revision = mq.describe_configuration_revision(
        ConfigurationId=current["Id"], ConfigurationRevision=str(current["Revision"])
    )
    return base64.b64decode(revision["Data"]).decode()


def test_check_mode_create_reboot_then_rerun_only_reads(proxy: WeatherProxy, clean_emulator: Emulator):
    broker_id = create_broker(clean_emulator)
    planned, calls = run_counted(MODULE, proxy, SETTINGS | {"reboot": True}, check=True, diff=True)
    assert planned["changed"] is True and planned["configuration"] is None, planned
    assert calls == {LIST_CONFIGURATIONS: 1, LIST_BROKERS: 1, DESCRIBE_BROKER: 1}
    assert configuration_names(clean_emulator) == [f"{BROKER}-configuration"]  # the one AWS made with the broker

    created, calls = run_counted(MODULE, proxy, SETTINGS | {"reboot": True})
    assert created["changed"] is True and created["broker"] == {"current": True, "pending": False, "rebooted": True}
    assert calls == {
        LIST_CONFIGURATIONS: 1,
        CREATE_CONFIGURATION: 1,
        UPDATE_CONFIGURATION: 1,
        LIST_BROKERS: 1,
        DESCRIBE_BROKER: 1,
        UPDATE_BROKER: 1,
        REBOOT_BROKER: 1,
    }
    assert running(clean_emulator, broker_id) == SETTINGS["data"]
    [configuration] = [
        c for c in clean_emulator.client("mq").list_configurations()["Configurations"] if c["Name"] == BROKER
    ]
    assert (configuration["Name"], configuration["EngineType"]) == (BROKER, "RABBITMQ")
    assert clean_emulator.client("mq").list_tags(ResourceArn=configuration["Arn"])["Tags"] == SETTINGS["tags"]

    again, calls = run_counted(MODULE, proxy, SETTINGS | {"reboot": True}, check=True)
    assert again["changed"] is False and calls == READS, again
    again, calls = run_counted(MODULE, proxy, SETTINGS)
    assert again["changed"] is False and calls == READS, again


def test_a_changed_setting_adds_a_revision_that_waits_for_the_maintenance_window(
    proxy: WeatherProxy, clean_emulator: Emulator
):
    broker_id = create_broker(clean_emulator)
    run_counted(MODULE, proxy, SETTINGS | {"reboot": True})
    longer = SETTINGS | {"data": "consumer_timeout = 43200000\n"}

    planned, calls = run_counted(MODULE, proxy, longer, check=True, diff=True)
    assert planned["changed"] is True and planned["configuration"]["revision"] == 3, planned
    assert planned["diff"] == {"before": SETTINGS["data"], "after": longer["data"]}
    assert calls == READS
    assert running(clean_emulator, broker_id) == SETTINGS["data"]

    changed, calls = run_counted(MODULE, proxy, longer)
    assert changed["changed"] is True and changed["broker"] == {"current": False, "pending": True, "rebooted": False}
    assert REBOOT_BROKER not in calls and calls[UPDATE_CONFIGURATION] == 1 and calls[UPDATE_BROKER] == 1
    # Blank lines and surrounding blanks are no change.
    same, _ = run_counted(MODULE, proxy, longer | {"data": "\n  consumer_timeout = 43200000  \n\n"})
    assert same["changed"] is False, same


def test_without_a_broker_only_the_configuration_is_kept(proxy: WeatherProxy, clean_emulator: Emulator):
    result, calls = run_counted(MODULE, proxy, SETTINGS)
    assert result["changed"] is True and result["broker"] is None, result
    assert calls == {
        LIST_CONFIGURATIONS: 1,
        CREATE_CONFIGURATION: 1,
        UPDATE_CONFIGURATION: 1,
        LIST_BROKERS: 1,
    }
    again, calls = run_counted(MODULE, proxy, SETTINGS)
    assert again["changed"] is False and CREATE_CONFIGURATION not in calls, again
